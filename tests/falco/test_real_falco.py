"""Real Falco (0.45 in CI), the built plugin, the json plugin and the official rules: alerts,
not just fields.

- file replay of Falco's audit traces fires exactly the alerts upstream k8saudit 0.18.0
  fires on them (pinned in tests/fixtures/falco; recomputed with the upstream plugin when
  it sits beside Falco, as ../shared/tools/falco/setup.sh lays it out);
- queue mode end to end: AKS Event Hub bodies (normal traffic and the attack story of
  samples/) through the ingest function's entry point into Azurite, Falco draining the
  queue with the official and the AKS rules as the Helm values load them: the same alerts
  as a file replay of the same bodies, each story step's alert (a truncated event and a
  claim-checked one among them), nothing left in the queue;
- Event Hub mode: the Go plugin's configuration loads, and says the hub is unreachable;
- plugin metrics in Falco's metrics snapshot, and on its Prometheus endpoint under the
  names docs/configuration.md gives.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from harness import falco as runner
from harness import prometheus
from harness.azurite import Azurite, free_port
from harness.function import hub_events
from plugin.k8saudit_aks import __version__
from samples import attack_story
from tests import FIXTURES, OFFICIAL_RULES
from tests.falco import SHIPPED_RULES
from tests.support import metric_names
from tests.support.ingest_app import App
from tests.support.pipeline import Pipeline, audit_events

RULES = [OFFICIAL_RULES]
TRACES = FIXTURES / "audit-events" / "falco-traces"
PINNED = FIXTURES / "falco" / "falco-traces.k8saudit-0.18.0.alerts.jsonl"
SAMPLE = Path(__file__).resolve().parents[2] / "samples" / "eventhub-bodies.jsonl"
SECRET = "c2VjcmV0a2V5"


def alert_keys(alerts: list[dict[str, Any]]) -> Counter[str]:
    """What must match between two runs: rule, priority, event time and every output field
    (the output text is made of them)."""
    return Counter(json.dumps({k: a[k] for k in ("rule", "priority", "time", "output_fields")},
                              sort_keys=True) for a in alerts if a.get("source") != "internal")


def test_traces_fire_the_alerts_upstream_k8saudit_fires(falco: Path) -> None:
    ours = runner.run(falco, runner.PluginSpec(open_params=f"file://{TRACES}"), RULES)
    assert ours.returncode == 0, ours.stderr[-2000:]
    pinned = Counter(line for line in PINNED.read_text().splitlines() if line)
    upstream = falco.resolve().parent.parent / "plugins" / "libk8saudit.so"
    if upstream.is_file():  # the pin still holds for upstream in this Falco
        theirs = runner.run(falco, runner.PluginSpec("k8saudit", upstream, "", str(TRACES)),
                            RULES)
        assert alert_keys(theirs.alerts) == pinned
    assert sum(pinned.values()) == 46
    assert alert_keys(ours.alerts) == pinned


STORY_ALERTS = [  # (rule, a field of the alert that says which step)
    ("Anonymous Request Allowed", "ka.user.name", "system:anonymous"),
    ("Attach/Exec Pod", "ka.target.name", "payments-7d9f"),
    ("Create Privileged Pod", "ka.req.pod.containers.image", ["docker.io/library/alpine:3.20"]),
    ("Attach to cluster-admin Role", "ka.user.name", attack_story.CI),
    ("K8s Secret Get Successfully", "ka.target.name", "azure-cloud-provider"),
    ("Create/Modify Configmap With Private Credentials", "ka.req.configmap.name",
     "backup-settings"),
    ("Disallowed K8s User", "ka.user.name", "mallory@contoso.com"),
    ("Attach/Exec Pod", "ka.target.name", "web-5c7"),  # its log was cut by AKS
    ("Create/Modify Configmap With Private Credentials", "ka.req.configmap.name",
     "legacy-bundle"),  # 120 KB that does not compress: a claim check
    ("AKS Audit Event Truncated", "ka.target.name", "web-5c7"),
    ("AKS Local Account Used", "ka.user.name", "masterclient"),
    ("AKS Run Command Used", "ka.cluster.name", "aks-dev-01"),
    ("AKS Workload Identity Token Requested", "ka.target.name", "payments-wi"),
]


def test_queue_mode_end_to_end(falco: Path, azurite: Azurite, names: dict[str, str],
                               monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    bodies = [b for b in SAMPLE.read_bytes().splitlines() if b.strip()] + attack_story.bodies()
    replay_file = tmp_path / "bodies.jsonl"
    replay_file.write_bytes(b"\n".join(bodies))
    replay = runner.run(falco, runner.PluginSpec(open_params=f"file://{replay_file}"),
                        SHIPPED_RULES, extra=runner.WITH_AKS_RULES)
    assert replay.returncode == 0, replay.stderr[-2000:]

    app = App(azurite, names, monkeypatch)
    app(hub_events(bodies))
    pipe = Pipeline(azurite, names)
    assert pipe.blob_names()  # the large ConfigMap went to a claim check
    live = runner.run(falco, runner.PluginSpec(init_config=json.loads(pipe.config())),
                      SHIPPED_RULES, seconds=120, extra=runner.WITH_AKS_RULES,
                      until=lambda _: pipe.messages_left() == 0)

    assert live.returncode == 0, live.stderr[-2000:]
    assert pipe.messages_left() == 0 and pipe.dead_letters() == []
    assert alert_keys(live.alerts) == alert_keys(replay.alerts)
    for rule, field, value in STORY_ALERTS:
        assert any(a["rule"] == rule and a["output_fields"].get(field) == value
                   for a in live.alerts), (rule, value)
    clusters = {a["output_fields"]["ka.cluster.name"] for a in live.alerts}
    assert {"aks-prod-weu", "aks-dev-01"} <= clusters
    assert "k8saudit-aks" in live.stderr  # the plugin's stats line at close


def test_event_hub_mode_loads_and_says_the_hub_is_unreachable(
        falco: Path, azurite: Azurite, names: dict[str, str]) -> None:
    """The Go plugin's init_config keys, unchanged; an Event Hub that refuses connections."""
    seed = {
        "event_hub_name": "kube-audit",
        "event_hub_namespace_connection_string":
            f"Endpoint=sb://127.0.0.1:1/;SharedAccessKeyName=listen;SharedAccessKey={SECRET}",
        "blob_storage_connection_string": azurite.connection_string,
        "blob_storage_container_name": names["checkpoints"],
        "rate_limit_events_per_second": 100, "rate_limit_burst": 200,
    }
    run = runner.run(falco, runner.PluginSpec(init_config=seed, open_params="my-cluster"),
                     RULES, seconds=15)
    assert run.returncode == 0
    assert "unreachable" in run.stderr and "since last receive" in run.stderr
    assert SECRET not in run.stderr + "".join(run.other)


