"""How far behind a queue's readers are: what the plugin's gauges and the function's
watcher both report, measured one way."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from azure.storage.queue import QueueClient


@dataclass(frozen=True, slots=True)
class Backlog:
    """Messages waiting (approximate, as the service counts them, deferred ones included)
    and the age in seconds of the oldest visible one (0 when none is visible)."""

    messages: int
    oldest_message_age_s: float


def measure_backlog(queue: QueueClient) -> Backlog:
    """Two storage transactions: the queue's properties and a peek at its head."""
    count = queue.get_queue_properties().approximate_message_count or 0
    oldest = next(iter(queue.peek_messages(max_messages=1)), None)
    inserted = getattr(oldest, "inserted_on", None)
    age = (dt.datetime.now(dt.UTC) - inserted).total_seconds() if inserted else 0.0
    return Backlog(count, max(0.0, age))
