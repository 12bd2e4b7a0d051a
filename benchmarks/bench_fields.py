"""Cost of extracting the fields the official k8s_audit rules use, per event.

Compiles the rule fields once, then times extracting all of them from every event of
generated.jsonl (already parsed) against parsing the same lines with orjson, best of N runs.

    .venv/bin/python -m benchmarks.bench_fields [--repeat N]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import orjson

from extractor.fields.compiled import compile_all
from extractor.fields.table import FIELDS, ExtractError, compile_field
from tests import FIXTURES

ROOT = Path(__file__).resolve().parents[1]
EVENTS = FIXTURES / "audit-events" / "generated.jsonl"
RULE_FIELDS = FIXTURES / "rules" / "k8s_audit_rule_fields.txt"


def rule_requests() -> list[tuple[int, int | str | None]]:
    ids = {f.name: i for i, f in enumerate(FIELDS)}
    requests = []
    for line in RULE_FIELDS.read_text().split():
        name, bracket, arg = line.partition("[")
        value = (int(arg[:-1]) if arg[:-1].isdigit() else arg[:-1]) if bracket else None
        requests.append((ids[name], value))
    return requests


def best_ns(repeat: int, run) -> int:
    best: int | None = None
    for _ in range(repeat):
        start = time.perf_counter_ns()
        run()
        elapsed = time.perf_counter_ns() - start
        best = elapsed if best is None else min(best, elapsed)
    assert best is not None
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=20)
    repeat = parser.parse_args().repeat

    lines = [line for line in EVENTS.read_bytes().split(b"\n") if line.strip()]
    events = [orjson.loads(line) for line in lines]
    requests = rule_requests()
    extractors = [compile_field(*request) for request in requests]
    run_all = compile_all(requests)

    def parse_all() -> None:
        loads = orjson.loads
        for line in lines:
            loads(line)

    failures = [0]

    def extract_all() -> None:
        failed = 0
        for event in events:
            for extract in extractors:
                try:
                    extract(event)
                except ExtractError:  # what the SDK reports as SS_PLUGIN_FAILURE
                    failed += 1
        failures[0] = failed

    def extract_together() -> None:
        for event in events:
            run_all(event)

    parse = best_ns(repeat, parse_all) / len(lines) / 1000
    together = best_ns(repeat, extract_together) / len(events) / 1000
    extract = best_ns(repeat, extract_all) / len(events) / 1000
    per_field = extract / len(extractors) * 1000
    print(f"{len(events)} events, {len(extractors)} rule fields, {failures[0]} failed calls")
    print(f"orjson.loads:        {parse:7.2f} us/event")
    print(f"extract fields:      {extract:7.2f} us/event ({per_field:.0f} ns/field)")
    print(f"ratio extract/parse: {extract / parse:7.2f}")
    print(f"compile_all (plugin): {together:6.2f} us/event, ratio {together / parse:.2f}")


if __name__ == "__main__":
    main()
