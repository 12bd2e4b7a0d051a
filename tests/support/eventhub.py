"""The Event Hub source with only the narrowest network boundary of
`EventHubConsumerClient` faked (`FakeHub.attach`), as no Event Hubs emulator runs here: the
per-partition AMQP receiver that `_create_consumer` returns (its `receive` pulls messages
over AMQP and calls the processor back) and `get_partition_ids` (an AMQP management
request). Everything above is the real azure-eventhub code: the event processor's load
balancing, partition ownership and checkpoints in a real `BlobCheckpointStore` on Azurite.
The fake receiver calls back with real `azure.eventhub.EventData` objects carrying the
annotations Event Hubs sets (offset, sequence number, enqueued time), and honours the
starting position it is given (a checkpoint offset or an enqueued time) as the service
does."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

import pytest
from azure.eventhub import EventData, EventHubConsumerClient
from azure.eventhub._constants import PROP_OFFSET, PROP_SEQ_NUMBER, PROP_TIMESTAMP
from azure.eventhub.exceptions import ConnectError

from plugin.k8saudit_aks.config import EventHubMode, parse_config
from plugin.k8saudit_aks.sources import eventhub
from plugin.k8saudit_aks.sources.eventhub import EventHubInstance
from plugin.sdk import Event, Timeout


def speed_up(monkeypatch: pytest.MonkeyPatch) -> None:
    """Seconds instead of tens of seconds; the logic is the same."""
    monkeypatch.setattr(eventhub, "LOAD_BALANCING_S", 0.3)
    monkeypatch.setattr(eventhub, "RECEIVE_WAIT_S", 0.3)
    monkeypatch.setattr(eventhub, "CHECKPOINT_EVERY_S", 0.2)
    monkeypatch.setattr(eventhub, "ERROR_LINE_EVERY_S", 0.5)
    monkeypatch.setattr(eventhub, "BACKOFF_S", (0.1, 0.8))


SECRET = "secretvalue"


HUB_CONN = ("Endpoint=sb://aks-audit.servicebus.windows.net/;"
            f"SharedAccessKeyName=listen;SharedAccessKey={SECRET}")


class FakeHub:
    """Partition logs of received-style EventData; `down` makes the network fail."""

    def __init__(self, partitions: tuple[str, ...] = ("0", "1")) -> None:
        self.logs: dict[str, list[EventData]] = {p: [] for p in partitions}
        self.cond = threading.Condition()
        self.down = threading.Event()
        self.attempts: list[float] = []   # receive calls that failed, monotonic time

    def publish(self, body: bytes, partition: str = "0") -> EventData:
        with self.cond:
            log = self.logs[partition]
            event = EventData(body)
            event.raw_amqp_message.annotations = {
                PROP_OFFSET: str(len(log) * 4096).encode(),
                PROP_SEQ_NUMBER: len(log),
                PROP_TIMESTAMP: int(time.time() * 1000),
            }
            log.append(event)
            self.cond.notify_all()
        return event

    def attach(self, client: EventHubConsumerClient) -> None:
        client.get_partition_ids = self._partition_ids  # type: ignore[method-assign]
        client._create_consumer = self._create_consumer  # type: ignore[method-assign]

    def fail(self) -> None:
        raise ConnectError("Failed to initiate the connection to sb://aks-audit/ "
                           f"SharedAccessKey={SECRET}: [Errno 111] Connection refused")

    def _partition_ids(self) -> list[str]:
        if self.down.is_set():
            self.fail()
        return list(self.logs)

    def _create_consumer(self, consumer_group: str, partition_id: str, event_position: Any,
                         on_event_received: Callable[[list[EventData]], None],
                         **kwargs: Any) -> FakeReceiver:
        return FakeReceiver(self, partition_id, self._start(partition_id, event_position,
                            bool(kwargs.get("event_position_inclusive"))), on_event_received)

    def _start(self, partition: str, position: Any, inclusive: bool) -> int:
        """Index of the first event at `position`, as the service resolves it."""
        log = self.logs[partition]
        if position == "-1":
            return 0
        if position == "@latest":
            return len(log)
        if isinstance(position, datetime):
            ms = position.timestamp() * 1000
            return next((i for i, e in enumerate(log)
                         if e.raw_amqp_message.annotations[PROP_TIMESTAMP] >= ms), len(log))
        offsets = [e.offset for e in log]
        index = offsets.index(str(position))
        return index if inclusive else index + 1


class FakeReceiver:
    """Stands in for `EventHubConsumer` (the AMQP link): same `receive` contract."""

    def __init__(self, hub: FakeHub, partition: str, start: int,
                 callback: Callable[[list[EventData]], None]) -> None:
        self.hub, self.partition, self.next, self.callback = hub, partition, start, callback
        self.stop = False           # set by the event processor
        self._since = time.monotonic()

    def receive(self, batch: bool = False, max_batch_size: int = 300,
                max_wait_time: float | None = None) -> None:
        with self.hub.cond:
            log = self.hub.logs[self.partition]
            if self.next >= len(log) and not self.hub.down.is_set():
                self.hub.cond.wait(0.05)
            if self.hub.down.is_set():
                self.hub.attempts.append(time.monotonic())
                self.hub.fail()
            events = log[self.next:self.next + max_batch_size]
            self.next += len(events)
        if events or (max_wait_time and time.monotonic() - self._since >= max_wait_time):
            self._since = time.monotonic()
            self.callback(events)

    def close(self) -> None:
        return None


def config(azurite: Any, container: str, **extra: Any) -> dict[str, Any]:
    """The Go plugin's seed config, pointed at test resources."""
    return {
        "event_hub_namespace_connection_string": HUB_CONN,
        "event_hub_name": "kube-audit",
        "blob_storage_connection_string": azurite.connection_string,
        "blob_storage_container_name": container,
        "rate_limit_events_per_second": 100,
        "rate_limit_burst": 200,
        **extra,
    }


def open_instance(azurite: Any, container: str, hub: FakeHub, cluster: str = "my-cluster",
                  **extra: Any) -> EventHubInstance:
    settings = parse_config(json.dumps(config(azurite, container, **extra)))
    assert isinstance(settings.mode, EventHubMode)

    def connect(mode: EventHubMode, store: Any) -> EventHubConsumerClient:
        client = eventhub.build_client(mode, store)
        hub.attach(client)
        return client

    return EventHubInstance(settings.mode, settings.common, cluster, connect=connect)


def batches(instance: EventHubInstance, timeout: float = 30) -> Iterator[list[Event]]:
    """next_batch as Falco calls it, yielding the non-empty batches."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            yield list(instance.next_batch())
        except Timeout:
            continue
    raise AssertionError("timed out waiting for events")


def take(instance: EventHubInstance, n: int, timeout: float = 30) -> list[Event]:
    out: list[Event] = []
    for batch in batches(instance, timeout):
        out += batch
        if len(out) >= n:
            break
    assert len(out) == n
    return out
