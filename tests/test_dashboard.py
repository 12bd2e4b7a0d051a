"""The Grafana dashboard (deploy/grafana/k8saudit-aks.json) queries only what exists: its
PromQL names metrics Falco serves for the plugin and passes promtool; its KQL compiles in
Kusto's own language service against AppMetrics and names metrics the function
publishes."""

from __future__ import annotations

import re
from collections import Counter

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from extractor.envelope.normalize import Reason
from harness import kql, prometheus
from harness.metrics import collect
from harness.prometheus import dashboard_targets
from ingest.report import Report
from ingest.telemetry import METER, PREFIX, FunctionMetrics
from tests.support import metric_names
from transport.backlog import Backlog

AZURE_MONITOR = "grafana-azure-monitor-datasource"
# Grafana's macros, as the data sources expand them for one query.
MACROS = {"$__rate_interval": "5m", "$__timeFilter(TimeGenerated)": "TimeGenerated > ago(6h)"}


def expand(text: str) -> str:
    for macro, value in MACROS.items():
        text = text.replace(macro, value)
    return text


def function_metric_names() -> set[str]:
    """Every name the function publishes: a report with every counter, and a watch."""
    reader = InMemoryMetricReader()
    metrics = FunctionMetrics(MeterProvider(metric_readers=[reader]).get_meter(METER))
    counts = Counter({key: 1 for key in ["bodies", "delivered", "sent", "messages",
                                         "claim_checks", "deferred", "shed", "failed",
                                         *map(str, Reason)]})
    metrics.record_ingest(Report(counts=counts, clusters=Counter({"a": 1}), lags_s=[1.0],
                                 dead_letter_reasons=Counter({"not_json": 1})))
    metrics.record_backlog(Backlog(1, 1.0), Backlog(1, 1.0))
    return {name for name, _ in collect(reader)}


def test_the_dashboard_has_both_sides() -> None:
    assert len(dashboard_targets("prometheus")) >= 4
    assert len(dashboard_targets(AZURE_MONITOR)) >= 4


def test_promql_names_served_metrics_and_passes_promtool() -> None:
    served = set(metric_names.documented().values())
    patterns = [re.escape(p).replace("<reason>", "[a-z0-9_]+") for p in served]
    exprs = [expand(t["expr"]) for t in dashboard_targets("prometheus")]
    for expr in exprs:
        named = re.findall(r"falcosecurity_plugins_k8saudit_aks_[a-z0-9_.+]+", expr)
        assert named, expr
        for name in named:
            if ".+" in name:  # a regex over a family: it must match some served name
                assert any(re.fullmatch(name, p.replace("<reason>", "x")) for p in served), name
            else:
                assert any(re.fullmatch(p, name) for p in patterns), name
    promtool = prometheus.find_promtool()
    if promtool is None:
        pytest.skip("no promtool: `make test` unpacks Debian's prometheus package into build/")
    group = {"name": "dashboard", "rules": [{"record": f"dashboard:query{i}", "expr": expr}
                                            for i, expr in enumerate(exprs)]}
    checked = prometheus.check_rules(promtool, [group])
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_kql_compiles_and_names_published_metrics() -> None:
    queries = [expand(t["azureLogAnalytics"]["query"]) for t in
               dashboard_targets(AZURE_MONITOR)]
    published = function_metric_names()
    for query, result in zip(queries, kql.check(queries), strict=True):
        assert result.errors == [], (query, result.errors)
        named = set(re.findall(r'"(k8saudit_aks\.function\.[a-z_]+)"', query))
        assert named and named <= published, (named - published, query)
    assert {PREFIX + "delivered", PREFIX + "lag", PREFIX + "dead_lettered",
            PREFIX + "queue_oldest_message_age"} <= published
