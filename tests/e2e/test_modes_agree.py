"""One chain of policies for every path: the same AKS Event Hub bodies give the same audit
events whether Falco replays them from a file, reads them from the Event Hub, or drains
them from the queue the ingest function filled (on Azurite; the Event Hub behind the
narrowest fake, `tests.support.eventhub`)."""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from harness.azurite import Azurite
from harness.function import hub_events
from plugin.k8saudit_aks.config import parse_config
from plugin.k8saudit_aks.sources.file import FileInstance
from plugin.k8saudit_aks.sources.queue import QueueInstance
from plugin.sdk import Eof, Event, Timeout
from plugin.sdk.api import Instance
from tests import FIXTURES
from tests.support.eventhub import FakeHub, open_instance, speed_up
from tests.support.ingest_app import App

BODIES = (FIXTURES / "aks" / "eventhub-bodies.jsonl").read_bytes().splitlines()
# A copy of a body in the middle: its events are the redeliveries every path must absorb.
INPUT = [*BODIES[:60], BODIES[10], *BODIES[60:]]
UNLIMITED = 1_000_000  # events/s: the rate limit paces, it must not change what arrives


def drain(instance: Instance, quiet_s: float = 3.0) -> Counter[bytes]:
    """Every event `next_batch` hands over until it ends (Eof) or goes quiet."""
    events: Counter[bytes] = Counter()
    last = time.monotonic()
    while time.monotonic() - last < quiet_s:
        try:
            batch: list[Event] = list(instance.next_batch())
        except Timeout:
            continue
        except Eof:
            break
        events.update(bytes(event.data) for event in batch)
        last = time.monotonic()
    instance.close()
    return events


def test_file_event_hub_and_queue_modes_deliver_the_same_events(
        azurite: Azurite, names: dict[str, str], monkeypatch: pytest.MonkeyPatch,
        tmp_path: Path) -> None:
    path = tmp_path / "bodies.jsonl"
    path.write_bytes(b"\n".join(INPUT) + b"\n")
    file_events = drain(FileInstance(path, parse_config("").common))

    speed_up(monkeypatch)
    hub = FakeHub()
    for i, body in enumerate(INPUT):
        hub.publish(body, str(i % 2))
    hub_events_ = drain(open_instance(azurite, names["checkpoints"], hub, cluster="",
                                      rate_limit_events_per_second=UNLIMITED))

    app = App(azurite, names, monkeypatch)
    for start in range(0, len(INPUT), 32):
        app(hub_events(INPUT[start:start + 32]))
    config: dict[str, Any] = {
        "queue_connection_string": azurite.connection_string, "queue_name": names["queue"],
        "deadletter_queue_name": names["deadletter"],
        "claimcheck_container": names["claims"]}
    settings = parse_config(json.dumps(config))
    queue_events = drain(QueueInstance(settings.mode, settings.common))

    assert file_events, "the fixture has events"
    assert max(file_events.values()) == 1, "each event once"
    assert hub_events_ == file_events
    assert queue_events == file_events
