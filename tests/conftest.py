"""Shared fixtures: a real Azurite per test session, fresh queue/container names per test."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness import falco as falco_runner
from harness.azurite import Azurite
from tests.support import image_build


@pytest.fixture(scope="session")
def azurite() -> Iterator[Azurite]:
    server = Azurite()
    server.start()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def names() -> dict[str, str]:
    """Unique queue, dead-letter queue and container names, so tests share one Azurite."""
    tag = uuid.uuid4().hex[:10]
    return {"queue": f"q{tag}", "deadletter": f"dl{tag}", "claims": f"claims{tag}",
            "checkpoints": f"ckpt{tag}"}


@pytest.fixture(scope="session")
def checkout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tracked files, as a fresh clone has them: what Docker's build context is made
    from."""
    return image_build.clean_checkout(tmp_path_factory.mktemp("checkout"))


@pytest.fixture(scope="session")
def image_dist(checkout: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`make dist` as the Falco image's build stage runs it: on only the files its COPY
    instructions take from the build context Docker would send. Returns that stage's
    build/ (dist/, the release tarball and its checksum)."""
    stage = image_build.lay_out_stage(checkout, "build", tmp_path_factory.mktemp("src"))
    done = subprocess.run(["make", "-s", "dist"], cwd=stage, capture_output=True, text=True,
                          check=False)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    return stage / "build"


@pytest.fixture(scope="session")
def falco() -> Path:
    """Real Falco: FALCO_BIN, else `falco` on PATH; the test skips with that reason when
    neither is there (`make test` unpacks ../shared/tools/falco and sets FALCO_BIN)."""
    found = falco_runner.find_falco()
    if found is None:
        pytest.skip("no Falco: set FALCO_BIN or put falco on PATH "
                    "(../shared/tools/falco/setup.sh DIR unpacks one)")
    return found
