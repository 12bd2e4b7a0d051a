"""Where the function's metrics go in tests: OpenTelemetry's in-memory reader, and a
loopback stand-in for Application Insights' ingestion endpoint that the real Azure Monitor
exporter posts to (the one network boundary replaced; everything up to the HTTP request is
the production exporter)."""

from __future__ import annotations

import gzip
import json
import os
import threading
from collections import defaultdict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry import metrics
from opentelemetry.sdk.metrics import Counter, Histogram, MeterProvider
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    HistogramDataPoint,
    InMemoryMetricReader,
    MetricsData,
    NumberDataPoint,
)

DELTA = {Counter: AggregationTemporality.DELTA, Histogram: AggregationTemporality.DELTA}
Key = tuple[str, tuple[tuple[str, str], ...]]


@dataclass(frozen=True, slots=True)
class Point:
    """What an interval recorded for one name and attribute set: a counter's sum, or a
    histogram's sum, sample count and maximum."""

    sum: float
    count: int = 1
    max: float | None = None


@cache
def global_reader() -> InMemoryMetricReader:
    """The process-wide meter provider, with deltas kept in memory (OpenTelemetry allows one
    global provider a process; function_app's meter binds to it whenever it is set)."""
    reader = InMemoryMetricReader(preferred_temporality=DELTA)  # type: ignore[arg-type]
    metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))
    return reader


def collect(reader: InMemoryMetricReader) -> dict[Key, Point]:
    """What was recorded since the last collect, by (name, sorted attributes)."""
    return points(reader.get_metrics_data())


def points(data: MetricsData | None) -> dict[Key, Point]:
    found: dict[Key, Point] = {}
    for resource in data.resource_metrics if data else ():
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                for point in metric.data.data_points:
                    key = (metric.name, tuple(sorted(
                        (k, str(v)) for k, v in (point.attributes or {}).items())))
                    if isinstance(point, HistogramDataPoint):
                        found[key] = Point(point.sum, point.count, point.max)
                    elif isinstance(point, NumberDataPoint):
                        found[key] = Point(point.value)
    return found


def totals(found: Mapping[Key, Point]) -> dict[str, float]:
    """Sums by name, attributes added up."""
    summed: dict[str, float] = defaultdict(float)
    for (name, _), point in found.items():
        summed[name] += point.sum
    return dict(summed)


class IngestionEndpoint:
    """Application Insights' track endpoint on loopback: keeps each metric envelope as the
    ``AppMetrics`` row it becomes (Name, Sum, ItemCount, Min, Max, Properties)."""

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []
        rows = self.rows

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                envelopes = json.loads(body)
                for envelope in envelopes if isinstance(envelopes, list) else [envelopes]:
                    rows.extend(_rows(envelope))
                answer = json.dumps({"itemsReceived": len(envelopes),
                                     "itemsAccepted": len(envelopes), "errors": []}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def connection_string(self) -> str:
        port = self.server.server_address[1]
        return ("InstrumentationKey=00000000-0000-0000-0000-000000000000;"
                f"IngestionEndpoint=http://127.0.0.1:{port}/")

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _rows(envelope: dict[str, Any]) -> Iterator[dict[str, Any]]:
    base = envelope.get("data", {}).get("baseData", {})
    if envelope.get("data", {}).get("baseType") != "MetricData":
        return
    for metric in base.get("metrics", []):
        yield {"Name": metric["name"], "Sum": metric["value"],
               "ItemCount": metric.get("count", 1), "Min": metric.get("min"),
               "Max": metric.get("max"), "Properties": base.get("properties", {}),
               "TimeGenerated": envelope.get("time")}


def exporting_provider(endpoint: IngestionEndpoint) -> MeterProvider:
    """A provider exporting through the production exporter to ``endpoint``;
    ``force_flush()`` sends. Offline storage off, and the exporter's own telemetry
    (statsbeat, SDK stats, the control plane's feature flags) off for this process: a test
    talks to nothing but the endpoint."""
    from azure.monitor.opentelemetry.exporter import AzureMonitorMetricExporter
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

    for switch in ("APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL",
                   "APPLICATIONINSIGHTS_SDKSTATS_DISABLED",
                   "APPLICATIONINSIGHTS_CONTROLPLANE_DISABLED"):
        os.environ[switch] = "true"

    exporter = AzureMonitorMetricExporter(connection_string=endpoint.connection_string,
                                          disable_offline_storage=True)
    return MeterProvider(metric_readers=[PeriodicExportingMetricReader(
        exporter, export_interval_millis=3_600_000)])
