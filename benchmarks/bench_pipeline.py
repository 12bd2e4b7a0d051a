"""End to end through Azurite: function entry -> Storage Queue, events/s and latency.

Replays the AKS Event Hub capture (tests/fixtures/aks/eventhub-bodies.jsonl) a few times
through the ingest function's process singleton, as its entry point calls it (the bodies of
real EventHubEvent batches), against a real Azurite, while a reader thread polls the queue.
Latency of an event = first time a reader receives its message - entry of the invocation
that carried it. Rate limit off (0), so this measures the pipeline, not the limiter; dedupe
window reset between replays so each replay is new traffic.

    .venv/bin/python -m benchmarks.bench_pipeline [--replays N] [--batch BODIES]
"""

from __future__ import annotations

import argparse
import os
import statistics
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

import function_app
from extractor.message.codec import unpack
from harness.azurite import Azurite
from harness.function import hub_events
from tests import FIXTURES

ROOT = Path(__file__).resolve().parents[1]
BODIES = FIXTURES / "aks" / "eventhub-bodies.jsonl"


class Reader(threading.Thread):
    """Polls the queue and notes when each message id is first received."""

    def __init__(self, queue) -> None:
        super().__init__(daemon=True)
        self.queue = queue
        self.seen: dict[str, float] = {}
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            got = False
            for message in self.queue.receive_messages(max_messages=32, visibility_timeout=600):
                now = time.perf_counter()
                self.seen.setdefault(unpack(message.content).message_id, now)
                got = True
            if not got:
                time.sleep(0.002)


def percentile(sorted_values: list[float], q: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replays", type=int, default=5)
    parser.add_argument("--batch", type=int, default=16, help="Event Hub events per invocation")
    args = parser.parse_args()

    bodies = [line for line in BODIES.read_bytes().splitlines() if line.strip()]
    azurite = Azurite()
    azurite.start()
    tag = uuid.uuid4().hex[:8]
    os.environ.update({
        "QUEUE_CONNECTION_STRING": azurite.connection_string,
        "QUEUE_NAME": f"bench{tag}", "DEADLETTER_QUEUE_NAME": f"benchdl{tag}",
        "CLAIMCHECK_CONTAINER": f"benchclaims{tag}", "rate_limit_events_per_second": "0",
    })
    try:
        ingestor = function_app.ingestor()  # clients built and queues created before timing
        reader = Reader(ingestor.queue)
        reader.start()

        sent: list[tuple[float, str, int]] = []  # (entry time, message id, events)
        total: Counter[str] = Counter()
        durations: list[float] = []
        sequence = 0
        first = time.perf_counter()
        for _ in range(args.replays):
            ingestor.chain.forget()
            for start in range(0, len(bodies), args.batch):
                events = hub_events(bodies[start:start + args.batch], sequence)
                sequence += len(events)
                entered = time.perf_counter()
                report = ingestor.ingest([event.get_body() for event in events])
                durations.append(time.perf_counter() - entered)
                total.update(report.counts)
                sent += [(entered, m.message_id, m.count) for m in report.sent]
        deadline = time.monotonic() + 30
        while len(reader.seen) < len(sent) and time.monotonic() < deadline:
            time.sleep(0.01)
        reader.stop.set()
        reader.join()
        if len(reader.seen) < len(sent):
            raise SystemExit(f"only {len(reader.seen)} of {len(sent)} messages seen")

        last = max(reader.seen.values())
        latencies = sorted(lat for entered, mid, n in sent
                           for lat in [reader.seen[mid] - entered] * n)
        print(f"bodies {len(bodies)} x {args.replays} replays, {args.batch} per invocation: "
              f"{len(durations)} invocations, {total['sent']} events, "
              f"{total['messages']} messages")
        print(f"end to end: {total['sent'] / (last - first):,.0f} events/s "
              f"(function entry of the first batch -> last message received)")
        print(f"latency entry -> received: p50 {percentile(latencies, 0.50) * 1000:.1f} ms, "
              f"p99 {percentile(latencies, 0.99) * 1000:.1f} ms")
        print(f"invocation time: p50 {statistics.median(durations) * 1000:.1f} ms, "
              f"max {max(durations) * 1000:.1f} ms")
        print(f"events per message: {total['sent'] / total['messages']:.1f} "
              f"(claim checks {total['claim_checks']}, dead letters {total['dead_lettered']})")
    finally:
        function_app.ingestor.cache_clear()
        azurite.close()


if __name__ == "__main__":
    main()
