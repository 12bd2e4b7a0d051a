"""What the AKS rules cost in real Falco: the same events, this plugin, three rule setups.

Replays `generated.jsonl` 25 times over (each copy's auditIDs made distinct, so dedupe keeps
them: 20,000 events) through Falco with (1) the official rules as Falco loads them by
default (`rule_matching: first`), (2) the official rules with `rule_matching: all`, (3) the
official and the AKS rules with `all`, as the Helm values ship them. For each: the best of
three wall times (process start to exit), less the best of three runs on an empty file
(start-up and rule loading), per event, and its ratio to (1); and the alerts. Needs Falco
(FALCO_BIN or on PATH); skipped otherwise.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Any

from benchmarks.events import distinct_copies
from harness import falco
from tests import FIXTURES, OFFICIAL_RULES

EVENTS = FIXTURES / "audit-events" / "generated.jsonl"
COPIES = 25
RUNS = 3
SETUPS: list[tuple[str, list[Path], dict[str, Any]]] = [
    ("official, first", [OFFICIAL_RULES], {"rule_matching": "first"}),
    ("official, all", [OFFICIAL_RULES], {"rule_matching": "all"}),
    ("official + AKS, all", [OFFICIAL_RULES, falco.AKS_RULES], {"rule_matching": "all"}),
]


def main() -> None:
    binary = falco.find_falco()
    if binary is None:
        print("bench_aks_rules: skipped (needs FALCO_BIN or falco on PATH)")
        return
    with tempfile.TemporaryDirectory() as tmp:
        replay, empty = Path(tmp) / "events.jsonl", Path(tmp) / "empty.jsonl"
        data = distinct_copies(EVENTS, COPIES)
        replay.write_bytes(data)
        empty.write_bytes(b"")
        count = data.count(b"\n")
        baseline = None
        for name, rules, extra in SETUPS:
            full = best_of(binary, replay, rules, extra)
            fixed = best_of(binary, empty, rules, extra)
            per_event = (full.seconds - fixed.seconds) / count * 1e6
            baseline = baseline or per_event
            print(f"{name:20} {full.seconds:5.2f} s, of which start-up {fixed.seconds:4.2f} s: "
                  f"{per_event:5.1f} us/event ({per_event / baseline:4.2f}x), "
                  f"{len(full.rules())} alerts on {count} events")


def best_of(binary: Path, path: Path, rules: list[Path], extra: dict[str, Any]) -> falco.FalcoRun:
    runs = [falco.run(binary, falco.PluginSpec(open_params=f"file://{path}"), rules,
                      seconds=600, extra=extra) for _ in range(RUNS)]
    if any(run.returncode != 0 for run in runs):
        sys.exit(f"falco failed on {path.name}: {runs[-1].stderr[-1000:]}")
    return min(runs, key=lambda run: run.seconds)


if __name__ == "__main__":
    main()
