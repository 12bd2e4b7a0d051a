"""deploy/falco/values-aks.yaml rendered by the real falcosecurity/falco chart it targets
(deploy/falco/chart.json) with Helm's own Go SDK (helm-python-sdk, offline), the manifests
held to Kubernetes' schemas (kubernetes-validate, strict), and the rendered falco.yaml run by
real Falco: the plugin of the image's install layout loads, the rules load with no warning,
metrics are served at the interval the values mean.

The chart is read from FALCO_CHART, else ../shared/fixtures/charts/falco (an unpacked
`helm pull falcosecurity/falco --version <chart.json version> --untar`); no chart repository
is reachable here, so without one these tests skip and say so. The user CI workflow
(.github/workflows/deploy-artifacts.yml) renders the same values with `helm template`.
"""

from __future__ import annotations

import json
import os
import re
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from extractor.envelope.normalize import parse_documents
from harness import falco as runner
from harness.azurite import Azurite, free_port
from samples import attack_story
from tests import OFFICIAL_RULES
from tests.infra.conftest import ROOT
from tests.support import metric_names
from tests.support.pipeline import Pipeline

FALCO_DEPLOY = ROOT / "deploy" / "falco"
CHART = json.loads((FALCO_DEPLOY / "chart.json").read_text())
SHARED_CHART = ROOT.parent / "shared" / "fixtures" / "charts" / "falco"
KUBERNETES = "1.33.0"  # the oldest minor AKS supports as this is written
RELEASE, NAMESPACE = "falco", "falco"


def chart_dir() -> Path | None:
    named = os.environ.get("FALCO_CHART")
    for path in (Path(named) if named else None, SHARED_CHART):
        if path is not None and (path / "Chart.yaml").is_file():
            return path
    return None


@pytest.fixture(scope="module")
def chart() -> Any:
    path = chart_dir()
    if path is None:
        pytest.skip(f"no falcosecurity/falco chart {CHART['version']}: set FALCO_CHART to an "
                    f"unpacked chart or put one in {SHARED_CHART}")
    import helm_python

    loaded = helm_python.Chart.load(path)
    assert (loaded.version, loaded.metadata["appVersion"]) == (
        CHART["version"], CHART["appVersion"]), "deploy/falco/chart.json names another chart"
    return loaded


@pytest.fixture(scope="module")
def values() -> dict[str, Any]:
    return yaml.safe_load((FALCO_DEPLOY / "values-aks.yaml").read_text())


@pytest.fixture(scope="module")
def manifests(chart: Any, values: dict[str, Any]) -> list[dict[str, Any]]:
    rendered = chart.render(values, name=RELEASE, namespace=NAMESPACE, is_install=True)
    return [doc for path, text in sorted(rendered.items()) if path.endswith(".yaml")
            for doc in yaml.safe_load_all(text) if doc]


