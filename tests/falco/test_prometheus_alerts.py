"""The Prometheus alert rules shipped for Falco (deploy/falco/prometheus-rules.json, also
the AKS managed Prometheus rule group of infra/bicep): promtool accepts them, they read only
names real Falco serves, and each fires on what real Falco serves when its condition holds.

The real run: Falco 0.45 drains a queue on Azurite with its web server on; a poison
message is dead-lettered, then nothing more arrives, then Falco stops. Scraped every second
and replayed to promtool 60 times slower (harness.prometheus.dilate), the shipped rules
fire: dead letters right after the poison, no events once the source has been idle for 15
(dilated) minutes, and the metrics' absence ten minutes after Prometheus lets Falco's last
samples go. A second run reads slower than the queue fills (the plugin's rate limit) and
the backlog alert fires; storage errors, which take minutes of outage, are shown on a
series of the served name."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from harness import falco as runner
from harness import prometheus
from harness.azurite import Azurite, free_port
from tests import OFFICIAL_RULES
from tests.support import metric_names
from tests.support.pipeline import Pipeline, audit_events

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


def scraped_run(falco: Path, pipe: Pipeline, seconds: int,
                at_third_scrape: Callable[[], None] | None = None,
                **config: Any) -> list[dict[str, float]]:
    """Falco draining `pipe`'s queue with its web server on, its plugin metrics scraped
    every second for `seconds` (from the first answer)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}/metrics"
    scrapes: list[dict[str, float]] = []
    done = threading.Event()

    def scrape_every_second() -> None:
        while not done.is_set():
            started = time.monotonic()
            if (samples := prometheus.scrape(url, metric_names.PREFIX)) or scrapes:
                scrapes.append(samples or {})
            if len(scrapes) == 3 and at_third_scrape is not None:
                at_third_scrape()
            done.wait(max(0.0, 1.0 - (time.monotonic() - started)))

    scraper = threading.Thread(target=scrape_every_second, daemon=True)
    scraper.start()
    webserver = {"enabled": True, "listen_address": "127.0.0.1", "listen_port": port,
                 "prometheus_metrics_enabled": True}
    run = runner.run(falco, runner.PluginSpec(init_config=json.loads(pipe.config(**config))),
                     [OFFICIAL_RULES], seconds=seconds + 60,
                     until=lambda _: len(scrapes) >= seconds,
                     extra={"metrics": METRICS, "webserver": webserver})
    done.set()
    scraper.join()
    answered = [s for s in scrapes[:seconds] if s]
    assert len(answered) >= seconds - 3, run.stderr[-2000:]
    return answered


def test_alerts_fire_on_what_real_falco_serves(falco: Path, promtool: Path, azurite: Azurite,
                                               names: dict[str, str]) -> None:
    pipe = Pipeline(azurite, names)
    pipe.send(audit_events(5))
    # The poison once Prometheus has seen the counter at 0 (a series born at 1 has no
    # increase: the plugin serves dead_lettered from the start for this).
    scrapes = scraped_run(falco, pipe, 28, lambda: pipe.send_text("not a message"))
    read = prometheus.names_read(metric_names.PREFIX)
    assert read and read <= set(scrapes[-1]), read - set(scrapes[-1])  # all served here
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


def test_storage_errors_alert_on_the_series_an_outage_makes(promtool: Path) -> None:
    """An outage of minutes, which a short run cannot make: failed Azure calls rising by 2
    a minute (the plugin's backoff caps at 30 s), as a series of the served name."""
    name = metric_names.PREFIX + "errors_total"
    assert name in metric_names.documented().values()
    expected = {9: {"K8sAuditAksStorageErrors": []},
                16: {"K8sAuditAksStorageErrors": WARNING}}
    tested = prometheus.evaluate_rules(promtool, prometheus.rule_groups(), {name: "0+2x30"},
                                       expected)
    assert tested.returncode == 0, tested.stdout[-3000:] + tested.stderr[-3000:]


def test_a_backlog_alerts_on_what_real_falco_serves(falco: Path, promtool: Path,
                                                    azurite: Azurite,
                                                    names: dict[str, str]) -> None:
    """Falco reads slower than the queue fills: its rate limit at 1 event a second, 80
    one-event messages waiting. The plugin measures the queue's head every 30 s."""
    pipe = Pipeline(azurite, names)
    for event in audit_events(80):
        pipe.send([event])
    scrapes = scraped_run(falco, pipe, 42, rate_limit_events_per_second=1, rate_limit_burst=1)
    age = metric_names.PREFIX + "queue_oldest_message_age_total"
    late = next(m for m, s in enumerate(scrapes) if s.get(age, 0) * prometheus.DILATION > 600)
    assert len(scrapes) - 1 >= late + 6, "the backlog must be seen for 5 (dilated) minutes"
    expected = {late - 1: {"K8sAuditAksBacklog": []},
                late + 6: {"K8sAuditAksBacklog": WARNING}}
    tested = prometheus.evaluate_rules(promtool, prometheus.rule_groups(),
                                       prometheus.dilate(scrapes), expected)
    assert tested.returncode == 0, tested.stdout[-3000:] + tested.stderr[-3000:]


def test_the_managed_prometheus_rule_group_is_made_of_the_same_rules() -> None:
    """infra/bicep/modules/prometheus-alerts.bicep loads this very file and maps each
    rule's severity label and `for` (checked above to be whole minutes) to Azure's form."""
    bicep = prometheus.ROOT / "infra" / "bicep" / "modules" / "prometheus-alerts.bicep"
    text = bicep.read_text()
    (path,) = re.findall(r"loadJsonContent\('([^']+)'\)\.spec\.groups\[0\]", text)
    assert (bicep.parent / path).resolve() == prometheus.RULES
    assert len(prometheus.rule_groups()) == 1
    mapped = set(re.findall(r"^  (\w+): \d$", text, re.MULTILINE))
    assert {str(rule["labels"]["severity"]) for rule in alerts().values()} <= mapped
