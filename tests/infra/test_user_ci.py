"""The user CI workflow (.github/workflows/deploy-artifacts.yml), the template for what
cannot run here: valid for GitHub Actions (its JSON schema, vendored by check-jsonschema,
offline), and covering every deploy artifact with the repository's own versions."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.infra.conftest import BICEP_DIR, ROOT, bicep_files

WORKFLOW = ROOT / ".github" / "workflows" / "deploy-artifacts.yml"


@pytest.fixture(scope="module")
def workflow() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(WORKFLOW.read_text())
    return loaded


def runs(job: dict[str, Any]) -> str:
    return "\n".join(step.get("run", "") for step in job["steps"])


def test_the_workflow_passes_githubs_schema() -> None:
    checker = shutil.which("check-jsonschema", path=str(Path(sys.executable).parent))
    assert checker, "check-jsonschema is in requirements-dev.txt"
    done = subprocess.run([checker, "--builtin-schema", "vendor.github-workflows",
                           str(WORKFLOW)], capture_output=True, text=True, timeout=120,
                          check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def test_bicep_is_built_and_linted_file_by_file(workflow: dict[str, Any]) -> None:
    script = runs(workflow["jobs"]["bicep"])
    assert "az bicep build --file" in script and "az bicep lint --file" in script
    assert "az bicep build-params --file infra/bicep/main.bicepparam" in script
    globbed = {BICEP_DIR / "main.bicep", *(BICEP_DIR / "modules").glob("*.bicep")}
    assert set(bicep_files()) == globbed  # the loop's two patterns name every template
    assert "infra/bicep/main.bicep infra/bicep/modules/*.bicep" in script


def test_helm_uses_the_pinned_chart_and_the_values(workflow: dict[str, Any]) -> None:
    script = runs(workflow["jobs"]["helm"])
    assert "deploy/falco/chart.json" in script  # version and repository from the pin
    assert "helm lint" in script and "helm template" in script
    assert script.count("-f deploy/falco/values-aks.yaml") == 2


def test_the_image_is_built_from_the_repository_root(workflow: dict[str, Any]) -> None:
    script = runs(workflow["jobs"]["image"])
    assert "-f deploy/falco/Dockerfile" in script
    assert "-f /usr/share/falco/rules/aks_audit_rules.yaml" in script
    assert "--plugin-info k8saudit-aks" in script


def test_make_test_runs_with_the_chart_on_python_3_11(workflow: dict[str, Any]) -> None:
    job = workflow["jobs"]["test"]
    setup = next(s for s in job["steps"] if s.get("uses", "").startswith("actions/setup-python"))
    assert setup["with"]["python-version"] == "3.11"
    test_step = job["steps"][-1]
    assert test_step["run"].startswith("make test")
    assert set(test_step["env"]) == {"FALCO_CHART", "FALCO_BIN"}