def kinds(manifests: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {doc["kind"]: doc for doc in manifests}


def rendered_falco_yaml(manifests: list[dict[str, Any]]) -> dict[str, Any]:
    config_map = next(d for d in manifests
                      if d["kind"] == "ConfigMap" and "falco.yaml" in d.get("data", {}))
    loaded: dict[str, Any] = yaml.safe_load(config_map["data"]["falco.yaml"])
    return loaded


def test_every_manifest_passes_the_kubernetes_schema(manifests: list[dict[str, Any]]) -> None:
    assert manifests
    for doc in manifests:
        kubernetes_validate.validate(doc, KUBERNETES, strict=True)


def test_nothing_needs_a_crd(manifests: list[dict[str, Any]]) -> None:
    """A stock AKS cluster has no Prometheus operator: every kind is a built-in one."""
    built_in = ("v1", "apps/v1", "rbac.authorization.k8s.io/v1")
    assert {d["apiVersion"] for d in manifests} <= set(built_in)


def test_plugin_only_deployment_without_host_mounts(manifests: list[dict[str, Any]]) -> None:
    deployment = kinds(manifests)["Deployment"]
    pod = deployment["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "falco"
    assert deployment["spec"]["template"]["metadata"]["labels"][
        "azure.workload.identity/use"] == "true"
    host_paths = [v for v in pod.get("volumes", []) if "hostPath" in v]
    assert host_paths == []


def test_the_rendered_config_is_what_the_values_mean(manifests: list[dict[str, Any]]) -> None:
    config = rendered_falco_yaml(manifests)
    assert config["metrics"]["interval"] == "1m"  # the chart overwrites falco.metrics.*
    assert config["metrics"]["plugins_metrics_enabled"] is True
    assert config["webserver"]["prometheus_metrics_enabled"] is True
    assert config["plugins_hostinfo"] is False
    assert config["rule_matching"] == "all"
    assert config["load_plugins"] == ["k8saudit-aks", "json"]


def test_managed_prometheus_selects_the_metrics_service(
        manifests: list[dict[str, Any]]) -> None:
    monitor = yaml.safe_load((FALCO_DEPLOY / "managed-prometheus.yaml").read_text())
    assert monitor["apiVersion"] == "azmonitoring.coreos.com/v1"
    services = [d for d in manifests if d["kind"] == "Service"
                and d["metadata"]["labels"].get("type") == "falco-metrics"]
    (service,) = services
    labels = service["metadata"]["labels"]
    assert monitor["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert monitor["metadata"]["namespace"] == service["metadata"]["namespace"]
    ports = {p["name"] for p in service["spec"]["ports"]}
    assert {e["port"] for e in monitor["spec"]["endpoints"]} <= ports



@pytest.fixture
def empty_dir(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "empty"
    path.mkdir()
    yield path


def on_this_host(config: dict[str, Any], falco: Path, dist: Path, empty: Path,
                 azurite: Azurite, port: int) -> dict[str, Any]:
    """The rendered falco.yaml with the pod's paths mapped onto the install layout, the
    Bicep outputs it waits for replaced by Azurite, and its web server on loopback."""
    plugins_dir = dist / "dist" / "usr" / "share" / "falco" / "plugins"
    libraries = {"libk8saudit-aks.so": plugins_dir / "libk8saudit-aks.so",
                 "libjson.so": runner.json_plugin(falco)}
    rules = {"/etc/falco/k8s_audit_rules.yaml": OFFICIAL_RULES,
             "/usr/share/falco/rules/aks_audit_rules.yaml":
                 dist / "dist" / "usr" / "share" / "falco" / "rules" / "aks_audit_rules.yaml",
             "/etc/falco/rules.d": empty}
    plugins = []
    for plugin in config["plugins"]:
        plugin = {**plugin, "library_path": str(libraries[plugin["library_path"]])}
        if plugin["name"] == "k8saudit-aks":
            init = dict(plugin["init_config"])
            assert init.pop("queue_account_url") == "<queueAccountUrl>"
            assert init.pop("blob_account_url") == "<claimCheckAccountUrl>"
            plugin["init_config"] = {**init,
                                     "queue_connection_string": azurite.connection_string}
        plugins.append(plugin)
    return {**config, "plugins": plugins,
            "rules_files": [str(rules[r]) for r in config["rules_files"]],
            "config_files": [str(empty)],
            "log_syslog": False, "syslog_output": {"enabled": False},
            "watch_config_files": False,
            "webserver": {**config["webserver"], "listen_address": "127.0.0.1",
                          "listen_port": port}}


def test_real_falco_runs_the_rendered_config(
        manifests: list[dict[str, Any]], falco: Path, image_dist: Path, azurite: Azurite,
        empty_dir: Path) -> None:
    rendered = rendered_falco_yaml(manifests)
    init = rendered["plugins"][0]["init_config"]
    pipe = Pipeline(azurite, {"queue": init["queue_name"],
                              "deadletter": init["deadletter_queue_name"],
                              "claims": init["claimcheck_container"]})
    pipe.send(parse_documents(attack_story.bodies()).events)
    port = free_port()
    scraped: list[str] = []

    def drained_and_served(run: runner.FalcoRun) -> bool:
        if pipe.messages_left():
            return False
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
                scraped[:] = [r.read().decode()]
        except OSError:
            return False
        return metric_names.PREFIX + "delivered_total" in scraped[0]

    config = on_this_host(rendered, falco, image_dist, empty_dir, azurite, port)
    run = runner.run_config(falco, config, seconds=120, until=drained_and_served)

    log = run.stderr + "\n".join(run.other)
    assert run.returncode == 0, log[-3000:]
    assert pipe.messages_left() == 0 and pipe.dead_letters() == []
    rules = set(run.rules())
    assert {"Attach/Exec Pod", "AKS Local Account Used"} <= rules, rules
    assert all(a["output_fields"].get("ka.cluster.name") for a in run.alerts
               if a.get("source") == "k8s_audit")
    falco_log = [line for line in run.stderr.splitlines()
                 if not line.startswith("[k8saudit-aks]")]
    assert not [line for line in falco_log if re.search(r"(?i)warn|error", line)], log[-3000:]
    loaded = [line for line in falco_log if line.endswith("| schema validation: ok")]
    assert len(loaded) == 3  # falco.yaml and both rules files (rules.d is empty here)
    assert any("Setting metrics interval to 1m, equivalent to 60000 (ms)" in line
               for line in falco_log), log[-3000:]
    assert scraped and metric_names.PREFIX + "delivered_total" in scraped[0]
