"""deploy/falco: the Helm values load our plugin as the plugin expects, the image lays it out."""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.infra.conftest import ROOT, python_for_yaml

FALCO = ROOT / "deploy" / "falco"


@pytest.fixture(scope="module")
def values():
    code = "import json,sys,yaml; json.dump(yaml.safe_load(open(sys.argv[1])), sys.stdout)"
    run = subprocess.run([python_for_yaml(), "-c", code, str(FALCO / "values-aks.yaml")],
                         capture_output=True, text=True, timeout=60, check=True)
    return json.loads(run.stdout)


def test_plugin_only_falco(values):
    assert values["driver"]["enabled"] is False
    assert values["collectors"]["enabled"] is False
    assert values["controller"]["kind"] == "deployment"
    assert values["controller"]["deployment"]["replicas"] == 1


def test_workload_identity(values):
    assert values["podLabels"]["azure.workload.identity/use"] == "true"
    sa = values["serviceAccount"]
    assert "azure.workload.identity/client-id" in sa["annotations"]
    assert sa["name"] == "falco"  # the federated credential's default subject


def test_rules_from_falcoctl_plugins_from_the_image(values):
    artifact = values["falcoctl"]["config"]["artifact"]
    # "plugin" would mount an empty dir over /usr/share/falco/plugins.
    assert artifact["allowedTypes"] == ["rulesfile"]
    assert artifact["install"]["resolveDeps"] is False
    assert any(r.startswith("k8saudit-rules:") for r in artifact["install"]["refs"])
    assert any(r.startswith("k8saudit-rules:") for r in artifact["follow"]["refs"])
    assert "/etc/falco/k8s_audit_rules.yaml" in values["falco"]["rules_files"]


def test_aks_rules_after_the_official_ones_with_every_match_alerting(values):
    assert values["falco"]["rules_files"] == [
        "/etc/falco/k8s_audit_rules.yaml", "/usr/share/falco/rules/aks_audit_rules.yaml",
        "/etc/falco/rules.d"]
    assert values["falco"]["rule_matching"] == "all"


def test_plugins_and_init_config(values):
    falco = values["falco"]
    assert falco["load_plugins"] == ["k8saudit-aks", "json"]
    plugins = {p["name"]: p for p in falco["plugins"]}
    assert plugins["json"]["library_path"] == "libjson.so"
    ours = plugins["k8saudit-aks"]
    assert ours["library_path"] == "libk8saudit-aks.so"
    init = ours["init_config"]
    for key in ("queue_account_url", "queue_name", "deadletter_queue_name",
                "claimcheck_container", "blob_account_url"):
        assert key in init, key
    assert init["queue_name"] == "k8saudit"
    assert init["deadletter_queue_name"] == "k8saudit-deadletter"
    assert init["claimcheck_container"] == "k8saudit-claims"
    assert "connection_string" not in json.dumps(init)


def test_init_config_is_accepted_by_the_plugin(values):
    config = pytest.importorskip("plugin.k8saudit_aks.config")
    init = values["falco"]["plugins"][0]["init_config"]
    # The values name the Bicep outputs to paste; give them the shape those outputs have.
    init = {**init, "queue_account_url": "https://stq.queue.core.windows.net/",
            "blob_account_url": "https://stq.blob.core.windows.net/"}
    parsed = config.parse_config(json.dumps(init))
    assert isinstance(parsed.mode, config.QueueMode)
    assert parsed.mode.queue_name == "k8saudit"


def test_dockerfile_install_layout():
    text = (FALCO / "Dockerfile").read_text()
    build = pytest.importorskip("plugin.build")
    assert "FROM falcosecurity/falco:${FALCO_VERSION}-debian" in text
    assert "libpython3.11" in text
    assert "RUN make dist" in text  # the layout tests/plugin/test_install_layout.py checks
    assert "COPY --from=build /src/build/dist/ /\n" in text  # rooted at /
    assert "COPY rules/ rules/" in text
    makefile = (FALCO.parents[1] / "Makefile").read_text()
    assert f"--target $(PLUGINS_DIR)/{build.INSTALL_DIR}" in makefile
    assert "libjson.so" in text
