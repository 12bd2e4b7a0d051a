"""The Azure Monitor alerts of infra/bicep/modules/alerts.bicep: each query compiles in
Kusto's own language service against AppMetrics and yields the measure and dimensions its
rule reads, and each alert's condition, made real on Azurite through the function's entry
points, shows in the AppMetrics rows the production exporter sends.

No Log Analytics runs here, so what a query computes from those rows is restated below
(`MEASURES`, one function per query file); each restatement reads the metric names its
query filters on, which the test holds to the query text."""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from azure.storage.queue import QueueClient

import function_app
from harness import function as fn
from harness import kql
from harness.azurite import Azurite
from harness.metrics import IngestionEndpoint, exporting_provider
from ingest.telemetry import METER, PREFIX, FunctionMetrics
from tests.infra.conftest import BICEP_DIR, INFRA_PYTHON, require_infra_venv

Row = dict[str, Any]
Measure = Callable[[list[Row], float], dict[str, float]]  # dimension value -> measure


def _when(row: Row) -> float:
    return datetime.fromisoformat(row["TimeGenerated"].replace("Z", "+00:00")).timestamp()


def _named(rows: list[Row], name: str, **properties: str) -> list[Row]:
    return [r for r in rows if r["Name"] == PREFIX + name
            and all(r["Properties"].get(k) == v for k, v in properties.items())]


def _silent_minutes(rows: list[Row], now: float) -> dict[str, float]:
    last: dict[str, float] = {}
    for row in _named(rows, "delivered"):
        if row["Sum"] > 0:
            cluster = row["Properties"]["cluster"]
            last[cluster] = max(last.get(cluster, 0.0), _when(row))
    return {cluster: (now - when) / 60 for cluster, when in last.items()}


def _oldest_minutes(rows: list[Row], now: float) -> dict[str, float]:
    watches = _named(rows, "queue_oldest_message_age")
    return {"": 1.0e9 if not watches else max(r["Max"] for r in watches) / 60}


def _reasons(rows: list[Row], now: float) -> dict[str, float]:
    found: dict[str, float] = {}
    for row in _named(rows, "dead_lettered"):
        reason = row["Properties"]["reason"]
        found[reason] = found.get(reason, 0) + row["Sum"]
    return found


# query file -> (metric names it reads, what it computes)
MEASURES: dict[str, tuple[set[str], Measure]] = {
    "ingest-stalled.kql": ({"invocations"}, lambda rows, now: {
        "": sum(r["Sum"] for r in _named(rows, "invocations", outcome="ok"))}),
    "ingest-failing.kql": ({"invocations"}, lambda rows, now: {
        "": sum(r["Sum"] for r in _named(rows, "invocations", outcome="failed"))}),
    "dead-letters.kql": ({"dead_lettered"}, _reasons),
    "cluster-silent.kql": ({"delivered"}, _silent_minutes),
    "queue-backlog.kql": ({"queue_oldest_message_age"}, _oldest_minutes),
}
OPERATORS = {"LessThan": float.__lt__, "GreaterThan": float.__gt__,
             "GreaterThanOrEqual": float.__ge__}


def _parsed(path: Path) -> dict[str, Any]:
    require_infra_venv()
    done = subprocess.run([str(INFRA_PYTHON), str(Path(__file__).parents[1] / "infra" /
                                                  "bicep_json.py"), str(path)],
                          capture_output=True, text=True, timeout=120, check=True)
    template: dict[str, Any] = next(iter(json.loads(done.stdout).values()))
    return template


