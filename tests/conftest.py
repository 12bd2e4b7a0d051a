"""Shared fixtures: a real Azurite per test session, fresh queue/container names per test."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from harness.azurite import Azurite


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
