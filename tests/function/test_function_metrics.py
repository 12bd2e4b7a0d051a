"""The function's metrics (ingest.telemetry): what each invocation and each watch
publishes equals what the function itself reports, and the real Azure Monitor exporter
sends it as the AppMetrics rows the Bicep alerts query.

The function runs through its own entry points against a real Azurite, with OpenTelemetry's
in-memory reader as the process's meter provider. The exporter test replaces only
Application Insights' ingestion endpoint (harness.metrics.IngestionEndpoint, on loopback)."""

from __future__ import annotations

import logging
import re
import time
from collections import Counter
from collections.abc import Callable, Iterator

import pytest
from azure.storage.queue import QueueClient

import function_app
from extractor.envelope.normalize import Reason
from harness.azurite import Azurite
from harness.function import (
    audit_event,
    hub_body,
    hub_events,
    ingest_function,
    record,
    use_storage,
    watch_function,
)
from harness.metrics import (
    IngestionEndpoint,
    collect,
    exporting_provider,
    global_reader,
    totals,
)
from ingest.report import Report
from ingest.telemetry import METER, PREFIX, FunctionMetrics
from tests import FIXTURES
from transport.backlog import Backlog

BODIES = FIXTURES / "aks" / "eventhub-bodies.jsonl"


@pytest.fixture
def function(azurite: Azurite, names: dict[str, str],
             monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., None]]:
    """The ingest entry point on this test's queues; each call returns nothing, as the
    host sees it."""
    global_reader()
    use_storage(monkeypatch.setenv, azurite.connection_string, names)
    collect(global_reader())  # what earlier tests recorded
    yield ingest_function().get_user_function()
    function_app.ingestor.cache_clear()


def summary(caplog: pytest.LogCaptureFixture) -> Counter[str]:
    """The counters of the invocation's one summary line (Report.line)."""
    (line,) = [r.getMessage() for r in caplog.records if r.name == "k8saudit.ingest"]
    return Counter({k: int(v) for k, v in re.findall(r"(\w+)=(\d+)(?:\s|$)", line)})


REPORT = Report(
    counts=Counter({"bodies": 4, "delivered": 7, "sent": 6, "messages": 2, "claim_checks": 1,
                    "salvaged": 1, Reason.DUPLICATE: 2, Reason.NOT_JSON: 1,
                    Reason.CATEGORY_NOT_ACCEPTED: 3, "dead_lettered": 1, "deferred": 6,
                    "shed": 1}),
    clusters=Counter({"aks-a": 4, "aks-b": 2}), lags_s=[1.0, 2.0, 3.0, 4.0, 5.0, 9.0],
    dead_letter_reasons=Counter({Reason.NOT_JSON: 1}), elapsed_s=0.25)


@pytest.mark.parametrize(("name", "attributes", "value"), [
    ("invocations", {"outcome": "ok"}, 1),
    ("received", {}, 13),  # delivered by the envelope + every drop reason
    ("delivered", {"cluster": "aks-a"}, 4),  # sent to the queue, per cluster
    ("delivered", {"cluster": "aks-b"}, 2),
    ("deduplicated", {}, 2),
    ("skipped", {"reason": "not_json"}, 1),
    ("skipped", {"reason": "category_not_accepted"}, 3),
    ("dead_lettered", {"reason": "not_json"}, 1),
    ("hub_messages", {}, 4),
    ("queue_messages", {}, 2),
    ("claim_checks", {}, 1),
    ("salvaged", {}, 1),
    ("deferred", {}, 6),
    ("shed", {}, 1),
])
def test_a_report_becomes_these_counters(name: str, attributes: dict[str, str],
                                         value: int) -> None:
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    reader = InMemoryMetricReader()
    FunctionMetrics(MeterProvider(metric_readers=[reader]).get_meter(METER)).record_ingest(REPORT)
    found = collect(reader)
    assert found[(PREFIX + name, tuple(sorted(attributes.items())))].sum == value
    names = {key[0].removeprefix(PREFIX) for key in found}
    assert not names & {"sent", "bodies", "messages", "failed", "not_json", "duplicate"}
    lag = found[(PREFIX + "lag", ())]
    assert (lag.count, lag.sum, lag.max) == (6, 24.0, 9.0)


