"""Max RSS of real Falco with the official rules, this plugin against upstream k8saudit:
file replay of 20,000 and 100,000 distinct audit events (JSON lines, and the 100,000 again
gzip-compressed), and a queue-mode drain of 100,000 events on Azurite with the default
dedupe window. Goal (issue 18): under 64 MiB each, within 10% between the two file sizes.

Upstream's file source paces itself (about 90 ms an event), so upstream is measured over
its first 20 s of the same files: its memory does not grow with the file either. The
dedupe window's bytes per key are measured in the same process.
"""

from __future__ import annotations

import gzip
import json
import tempfile
from pathlib import Path

from azure.storage.queue import QueueClient

from benchmarks.events import distinct_copies
from extractor.envelope.normalize import AuditEvent
from extractor.message.codec import pack
from extractor.policy.dedupe import DEFAULT_DEDUPE_WINDOW
from harness import falco as runner
from harness.azurite import Azurite
from harness.memory import dedupe_bytes_per_key, peak_rss_mib
from tests import FIXTURES, OFFICIAL_RULES

GENERATED = FIXTURES / "audit-events" / "generated.jsonl"
UPSTREAM_SECONDS = 20.0
GOAL_MIB = 64


def falco_args(falco: Path, plugin: runner.PluginSpec, workdir: Path) -> list[str]:
    config = workdir / f"falco-{plugin.name}-{abs(hash(plugin.open_params))}.yaml"
    config.write_text(json.dumps(runner.config(falco, plugin, [OFFICIAL_RULES])))
    return runner.command(falco, config)


def queue_drain(falco: Path, workdir: Path, events: list[bytes]) -> tuple[float, float]:
    azurite = Azurite()
    azurite.start()
    try:
        queue = QueueClient.from_connection_string(azurite.connection_string, "membench")
        queue.create_queue()
        audit = [AuditEvent(data, 1_796_000_000_000_000_000 + i, f"mem-{i:08d}",
                            "ResponseComplete", "aks-mem") for i, data in enumerate(events)]
        for message in pack(audit):
            queue.send_message(message.text)
        init = {"queue_name": "membench", "queue_connection_string": azurite.connection_string}
        args = falco_args(falco, runner.PluginSpec(init_config=init), workdir)
        return peak_rss_mib(
            args, until=lambda: queue.get_queue_properties().approximate_message_count == 0)
    finally:
        azurite.close()


def main() -> None:
    falco = runner.find_falco()
    if falco is None:
        raise SystemExit("bench_memory: no Falco (FALCO_BIN or make falco)")
    upstream = falco.resolve().parent.parent / "plugins" / "libk8saudit.so"
    print(f"dedupe window: {dedupe_bytes_per_key(36):.0f} bytes a key "
          f"({DEFAULT_DEDUPE_WINDOW} keys)")
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-memory-") as tmp:
        workdir = Path(tmp)
        lines = len(GENERATED.read_bytes().splitlines())
        files = {}
        for n in (20_000, 100_000):
            files[f"{n:,} events"] = workdir / f"events-{n}.jsonl"
            files[f"{n:,} events"].write_bytes(distinct_copies(GENERATED, n // lines))
        events = files["100,000 events"].read_bytes().splitlines()
        gz = workdir / "events-100000.jsonl.gz"
        gz.write_bytes(gzip.compress(files["100,000 events"].read_bytes(), 6))
        files["100,000 events, gzip"] = gz
        for name, path in files.items():
            size = path.stat().st_size / 2**20
            ours = peak_rss_mib(falco_args(falco, runner.PluginSpec(open_params=str(path)),
                                          workdir))
            theirs = (peak_rss_mib(falco_args(falco, runner.PluginSpec(
                "k8saudit", upstream, "", str(path)), workdir), seconds=UPSTREAM_SECONDS)
                if upstream.is_file() and not name.endswith("gzip") else None)
            rows.append((f"file replay, {name} ({size:.0f} MiB)", ours, theirs))
        rows.append(("queue drain, 100,000 events (Azurite, default window)",
                     queue_drain(falco, workdir, events), None))
    print(f"{'run':62} {'this plugin':>22} {'upstream k8saudit 0.18.0':>26}")
    for name, (rss, seconds), theirs in rows:
        other = f"{theirs[0]:.1f} MiB (first {theirs[1]:.0f} s)" if theirs else "-"
        print(f"{name:62} {rss:6.1f} MiB in {seconds:5.1f} s {other:>26}")
    small, large = rows[0][1][0], rows[1][1][0]
    met = max(r[1][0] for r in rows) < GOAL_MIB and large <= small * 1.1
    print(f"100,000 against 20,000 events: {large / small:.2f}x; goal (under {GOAL_MIB} MiB "
          f"each, within 10%): {'met' if met else 'NOT met'}")


if __name__ == "__main__":
    main()
