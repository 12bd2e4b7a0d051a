"""Real Falco for the tests of this folder: FALCO_BIN, else `falco` on PATH; skipped with
that reason when neither is there (`.ci/run` unpacks one and sets FALCO_BIN)."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness import falco as falco_runner


@pytest.fixture(scope="session")
def falco() -> Path:
    found = falco_runner.find_falco()
    if found is None:
        pytest.skip("no Falco: set FALCO_BIN or put falco on PATH "
                    "(../shared/tools/falco/setup.sh DIR unpacks one)")
    return found
