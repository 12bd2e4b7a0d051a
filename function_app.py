"""Ingest function: AKS diagnostic logs from Event Hubs -> audit events -> Storage Queue.

The body stays thin; the work is in ``transport.ingest`` (I/O) and ``extractor`` (pure).
Settings, retry semantics and local runs: ``docs/ingest-function.md``.
"""

from __future__ import annotations

import logging
from functools import cache

import azure.functions as func

from transport.ingest import Ingestor, IngestSettings

app = func.FunctionApp()

# The storage SDK logs every HTTP request at INFO; keep the one summary line per batch.
logging.getLogger("azure").setLevel(logging.WARNING)


@cache
def ingestor() -> Ingestor:
    """One per worker process, built on first use: the clients, the rate-limit bucket and
    the cross-batch dedupe window outlive invocations."""
    return Ingestor.from_settings(IngestSettings.from_env())


@app.function_name("ingest_audit")
# Retry forever: Event Hubs checkpoints are written only once the retry policy is done, so a
# finite count would checkpoint past a batch that never reached the queue.
@app.retry(strategy="exponential_backoff", max_retry_count="-1",
           minimum_interval="00:00:05", maximum_interval="00:05:00")
@app.event_hub_message_trigger(
    arg_name="events",
    event_hub_name="%EVENTHUB_NAME%",
    connection="EVENTHUB",
    consumer_group="%EVENTHUB_CONSUMER_GROUP%",
    cardinality=func.Cardinality.MANY,
    data_type=func.DataType.BINARY,
)
def ingest_audit(events: list[func.EventHubEvent]) -> None:
    """Raises on any storage failure (never swallowed): the host retries the whole batch,
    so delivery is at-least-once and the reader dedupes on auditID+stage."""
    ingestor().ingest([event.get_body() for event in events])
