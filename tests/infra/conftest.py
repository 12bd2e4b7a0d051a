"""Parsed Bicep templates for the infra tests.

pycep-parser is imported directly when the test venv has it; otherwise the templates are
parsed by .venv-infra's Python (requirements-infra.txt) through bicep_json.py. Without
either, the tests skip and say how to create .venv-infra.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
BICEP_DIR = ROOT / "infra" / "bicep"
INFRA_VENV = ROOT / ".venv-infra"
INFRA_PYTHON = INFRA_VENV / "bin" / "python"
SETUP_HINT = (
    "python3.11 -m venv .venv-infra && .venv-infra/bin/pip install -r requirements-infra.txt"
)


def bicep_files() -> list[Path]:
    return sorted(BICEP_DIR.rglob("*.bicep"))


def require_infra_venv() -> Path:
    if not INFRA_PYTHON.exists():
        pytest.skip(f".venv-infra is missing (checkov, pycep-parser); create it: {SETUP_HINT}")
    return INFRA_VENV


@pytest.fixture(scope="session")
def templates() -> dict[str, dict[str, Any]]:
    """{'main.bicep': template, 'modules/rbac.bicep': template, ...}"""
    paths = [str(p) for p in bicep_files()]
    if importlib.util.find_spec("pycep") is not None:
        from tests.infra.bicep_json import parse

        parsed = json.loads(json.dumps(parse(paths), default=str))
    else:
        require_infra_venv()
        run = subprocess.run(
            [str(INFRA_PYTHON), str(Path(__file__).with_name("bicep_json.py")), *paths],
            capture_output=True, text=True, timeout=300,
        )
        if run.returncode != 0:
            pytest.fail(f"pycep-parser could not parse the templates:\n{run.stderr[-4000:]}")
        parsed = json.loads(run.stdout)
    return {str(Path(p).relative_to(BICEP_DIR)): t for p, t in parsed.items()}


@pytest.fixture(scope="session")
def infra_python() -> Path:
    require_infra_venv()
    return INFRA_PYTHON


def python_for_yaml() -> str:
    """An interpreter with PyYAML: this one, else .venv-infra's (checkov depends on it)."""
    if importlib.util.find_spec("yaml") is not None:
        return sys.executable
    require_infra_venv()
    return str(INFRA_PYTHON)
