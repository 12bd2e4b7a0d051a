"""Field extraction through the built .so, timed by the C host (`falco_host LIB time`).

The C host loads the plugin as libsinsp does and makes one plugin_extract_fields call per
rule field per event (33 fields of the official rules), with fresh event numbers each pass.
The baseline is orjson.loads of the same events, measured in this run, interleaved with the
timed passes; each side keeps its best. The official Go plugin's ratio on this
machine type is about 4.6. Also prints file replay throughput (events/s out of next_batch).

Timings on a shared 2-core VM swing by up to 2x between runs; `--callgrind` adds a
repeatable measure: instructions per event of both sides under valgrind (the difference
between a 1-pass and a 3-pass run, so start-up and imports cancel out).

    make bench            # or: .venv/bin/python -m benchmarks.bench_extract_abi [--callgrind]
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import time

import orjson

from harness import host
from tests import FIXTURES

EVENTS = FIXTURES / "audit-events" / "generated.jsonl"
RULE_FIELDS = FIXTURES / "rules" / "k8s_audit_rule_fields.txt"
LIB, HOST = host.LIB, host.HOST


def rule_requests() -> str:
    """The C host's request file for the rule fields."""
    keys = [line.strip() for line in RULE_FIELDS.read_text().splitlines() if line.strip()]
    with tempfile.NamedTemporaryFile("w", suffix=".req", delete=False) as out:
        out.write(host.request_lines(host.info(LIB)["fields"], keys))
    return out.name


def orjson_ns_per_event(lines: list[bytes], rounds: int) -> float:
    loads = orjson.loads
    start = time.perf_counter_ns()
    for _ in range(rounds):
        for line in lines:
            loads(line)
    return (time.perf_counter_ns() - start) / (len(lines) * rounds)


def timed(requests: str, rounds: int) -> list[str]:
    return [str(HOST), str(LIB), "time", "", str(EVENTS), requests, str(rounds)]


def extract_ns_per_event(requests: str, rounds: int) -> tuple[float, str]:
    out = subprocess.run(
        timed(requests, rounds),
        check=True, capture_output=True, text=True,
    ).stdout
    return float(_found(r"ns_per_event=([\d.]+)", out)), out.strip()


def _instructions(cmd: list[str]) -> int:
    with tempfile.NamedTemporaryFile(suffix=".cg") as out:
        proc = subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out.name}",
                               *cmd], check=True, capture_output=True, text=True)
    return int(_found(r"Collected : (\d+)", proc.stderr))


def _found(pattern: str, text: str) -> str:
    match = re.search(pattern, text)
    if match is None:
        raise SystemExit(f"no {pattern!r} in:\n{text[-2000:]}")
    return match.group(1)


_ORJSON_PASSES = (
    "import sys, orjson\n"
    "lines = [l for l in open(sys.argv[1], 'rb').read().splitlines() if l.strip()]\n"
    "for _ in range(int(sys.argv[2])):\n"
    "    for l in lines: orjson.loads(l)\n"
)


def instructions_per_event(requests: str, events: int) -> tuple[float, float]:
    """(extraction, orjson.loads) instructions per event: 3 passes minus 1 pass, halved."""
    def plugin(passes: int) -> int:
        return _instructions(timed(requests, passes))

    def baseline(passes: int) -> int:
        return _instructions([sys.executable, "-c", _ORJSON_PASSES, str(EVENTS), str(passes)])

    # `time` adds a warm-up pass to the ones asked for: 1 vs 3 differ by 2 passes
    return ((plugin(3) - plugin(1)) / 2 / events, (baseline(3) - baseline(1)) / 2 / events)


def replay_events_per_s(copies: int) -> tuple[int, float]:
    """Events/s out of next_batch for a large file, through the non-Python host."""
    data = EVENTS.read_bytes()
    with tempfile.NamedTemporaryFile(suffix=".jsonl") as big, \
            tempfile.NamedTemporaryFile("w", suffix=".req") as no_fields:
        for i in range(copies):
            # distinct auditIDs per copy, so dedupe keeps them all
            tag = f'"auditID":"{i}-'.encode()
            big.write(data.replace(b'"auditID":"', tag).replace(b'"auditID": "', tag))
        big.flush()
        start = time.perf_counter()
        out = subprocess.run([str(HOST), str(LIB), "capture", "", big.name, no_fields.name],
                             check=True, capture_output=True, text=True).stdout
        elapsed = time.perf_counter() - start
    events = sum(1 for line in out.splitlines() if line.startswith('{"evtnum"'))
    return events, events / elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--replay-copies", type=int, default=40)
    parser.add_argument("--callgrind", action="store_true",
                        help="also count instructions under valgrind (about a minute)")
    args = parser.parse_args()
    requests = rule_requests()
    lines = [line for line in EVENTS.read_bytes().splitlines() if line.strip()]
    base, plugin, report = float("inf"), float("inf"), ""
    for _ in range(args.repeat):
        base = min(base, orjson_ns_per_event(lines, args.rounds))
        ns, out = extract_ns_per_event(requests, args.rounds)
        if ns < plugin:
            plugin, report = ns, out
    print(f"falco_host time: {report}")
    print(f"orjson.loads baseline: {base:.0f} ns/event")
    print(f"k8saudit-aks extraction: {plugin:.0f} ns/event for 33 rule fields, one call each")
    print(f"ratio to orjson.loads: {plugin / base:.2f} (official Go plugin: about 4.6)")
    if args.callgrind and shutil.which("valgrind"):
        ours, theirs = instructions_per_event(requests, len(lines))
        print(f"instructions per event: extraction {ours:,.0f}, orjson.loads {theirs:,.0f}, "
              f"ratio {ours / theirs:.2f}")
    events, rate = replay_events_per_s(args.replay_copies)
    print(f"file replay: {events} events, {rate:,.0f} events/s out of next_batch "
          "(includes process start and Python boot)")


if __name__ == "__main__":
    main()