@pytest.fixture(scope="module")
def rules() -> dict[str, dict[str, Any]]:
    """Each alert rule of alerts.bicep, its threshold resolved to main.bicep's default."""
    main = _parsed(BICEP_DIR / "main.bicep")
    passed = main["modules"]["alerts"]["config"]["config"]["params"]
    defaults = {name: p["default"] for name, p in main["parameters"].items() if "default" in p}
    found = {}
    for rule in _parsed(BICEP_DIR / "modules" / "alerts.bicep")["variables"]["rules"]["value"]:
        threshold = rule["threshold"]
        if isinstance(threshold, str):
            threshold = defaults[passed[threshold]]
        path = rule["query"]["function"]["parameters"]["file_path"]
        found[rule["name"]] = {**rule, "threshold": float(threshold),
                               "file": Path(path).name,
                               "text": (BICEP_DIR / "modules" / path).read_text()}
    return found


def test_rules_deploy_before_the_first_metric_exists() -> None:
    """A fresh workspace has no AppMetrics table until the function first exports, and
    Azure refuses a rule whose query names an unknown table unless told to skip the check."""
    template = _parsed(BICEP_DIR / "modules" / "alerts.bicep")
    (rule,) = [r for r in template["resources"].values()
               if r["type"] == "Microsoft.Insights/scheduledQueryRules"]
    assert rule["config"]["config"]["properties"]["skipQueryValidation"] is True


# The window sizes (minutes) Azure takes for a log alert; it refuses others at deployment
# ("Supported granularities are: 5, 10, 15, 30, 45, 60, 120, 180, 240, 300, 360, 1440,
# 2880", Azure/azure-rest-api-specs#21258).
WINDOWS_MIN = {5, 10, 15, 30, 45, 60, 120, 180, 240, 300, 360, 1440, 2880}


def _minutes(iso: str) -> int:
    match = re.fullmatch(r"PT(\d+)([MH])", iso)
    assert match, iso
    return int(match[1]) * (60 if match[2] == "H" else 1)


def test_every_window_a_parameter_allows_is_one_azure_takes() -> None:
    template = _parsed(BICEP_DIR / "modules" / "alerts.bicep")
    allowed = {name: next((d["argument"] for d in p["decorators"] if d["type"] == "allowed"),
                          None) for name, p in template["parameters"].items()}
    for rule in template["variables"]["rules"]["value"]:
        window, frequency = rule["window"], rule["frequency"]
        names = re.findall(r"\$\{(\w+)\}", window)
        values = allowed[names[0]] if names else [None]
        assert values is not None, (rule["name"], "window from a parameter without @allowed")
        for value in values:
            minutes = _minutes(re.sub(r"\$\{\w+\}", str(value), window))
            assert minutes in WINDOWS_MIN, (rule["name"], value)
            assert _minutes(frequency) <= minutes, rule["name"]


def fired(rule: dict[str, Any], rows: list[Row], now: float) -> set[str]:
    """The dimension values (or "" for none) the rule alerts on."""
    compare = OPERATORS[rule["operator"]]
    measure = MEASURES[rule["file"]][1](rows, now)
    return {key for key, value in measure.items() if compare(float(value), rule["threshold"])}


def test_every_query_compiles_and_yields_what_its_rule_reads(rules: dict[str, Any]) -> None:
    assert {rule["file"] for rule in rules.values()} == set(MEASURES)
    checked = kql.check([rule["text"] for rule in rules.values()])
    for (name, rule), result in zip(rules.items(), checked, strict=True):
        assert result.errors == [], (name, result.errors)
        assert result.columns.get(rule["measure"]) in ("real", "long", "int"), (name, result)
        for dimension in rule["dimensions"]:
            assert result.columns.get(dimension["name"]) == "string", (name, dimension)
        names = set(re.findall(r'Name == "k8saudit_aks\.function\.([a-z_]+)"', rule["text"]))
        assert names == MEASURES[rule["file"]][0], name


