"""The Prometheus alert rules shipped for Falco (deploy/falco/prometheus-rules.json, also
the AKS managed Prometheus rule group of infra/bicep): promtool accepts them, they read only
names real Falco serves, and each fires on what real Falco serves when its condition holds.

The real run: Falco 0.45 drains a queue on Azurite with its web server on; a poison
message is dead-lettered, then nothing more arrives, then Falco stops. Scraped every second
and replayed to promtool 60 times slower (harness.prometheus.dilate), the shipped rules
fire: dead letters right after the poison, no events once the source has been idle for 15
(dilated) minutes, and the metrics' absence ten minutes after Prometheus lets Falco's last
samples go."""

from __future__ import annotations

import json
import re
import threading
import time
from pathlib import Path

import pytest

from harness import falco as runner
from harness import prometheus
from harness.azurite import Azurite, free_port
from tests import OFFICIAL_RULES
from tests.e2e.support import Pipeline, audit_events
from tests.plugin import metric_names

METRICS = {"enabled": True, "interval": "1s", "plugins_metrics_enabled": True,
           "output_rule": False, "rules_counters_enabled": False,
           "resource_utilization_enabled": False, "state_counters_enabled": False}
CRITICAL = [{"severity": "critical"}]
WARNING = [{"severity": "warning"}]


@pytest.fixture(scope="module")
def promtool() -> Path:
    found = prometheus.find_promtool()
    if found is None:
        pytest.skip("no promtool: `make test` unpacks Debian's prometheus package into build/")
    return found


def alerts() -> dict[str, dict[str, object]]:
    return {rule["alert"]: rule for group in prometheus.rule_groups() for rule in group["rules"]}


def test_promtool_accepts_the_rules(promtool: Path) -> None:
    checked = prometheus.check_rules(promtool, prometheus.rule_groups())
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(alerts())} rules found" in checked.stdout


def test_the_rules_read_only_metrics_the_plugin_serves() -> None:
    served = set(metric_names.documented().values())
    for name, rule in alerts().items():
        used = set(re.findall(r"falcosecurity_plugins_k8saudit_aks_[a-z0-9_]+", str(rule["expr"])))
        assert used and used <= served, (name, used - served)


def test_each_rule_says_how_bad_and_where_the_runbook_is() -> None:
    runbook = (Path(__file__).resolve().parents[2] / "docs" / "alerts.md").read_text()
    for name, rule in alerts().items():
        assert rule["labels"] in ({"severity": "critical"}, {"severity": "warning"}), name
        assert re.fullmatch(r"\d+m", str(rule["for"])), name  # the rule group's ISO form: PT<n>M
        annotations = rule["annotations"]
        assert isinstance(annotations, dict)
        assert annotations["runbook"] == f"docs/alerts.md#{name.lower()}"
        assert f"### {name}\n" in runbook, name


def test_alerts_fire_on_what_real_falco_serves(falco: Path, promtool: Path, azurite: Azurite,
                                               names: dict[str, str]) -> None:
    pipe = Pipeline(azurite, names)
    pipe.send(audit_events(5))
    port = free_port()
    url = f"http://127.0.0.1:{port}/metrics"
    scrapes: list[dict[str, float]] = []
    done = threading.Event()

    def scrape_every_second() -> None:
        while not done.is_set():
            started = time.monotonic()
            if (samples := prometheus.scrape(url, metric_names.PREFIX)) or scrapes:
                scrapes.append(samples or {})
            if len(scrapes) == 3:  # once Prometheus has seen the counter at 0
                pipe.send_text("not a message")
            done.wait(max(0.0, 1.0 - (time.monotonic() - started)))

    scraper = threading.Thread(target=scrape_every_second, daemon=True)
    scraper.start()
    webserver = {"enabled": True, "listen_address": "127.0.0.1", "listen_port": port,
                 "prometheus_metrics_enabled": True}
    run = runner.run(falco, runner.PluginSpec(init_config=json.loads(pipe.config())),
                     [OFFICIAL_RULES], seconds=90, until=lambda _: len(scrapes) >= 28,
                     extra={"metrics": METRICS, "webserver": webserver})
    done.set()
    scraper.join()
    scrapes = [s for s in scrapes[:28] if s]
    assert len(scrapes) >= 25, run.stderr[-2000:]
    delivered = metric_names.PREFIX + "delivered_total"
    lettered = metric_names.PREFIX + "dead_lettered_total"
    assert scrapes[-1][delivered] == 5 and scrapes[-1][lettered] == 1
    # The run as the rules see it: minute m is the m-th second of the run.
    first_letter = next(m for m, s in enumerate(scrapes) if s.get(lettered, 0) >= 1)
    quiet = max(m for m, s in enumerate(scrapes)
                if s[metric_names.PREFIX + "seconds_since_last_receive_total"] < 1)
    end = len(scrapes) - 1
    series = prometheus.dilate(scrapes, gone_minutes=20)
    assert end - quiet >= 21, "the run must stay idle 15 + 5 minutes (dilated)"
    expected = {
        first_letter + 2: {"K8sAuditAksDeadLetters": WARNING, "K8sAuditAksNoEvents": []},
        quiet + 14: {"K8sAuditAksNoEvents": []},  # idle 14 minutes: not yet
        quiet + 21: {"K8sAuditAksNoEvents": CRITICAL, "K8sAuditAksAbsent": []},
        # Prometheus keeps a series 5 minutes past its last sample; then `for: 10m`.
        end + 14: {"K8sAuditAksAbsent": []},
        end + 16: {"K8sAuditAksAbsent": CRITICAL},
    }
    tested = prometheus.evaluate_rules(promtool, prometheus.rule_groups(), series, expected)
    assert tested.returncode == 0, tested.stdout[-3000:] + tested.stderr[-3000:]


@pytest.mark.parametrize(("alert", "name", "values", "fires_at", "quiet_at"), [
    # The plugin measures the queue's head every 30 s: a backlog over 10 minutes for 5.
    ("K8sAuditAksBacklog", "queue_oldest_message_age_total",
     "0 30 90 300 600 660 720 780 840 900 960 1020", 10, 6),
    # Storage calls failing: errors rise by more than 10 in 15 minutes, for 10 minutes.
    ("K8sAuditAksStorageErrors", "errors_total", "0+2x30", 16, 9),
])
def test_alerts_fire_on_the_series_their_condition_makes(
        promtool: Path, alert: str, name: str, values: str, fires_at: int,
        quiet_at: int) -> None:
    """Conditions a short run cannot make (the backlog gauge is measured every 30 s; storage
    errors need an outage of minutes), as series of the served name."""
    assert metric_names.PREFIX + name in metric_names.documented().values()
    expected = {quiet_at: {alert: []}, fires_at: {alert: WARNING}}
    tested = prometheus.evaluate_rules(promtool, prometheus.rule_groups(),
                                       {metric_names.PREFIX + name: values}, expected)
    assert tested.returncode == 0, tested.stdout[-3000:] + tested.stderr[-3000:]