def test_an_invocation_publishes_what_its_summary_line_says(
        function: Callable[..., None], caplog: pytest.LogCaptureFixture) -> None:
    bodies = [line for line in BODIES.read_bytes().splitlines() if line.strip()]
    poison = hub_body(record("kube-audit", "{not json", "aks-poison"))
    caplog.set_level(logging.INFO, logger="k8saudit.ingest")
    function(hub_events([*bodies, poison, bodies[0]]))
    line = summary(caplog)
    found = collect(global_reader())
    got = totals(found)
    assert got[PREFIX + "invocations"] == 1
    assert got[PREFIX + "delivered"] == line["sent"] > 0
    assert got[PREFIX + "hub_messages"] == line["bodies"] == len(bodies) + 2
    assert got[PREFIX + "queue_messages"] == line["messages"]
    assert got[PREFIX + "deduplicated"] == line["duplicate"] > 0
    assert got[PREFIX + "dead_lettered"] == line["dead_lettered"] >= 1
    skipped = {dict(attrs)["reason"]: point.sum for (name, attrs), point in found.items()
               if name == PREFIX + "skipped"}
    assert skipped == {reason: line[reason] for reason in map(str, Reason)
                       if line[reason] and reason != Reason.DUPLICATE}
    assert got[PREFIX + "received"] == line["delivered"] + sum(line[r] for r in map(str, Reason))
    clusters = {dict(attrs)["cluster"] for (name, attrs), _ in found.items()
                if name == PREFIX + "delivered"}
    assert clusters == {"aks-prod-weu", "aks-dev-01", "aks-platform"}  # the capture's three
    lag = found[(PREFIX + "lag", ())]
    assert lag.count == line["sent"] and lag.max is not None and lag.max > 0


def test_a_failed_invocation_counts_as_failed(function: Callable[..., None],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings the function cannot start with, then storage that does not answer: both
    raise to the host, and both are counted."""
    monkeypatch.setenv("RATE_LIMIT_POLICY", "sometimes")
    function_app.ingestor.cache_clear()
    with pytest.raises(ValueError, match="RATE_LIMIT_POLICY"):
        function(hub_events([hub_body(record("kube-audit", audit_event("a1"), "aks-a"))]))
    monkeypatch.delenv("RATE_LIMIT_POLICY")
    monkeypatch.setenv("QUEUE_CONNECTION_STRING", "DefaultEndpointsProtocol=http;AccountName="
                       "devstoreaccount1;AccountKey=a2V5;QueueEndpoint=http://127.0.0.1:9/x;"
                       "BlobEndpoint=http://127.0.0.1:9/x;")
    function_app.ingestor.cache_clear()
    with pytest.raises(Exception):  # noqa: B017 (whatever the storage SDK raises)
        function(hub_events([hub_body(record("kube-audit", audit_event("a2"), "aks-a"))]))
    found = collect(global_reader())
    assert found[(PREFIX + "invocations", (("outcome", "failed"),))].sum == 2
    assert (PREFIX + "invocations", (("outcome", "ok"),)) not in found


def test_the_watcher_measures_both_queues(function: Callable[..., None], azurite: Azurite,
                                          names: dict[str, str]) -> None:
    queue = QueueClient.from_connection_string(azurite.connection_string, names["queue"])
    letters = QueueClient.from_connection_string(azurite.connection_string, names["deadletter"])
    for text in ("a", "b", "c"):
        queue.send_message(text)
    letters.send_message("d")
    time.sleep(2)
    watch_function()()
    found = collect(global_reader())
    assert found[(PREFIX + "queue_backlog_messages", ())].sum == 3
    assert found[(PREFIX + "deadletter_backlog_messages", ())].sum == 1
    age = found[(PREFIX + "queue_oldest_message_age", ())]
    assert age.count == 1 and 1.5 <= age.sum < 60


def test_the_exporter_sends_appmetrics_rows_named_as_the_alerts_read(
        monkeypatch: pytest.MonkeyPatch) -> None:
    endpoint = IngestionEndpoint()
    provider = exporting_provider(endpoint)
    try:
        metrics = FunctionMetrics(provider.get_meter(METER))
        metrics.record_ingest(REPORT)
        metrics.record_backlog(Backlog(12, 930.0), Backlog(2, 5.0))
        assert provider.force_flush(30_000)
    finally:
        provider.shutdown()
        endpoint.close()
    rows = {(r["Name"], tuple(sorted(r["Properties"].items()))): r for r in endpoint.rows}
    assert rows[(PREFIX + "invocations", (("outcome", "ok"),))]["Sum"] == 1
    assert rows[(PREFIX + "delivered", (("cluster", "aks-a"),))]["Sum"] == 4
    assert rows[(PREFIX + "dead_lettered", (("reason", "not_json"),))]["Sum"] == 1
    age = rows[(PREFIX + "queue_oldest_message_age", ())]
    assert (age["ItemCount"], age["Max"]) == (1, 930.0)
