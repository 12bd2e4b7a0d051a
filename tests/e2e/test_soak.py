"""The chaos soak (scripts/soak.py, `make soak`), short: a few thousand events through the
function's entry point into Azurite, real Falco draining the queue, one Falco SIGKILL, one
storage outage, hostile records and messages of every kind. Nothing lost, every hostile item
where docs/failure-modes.md says, no good event dead-lettered."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from scripts import soak


def test_a_short_soak_loses_nothing_and_puts_every_hostile_item_where_documented(
        falco: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.CRITICAL, logger="k8saudit.ingest")  # the outage's retries
    plan = soak.Plan(events=3_000, kills=1, outages=1, outage_s=(3.0, 5.0),
                     hostile_messages=8, rate=0, visibility_s=10, seconds=240)
    result = soak.run(plan, falco, say=lambda _: None)
    text = soak.report(result)
    assert result.ok, text
    assert (result.kills, result.outages) == (1, 1)
    assert result.duplicates <= result.good // 100, text
    kinds = {what.split(" -> ")[0] for what in result.hostile}
    assert kinds == {*soak.HOSTILE_KINDS, "queue message"}