def test_a_wrong_config_stops_falco_naming_the_key(falco: Path) -> None:
    bad = {"queue_name": "k8saudit",
           "queue_account_url": f"DefaultEndpointsProtocol=https;AccountKey={SECRET}"}
    run = runner.run(falco, runner.PluginSpec(init_config=bad), RULES, seconds=30)
    assert run.returncode != 0
    assert "init_config.queue_account_url must be an account URL" in run.stderr + "".join(
        run.other)
    assert SECRET not in run.stderr + "".join(run.other)


def _metrics_run(pipe: Pipeline) -> None:
    """Something for each kind of metric: events to deliver (Falco 0.45 writes a metrics
    snapshot only after it has read an event), a claim check, and a poison message."""
    pipe.send(audit_events(5) + audit_events(1, prefix="big", big_every=1))
    pipe.send_text("not a message")


METRICS = {"enabled": True, "interval": "1s", "plugins_metrics_enabled": True,
           "rules_counters_enabled": False, "resource_utilization_enabled": False,
           "state_counters_enabled": False}


def test_plugin_metrics_reach_falcos_metrics_output(falco: Path, azurite: Azurite,
                                                    names: dict[str, str]) -> None:
    pipe = Pipeline(azurite, names)
    _metrics_run(pipe)

    def snapshot(run: runner.FalcoRun) -> dict[str, Any]:
        return next((a["output_fields"] for a in run.alerts
                     if "plugins.k8saudit-aks.delivered" in a.get("output_fields", {})), {})

    run = runner.run(falco, runner.PluginSpec(init_config=json.loads(pipe.config())), RULES,
                     seconds=60, extra={"metrics": {**METRICS, "output_rule": True}},
                     until=lambda r: bool(snapshot(r)))
    fields = snapshot(run)  # taken after the first batch: later ones may add to it
    assert fields.get("plugins.k8saudit-aks.delivered", 0) >= 1, run.stderr[-2000:]
    assert fields["plugins.k8saudit-aks.received_messages"] >= 1


def test_prometheus_serves_every_documented_name(falco: Path, azurite: Azurite,
                                                  names: dict[str, str]) -> None:
    """Falco's web server on 127.0.0.1, queue mode: each metric of docs/configuration.md
    this run produces is served under the table's Prometheus name, and no other name of
    this plugin is served."""
    pipe = Pipeline(azurite, names)
    _metrics_run(pipe)
    port = free_port()
    url = f"http://127.0.0.1:{port}/metrics"
    wanted = {"received", "delivered", "received_messages", "deleted", "claimcheck_fetched",
              "claimcheck_deleted", "dead_lettered.<reason>", "queue_backlog_messages",
              "queue_oldest_message_age", "seconds_since_last_receive"}
    documented = metric_names.documented()
    expected = {documented[n].replace("<reason>", "bad_base64") for n in wanted}
    scraped: dict[str, float] = {}

    def served(_: runner.FalcoRun) -> bool:
        samples = prometheus.scrape(url, metric_names.PREFIX)
        if samples is None:
            return False
        scraped.clear()
        scraped.update(samples)
        return expected <= set(scraped)

    webserver = {"enabled": True, "listen_address": "127.0.0.1", "listen_port": port,
                 "prometheus_metrics_enabled": True}
    run = runner.run(falco, runner.PluginSpec(init_config=json.loads(pipe.config())), RULES,
                     seconds=90, until=served,
                     extra={"metrics": {**METRICS, "output_rule": False},
                            "webserver": webserver})
    assert expected <= set(scraped), (sorted(expected - set(scraped)), run.stderr[-2000:])
    patterns = [re.escape(p).replace("<reason>", "[a-z0-9_]+") for p in documented.values()]
    unknown = [n for n in scraped if not any(re.fullmatch(p, n) for p in patterns)]
    assert unknown == []
    assert scraped[documented["delivered"]] == 6


@pytest.mark.parametrize("args", [["--plugin-info", "k8saudit-aks"], ["--list-plugins"]])
def test_falco_describes_the_plugin(falco: Path, args: list[str], tmp_path: Path) -> None:
    """The commands docs/configuration.md sends users to exit 0 (libsinsp refuses an
    open-params entry with an empty value)."""
    config = tmp_path / "falco.yaml"
    config.write_text(json.dumps(runner.config(falco, runner.PluginSpec(), RULES)))
    done = subprocess.run(runner.command(falco, config, *args),
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "k8saudit-aks" in done.stdout and __version__ in done.stdout
