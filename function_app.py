"""Ingest function: AKS diagnostic logs from Event Hubs -> audit events -> Storage Queue,
and a watcher that measures the queues' backlog every minute.

The bodies stay thin; the work is in ``ingest.ingestor`` (I/O) and ``extractor`` (pure),
the metrics in ``ingest.telemetry``. Settings, retry semantics and local runs:
``docs/ingest-function.md``; metrics and alerts: ``docs/alerts.md``.
"""

from __future__ import annotations

import logging
import os
from functools import cache

import azure.functions as func
from opentelemetry import metrics

from ingest.ingestor import Ingestor
from ingest.report import FAILED, Report
from ingest.settings import IngestSettings
from ingest.telemetry import METER, FunctionMetrics, azure_monitor_provider
from transport.backlog import measure_backlog

app = func.FunctionApp()

# The storage SDK logs every HTTP request at INFO; keep the one summary line per batch.
logging.getLogger("azure").setLevel(logging.WARNING)

# Metrics go to Application Insights when the app has its connection string; without one
# (local runs) the instruments are OpenTelemetry's no-ops, or whatever provider the host
# process set globally.
if (_provider := azure_monitor_provider(os.environ)) is not None:
    metrics.set_meter_provider(_provider)
function_metrics = FunctionMetrics(metrics.get_meter(METER))


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
    so delivery is at-least-once and the reader dedupes on auditID+stage. Every attempt,
    failed ones included, is counted in the metrics."""
    report = Report()
    try:
        ingestor().ingest([event.get_body() for event in events], report)
    except BaseException:
        report.counts[FAILED] = 1  # also when the settings or clients could not be built
        raise
    finally:
        function_metrics.record_ingest(report)


@app.function_name("watch_queues")
@app.timer_trigger(schedule="0 * * * * *", arg_name="timer", run_on_startup=False,
                   use_monitor=False)
def watch_queues(timer: func.TimerRequest) -> None:
    """Once a minute: how many messages wait in both queues and how old the queue's head
    is. The ingest function cannot tell that Falco stopped reading; this can, even when no
    event arrives."""
    ingest = ingestor()
    queue, deadletter = measure_backlog(ingest.queue), measure_backlog(ingest.deadletter)
    function_metrics.record_backlog(queue, deadletter)
    logging.getLogger("k8saudit.watch").info(
        "queue backlog=%d oldest_s=%.0f deadletter backlog=%d", queue.messages,
        queue.oldest_message_age_s, deadletter.messages)
