"""The ingest function's metrics: OpenTelemetry instruments named like the plugin's
counters, exported to Application Insights by the Azure Monitor exporter.

Every invocation's :class:`~ingest.ingestor.Report` becomes counter increments and
histogram samples; the queue watcher's :class:`~transport.backlog.Backlog` readings become
samples too. Histograms rather than gauges for those readings: a histogram point is
exported only for an interval that recorded one (the exporter asks for delta temporality),
so a watcher that stopped leaves a gap the alerts see, instead of a last value repeated
forever. In Application Insights each point is one ``AppMetrics`` row (``Name``, ``Sum``,
``ItemCount``, ``Min``, ``Max``, the attributes in ``Properties``). Names, attributes and
the alerts that read them: ``docs/alerts.md``.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping

from opentelemetry.metrics import Counter, Histogram, Meter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

from extractor.envelope.normalize import DELIVERED, Reason
from ingest.report import BODIES, DEAD_LETTERED, FAILED, MESSAGES, SENT, Report
from transport.backlog import Backlog

METER = "k8saudit_aks.function"
PREFIX = "k8saudit_aks.function."

# Report counters exported under the plugin's name for the same thing, or another name.
_RENAMED = {BODIES: "hub_messages", MESSAGES: "queue_messages",
            str(Reason.DUPLICATE): "deduplicated"}
# Report counters exported otherwise: broken down by an attribute, or as `invocations`.
_BROKEN_DOWN = {SENT, DEAD_LETTERED, FAILED, DELIVERED}
_REASONS = frozenset(str(reason) for reason in Reason)

# name: (unit, description) of each histogram.
HISTOGRAMS = {
    "lag": ("s", "seconds from an event's stageTimestamp to the send of its queue message"),
    "rate_limit_delay": ("s", "visibility delay of each queue message (rate limit, defer)"),
    "duration": ("s", "seconds one invocation took"),
    "queue_backlog_messages": ("{message}", "messages in the queue, per watch"),
    "queue_oldest_message_age": ("s", "age of the queue's oldest visible message, per watch"),
    "deadletter_backlog_messages": ("{message}", "messages in the dead-letter queue, per watch"),
}


class FunctionMetrics:
    """The function's instruments on one meter. Thread-safe: the worker may run invocations
    for several partitions at once; OpenTelemetry's instruments are, and counters (named by
    the report's keys) are created under a lock."""

    def __init__(self, meter: Meter) -> None:
        self._meter = meter
        self._counters: dict[str, Counter] = {}
        self._creating = threading.Lock()
        self._histograms = {name: meter.create_histogram(PREFIX + name, unit, description)
                            for name, (unit, description) in HISTOGRAMS.items()}

    def record_ingest(self, report: Report) -> None:
        """One invocation: each counter of its report, under the plugin's names where the
        plugin counts the same thing."""
        counts = report.counts
        self._add("invocations", 1, {"outcome": "failed" if counts[FAILED] else "ok"})
        self._add("received", counts[DELIVERED] + sum(counts[r] for r in _REASONS))
        for cluster, sent in report.clusters.items():
            self._add("delivered", sent, {"cluster": cluster})
        for reason, lettered in report.dead_letter_reasons.items():
            self._add("dead_lettered", lettered, {"reason": str(reason)})
        for key, value in counts.items():
            if key in _RENAMED:
                self._add(_RENAMED[key], value)
            elif key in _REASONS:
                self._add("skipped", value, {"reason": str(key)})
            elif key not in _BROKEN_DOWN:
                self._add(key, value)
        self._record("lag", report.lags_s)
        self._record("rate_limit_delay", report.delays)
        self._record("duration", [report.elapsed_s])

    def record_backlog(self, queue: Backlog, deadletter: Backlog) -> None:
        """One watch of the queue and the dead-letter queue."""
        self._record("queue_backlog_messages", [queue.messages])
        self._record("queue_oldest_message_age", [queue.oldest_message_age_s])
        self._record("deadletter_backlog_messages", [deadletter.messages])

    def _add(self, name: str, value: int, attributes: Mapping[str, str] | None = None) -> None:
        if not value:
            return
        counter = self._counters.get(name)
        if counter is None:
            with self._creating:
                counter = self._counters.get(name)
                if counter is None:
                    counter = self._counters[name] = self._meter.create_counter(PREFIX + name)
        counter.add(value, attributes)

    def _record(self, name: str, values: list[float] | list[int]) -> None:
        histogram: Histogram = self._histograms[name]
        for value in values:
            histogram.record(value)


def azure_monitor_provider(env: Mapping[str, str]) -> MeterProvider | None:
    """A meter provider exporting to Application Insights, when the app has a connection
    string (``APPLICATIONINSIGHTS_CONNECTION_STRING``); with Entra ID authentication when
    ``APPLICATIONINSIGHTS_AUTHENTICATION_STRING`` asks for it (the Bicep disables the
    instrumentation key). The export interval is OpenTelemetry's
    ``OTEL_METRIC_EXPORT_INTERVAL`` (ms, default 60000)."""
    connection_string = env.get("APPLICATIONINSIGHTS_CONNECTION_STRING", "").strip()
    if not connection_string:
        return None
    from azure.monitor.opentelemetry.exporter import AzureMonitorMetricExporter

    from transport.clients import default_credential

    aad = "authorization=aad" in env.get("APPLICATIONINSIGHTS_AUTHENTICATION_STRING",
                                         "").lower()
    exporter = AzureMonitorMetricExporter(
        connection_string=connection_string,
        credential=default_credential() if aad else None)
    return MeterProvider(metric_readers=[PeriodicExportingMetricReader(exporter)])
