"""What the pipeline consumes per million audit events, the quantities an Azure bill is made
of: the ingest function's CPU-seconds and peak memory, storage transactions by operation
(queue put, get, delete, update, peek and metadata; blob put, get and delete), and the bytes
stored in queue messages and claim-check blobs.

Measured on Azurite in this process: AKS Event Hub bodies of the generated events (every
event in `kube-audit`, half again in `kube-audit-admin`, 3% over 64 KiB) go through the
function's own entry point in batches of 64 bodies, then the plugin's queue source drains
the queue as Falco drives it. Every HTTP request either makes is counted at azure-core's
transport, so retries and polls are counted too. docs/cost.md turns the quantities into a
bill.
"""

from __future__ import annotations

import json
import os
import re
import resource
import time
from collections import Counter
from typing import Any

import orjson
from azure.core.pipeline.transport import RequestsTransport

from harness.azurite import Azurite
from harness.function import entry, hub_events
from plugin.k8saudit_aks.config import parse_config
from plugin.k8saudit_aks.sources.queue import QueueInstance
from plugin.sdk import Timeout
from tests import FIXTURES

EVENTS = 20_000
BATCH = 64
NAMES = {"QUEUE_NAME": "cost", "DEADLETTER_QUEUE_NAME": "cost-deadletter",
         "CLAIMCHECK_CONTAINER": "cost-claims"}
BIG_EVERY = 33  # about 3% of events carry a request object over 64 KiB, as in AKS traffic


def operation(method: str, url: str) -> str:
    """The billable operation of one storage request."""
    path, _, query = url.partition("?")
    if "/messages" in path:
        if method == "GET":
            return "queue peek" if "peekonly=true" in query else "queue get"
        return {"POST": "queue put", "DELETE": "queue delete", "PUT": "queue update"}.get(
            method, f"queue {method}")
    if "comp=metadata" in query:
        return "queue metadata"
    if re.search(r"/v1/[0-9a-f]{32}\.zlib$|/deadletter/", path):
        return {"PUT": "blob put", "GET": "blob get", "DELETE": "blob delete"}.get(
            method, f"blob {method}")
    return f"other {method}"  # creating queues and containers, once


class Counting:
    """Every request through azure-core's requests transport, by operation."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.sent_bytes: Counter[str] = Counter()
        self._send = RequestsTransport.send

    def __enter__(self) -> Counting:
        counting = self

        def send(transport: RequestsTransport, request: Any, **kwargs: Any) -> Any:
            kind = operation(request.method, request.url)
            counting.counts[kind] += 1
            if kind in ("queue put", "blob put") and request.body is not None:
                counting.sent_bytes[kind] += len(request.body)
            return counting._send(transport, request, **kwargs)

        RequestsTransport.send = send
        return self

    def __exit__(self, *exc: object) -> None:
        RequestsTransport.send = self._send


def bodies(n: int) -> list[bytes]:
    lines = (FIXTURES / "audit-events" / "generated.jsonl").read_bytes().splitlines()
    base = [orjson.loads(line) for line in lines[:400]]  # the well-formed half
    rid = ("/SUBSCRIPTIONS/S/RESOURCEGROUPS/RG/PROVIDERS/MICROSOFT.CONTAINERSERVICE/"
           "MANAGEDCLUSTERS/AKS-COST")
    records = []
    for i in range(n):
        event = dict(base[i % len(base)], auditID=f"cost-{i:08d}")
        if i % BIG_EVERY == BIG_EVERY - 1:
            event["requestObject"] = {"data": os.urandom(40_000).hex()}
        log = orjson.dumps(event).decode()
        records.append({"category": "kube-audit", "resourceId": rid, "properties": {"log": log}})
        if i % 2:
            records.append({"category": "kube-audit-admin", "resourceId": rid,
                            "properties": {"log": log}})
    return [orjson.dumps({"records": records[i:i + 20]}) for i in range(0, len(records), 20)]


def main() -> None:
    azurite = Azurite()
    azurite.start()
    try:
        function = entry(azurite.connection_string,
                         {**NAMES, "rate_limit_events_per_second": "0"})
        data = bodies(EVENTS)
        with Counting() as ingest:
            cpu = time.process_time()
            for start in range(0, len(data), BATCH):
                function(hub_events(data[start:start + BATCH], start))
            ingest_cpu = time.process_time() - cpu
        ingest_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        config = parse_config(json.dumps({
            "queue_name": NAMES["QUEUE_NAME"],
            "queue_connection_string": azurite.connection_string,
            "deadletter_queue_name": NAMES["DEADLETTER_QUEUE_NAME"],
            "claimcheck_container": NAMES["CLAIMCHECK_CONTAINER"]}))
        with Counting() as drain:
            source = QueueInstance(config.mode, config.common)  # type: ignore[arg-type]
            delivered, idle = 0, 0
            while idle < 100:
                try:
                    delivered += len(source.next_batch())
                    idle = 0
                except Timeout:
                    idle += 1
            source.close()
    finally:
        azurite.close()
    per = 1_000_000 / EVENTS
    print(f"{EVENTS} events ({len(data)} bodies), {delivered} delivered to the plugin; "
          "per million audit events:")
    print(f"  function CPU: {ingest_cpu * per:8.1f} s (its SDK calls included); peak RSS of the"
          f" process {ingest_rss:.0f} MiB (batches of {BATCH} bodies, its input held)")
    for side, counted in (("function", ingest), ("plugin", drain)):
        for kind, n in sorted(counted.counts.items()):
            print(f"  {side:8} {kind:15} {n * per:12,.0f}")
    stored = ingest.sent_bytes["queue put"] + ingest.sent_bytes["blob put"]
    print(f"  bytes written: queue messages {ingest.sent_bytes['queue put'] * per / 2**30:.2f}"
          f" GiB, claim-check blobs {ingest.sent_bytes['blob put'] * per / 2**30:.2f} GiB "
          f"(each deleted once read: {stored * per / 2**30:.2f} GiB through the account)")


if __name__ == "__main__":
    main()