@pytest.fixture
def exported(azurite: Azurite, names: dict[str, str],
             monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[], list[Row]]]:
    """The function's entry points on this test's queues, their metrics sent by the real
    exporter; calling the fixture flushes and returns every AppMetrics row so far."""
    fn.use_storage(monkeypatch.setenv, azurite.connection_string, names)
    endpoint = IngestionEndpoint()
    provider = exporting_provider(endpoint)
    monkeypatch.setattr(function_app, "function_metrics",
                        FunctionMetrics(provider.get_meter(METER)))

    def flush() -> list[Row]:
        assert provider.force_flush(30_000)
        return list(endpoint.rows)

    yield flush
    provider.shutdown()
    endpoint.close()
    function_app.ingestor.cache_clear()


def body(cluster: str, *logs: Any) -> bytes:
    return fn.hub_body(*(fn.record("kube-audit", log, cluster) for log in logs))


def test_a_cluster_that_stops_sending_and_a_poison_record_alert(
        rules: dict[str, Any], exported: Callable[[], list[Row]]) -> None:
    ingest = fn.ingest_function().get_user_function()
    ingest(fn.hub_events([body("aks-a", fn.audit_event("a1")),
                       body("aks-b", fn.audit_event("b1"), '{"cut')]))
    exported()
    time.sleep(1.5)
    ingest(fn.hub_events([body("aks-a", fn.audit_event("a2"))]))  # aks-b sends nothing more
    rows = exported()
    now = max(_when(r) for r in rows)
    limit = rules["cluster-silent"]["threshold"] * 60
    assert fired(rules["cluster-silent"], rows, now) == set()
    assert fired(rules["cluster-silent"], rows, now + limit - 0.5) == {"aks-b"}
    assert fired(rules["dead-letters"], rows, now) == {"truncated_unrecoverable"}
    assert fired(rules["ingest-stalled"], rows, now) == set()
    assert fired(rules["ingest-failing"], rows, now) == set()


def test_failing_invocations_alert(rules: dict[str, Any], exported: Callable[[], list[Row]],
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Storage gone: every attempt fails (the host retries it); nothing succeeds."""
    monkeypatch.setenv("QUEUE_CONNECTION_STRING", "DefaultEndpointsProtocol=http;AccountName="
                       "devstoreaccount1;AccountKey=a2V5;QueueEndpoint=http://127.0.0.1:9/x;"
                       "BlobEndpoint=http://127.0.0.1:9/x;")
    function_app.ingestor.cache_clear()
    ingest = fn.ingest_function().get_user_function()
    for attempt in range(int(rules["ingest-failing"]["threshold"])):
        with pytest.raises(Exception):  # noqa: B017 (whatever the storage SDK raises)
            ingest(fn.hub_events([body("aks-a", fn.audit_event(f"f{attempt}"))]))
    rows = exported()
    now = max(_when(r) for r in rows)
    assert fired(rules["ingest-failing"], rows, now) == {""}
    assert fired(rules["ingest-stalled"], rows, now) == {""}
    assert fired(rules["ingest-stalled"], [], now) == {""}  # not even triggered


def test_a_queue_nobody_reads_alerts(rules: dict[str, Any], exported: Callable[[], list[Row]],
                                     azurite: Azurite, names: dict[str, str]) -> None:
    """The reader stopped: the watcher's age of the queue's head grows with the clock (the
    threshold is minutes; here the growth is shown in seconds), and a watcher that
    measured nothing alerts at any threshold."""
    queue = QueueClient.from_connection_string(azurite.connection_string, names["queue"])
    queue.send_message("waiting")
    watch = fn.watch_function()
    watch()
    exported()  # one export a watch, as a minute between them would give
    time.sleep(2)
    watch()
    rows = exported()
    ages = [r["Max"] for r in rows if r["Name"] == PREFIX + "queue_oldest_message_age"]
    assert len(ages) == 2 and ages[1] - ages[0] >= 1.5, ages
    now = max(_when(r) for r in rows)
    measure = MEASURES["queue-backlog.kql"][1]
    assert measure(rows, now)[""] == pytest.approx(ages[1] / 60)
    assert fired(rules["queue-backlog"], rows, now) == set()
    assert fired(rules["queue-backlog"], [], now) == {""}
