"""Where a live source's worker thread meets Falco's thread, and the only state they share.

The worker (the queue source's storage worker, the Event Hub source's receiver) `post`s
each message with its audit events, in order; Falco's thread `take`s them for its
hand-over and, once Falco consumed a message's events, returns the message as `consumed`;
the worker then `take_consumed`s it to delete or checkpoint it. The events posted and not
yet consumed are bounded in bytes: `has_room` is how a worker knows to stop reading ahead
(one message is always let in, whatever its size, so nothing is ever stuck).

Thread-safe; every method takes the one lock, none blocks while holding it.
"""

from __future__ import annotations

import collections
import threading
from typing import Generic, TypeVar

from extractor.envelope.normalize import AuditEvent

M = TypeVar("M")


class Mailbox(Generic[M]):
    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._posted = threading.Condition(self._lock)
        self._freed = threading.Condition(self._lock)
        self._ready: collections.deque[tuple[M, list[AuditEvent]]] = collections.deque()
        self._sizes: dict[int, int] = {}  # id(message) -> bytes of its events, until consumed
        self._consumed: collections.deque[M] = collections.deque()
        self._bytes = 0
        # Set when there is work for the worker (consumed messages, room); its sleep waits
        # on it, so a consumed message is deleted or checkpointed without delay.
        self.wake = threading.Event()

    # --- the worker's side ------------------------------------------------------------

    def has_room(self) -> bool:
        with self._lock:
            return self._bytes < self.max_bytes

    def wait_for_room(self, timeout: float) -> bool:
        """Whether there is room, waiting up to `timeout` seconds for Falco to free some."""
        with self._freed:
            if self._bytes >= self.max_bytes:
                self._freed.wait(timeout)
            return self._bytes < self.max_bytes

    def post(self, message: M, events: list[AuditEvent]) -> None:
        nbytes = sum(len(event.data) for event in events)
        with self._posted:
            self._ready.append((message, events))
            self._sizes[id(message)] = nbytes
            self._bytes += nbytes
            self._posted.notify()

    def take_consumed(self) -> list[M]:
        with self._lock:
            consumed = list(self._consumed)
            self._consumed.clear()
        return consumed

    def sleep(self, seconds: float) -> None:
        """The worker's pause: `seconds`, or until there is work."""
        if seconds > 0 and self.wake.wait(seconds):
            self.wake.clear()

    # --- Falco's side -----------------------------------------------------------------

    def take(self, timeout: float = 0.0) -> list[tuple[M, list[AuditEvent]]]:
        """The posted messages, in order; with `timeout`, waits that long for the first."""
        with self._posted:
            if not self._ready and timeout > 0:
                self._posted.wait(timeout)
            ready = list(self._ready)
            self._ready.clear()
        return ready

    def consumed(self, messages: list[M]) -> None:
        """Falco consumed these messages' events: their bytes are free, and the worker
        may delete or checkpoint them."""
        if not messages:
            return
        with self._freed:
            for message in messages:
                self._bytes -= self._sizes.pop(id(message), 0)
            self._consumed.extend(messages)
            self._freed.notify_all()
        self.wake.set()

    def pending(self) -> int:
        """Consumed messages the worker has not taken yet (what close still owes)."""
        with self._lock:
            return len(self._consumed)
