"""Prometheus's side of the Falco alerts: scraping Falco's web server, and `promtool` (from
Debian's `prometheus` package, unpacked into build/ by `make test`) checking the shipped
rules and evaluating them on series.

Real Falco runs in seconds what an alert waits minutes for, so a run is replayed to
promtool slowed down 60 times (`dilate`): each second of the run becomes a minute, and the
gauges that measure time are multiplied to match. Counters stay as they are."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from harness.host import ROOT

RULES = ROOT / "deploy" / "falco" / "prometheus-rules.json"
DASHBOARD = ROOT / "deploy" / "grafana" / "k8saudit-aks.json"
PROMTOOL = ROOT / "build" / "prometheus" / "usr" / "bin" / "promtool"
# Gauges whose value is a duration in seconds: dilated with the clock.
DURATION_GAUGES = ("seconds_since_last_receive", "queue_oldest_message_age")
DILATION = 60


def find_promtool() -> Path | None:
    found = os.environ.get("PROMTOOL") or (str(PROMTOOL) if PROMTOOL.exists() else None)
    return Path(found) if found else (Path(p) if (p := shutil.which("promtool")) else None)


def rule_groups() -> list[dict[str, Any]]:
    """The shipped PrometheusRule's groups, as a Prometheus rules file holds them."""
    groups: list[dict[str, Any]] = json.loads(RULES.read_text())["spec"]["groups"]
    return groups


def dashboard_targets(kind: str) -> list[dict[str, Any]]:
    """The Grafana dashboard's queries of one data source type (`prometheus`,
    `grafana-azure-monitor-datasource`)."""
    panels = json.loads(DASHBOARD.read_text())["panels"]
    return [t for p in panels for t in p.get("targets", []) if t["datasource"]["type"] == kind]


def names_read(prefix: str) -> set[str]:
    """Every metric name (starting with `prefix`) the shipped rules and the dashboard read
    by its full name; families matched by a regex are left out."""
    exprs = [rule["expr"] for group in rule_groups() for rule in group["rules"]]
    exprs += [target["expr"] for target in dashboard_targets("prometheus")]
    return {name for expr in exprs
            for name in re.findall(rf"\b{prefix}[a-z0-9_]+\b(?![.+])", expr)}


def scrape(url: str, prefix: str) -> dict[str, float] | None:
    """Every sample whose name starts with `prefix`; None while the server does not answer."""
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            text = response.read().decode()
    except OSError:
        return None
    samples = {}
    for line in text.splitlines():
        if line.startswith(prefix):
            name, value = line.rsplit(" ", 1)
            samples[name] = float(value)
    return samples


def dilate(scrapes: Sequence[Mapping[str, float]], *, gone_minutes: int = 0) -> dict[str, str]:
    """promtool input series (1m apart) from scrapes taken 1 s apart; `gone_minutes` more
    minutes without samples (the scraped Falco stopped)."""
    names = sorted({name for scrape in scrapes for name in scrape})
    series = {}
    for name in names:
        factor = DILATION if name.removesuffix("_total").endswith(DURATION_GAUGES) else 1
        values = [f"{scrape[name] * factor:g}" if name in scrape else "_" for scrape in scrapes]
        series[name] = " ".join(values + ["_"] * gone_minutes)
    return series


def check_rules(promtool: Path, groups: list[dict[str, Any]]) -> subprocess.CompletedProcess[str]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "rules.yml"
        path.write_text(json.dumps({"groups": groups}))
        return subprocess.run([str(promtool), "check", "rules", str(path)], capture_output=True,
                              text=True, timeout=60, check=False)


def evaluate_rules(promtool: Path, groups: list[dict[str, Any]], series: Mapping[str, str],
               expected: Mapping[int, Mapping[str, list[dict[str, str]]]]) -> (
        subprocess.CompletedProcess[str]):
    """`promtool test rules`: at each minute of `expected`, each named alert fires exactly
    with the given label sets (an empty list: it does not fire). Annotations are left out
    of the rules under test: they only render text (`check_rules` checks their templates)."""
    bare = [{**group, "rules": [{k: v for k, v in rule.items() if k != "annotations"}
                                for rule in group["rules"]]} for group in groups]
    tests = [{
        "interval": "1m",
        "input_series": [{"series": name, "values": values} for name, values in series.items()],
        "alert_rule_test": [
            {"eval_time": f"{minute}m", "alertname": alert,
             "exp_alerts": [{"exp_labels": labels} for labels in fired]}
            for minute, alerts in expected.items() for alert, fired in alerts.items()],
    }]
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "rules.yml").write_text(json.dumps({"groups": bare}))
        (Path(tmp) / "test.yml").write_text(json.dumps({"rule_files": ["rules.yml"],
                                                         "evaluation_interval": "1m",
                                                         "tests": tests}))
        return subprocess.run([str(promtool), "test", "rules", "test.yml"], cwd=tmp,
                              capture_output=True, text=True, timeout=120, check=False)
