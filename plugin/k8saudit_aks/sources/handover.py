"""Handing audit events to Falco: the same rules for every source.

A source `add`s its messages (a queue message, an Event Hub message, a chunk of a file),
each with its audit events in order, already through the policy chain
(`extractor.policy.chain`: cluster mark, size bound, dedupe), and calls `next_batch` from
Falco's thread. A batch holds at most `MAX_BATCH` events, which go out as the optional
token bucket grants: the chain's last policy, the rate limit. What it does not grant
waits for a later call, nothing is dropped. An event without a known timestamp (0) gets
the current time.

Acknowledgment. A message is *finished* once its last event was taken. Falco asks for the
next batch only after it consumed the previous one, so `acknowledge()`, called first thing
in `next_batch`, returns the messages finished in the previous call: they may now be
deleted or checkpointed. `unconsumed_at_close()` is the close-time counterpart: the
messages finished in a call that handed Falco events are *not* returned (Falco may stop
mid-batch, on SIGTERM or a hot reload, or the batch may never have reached it: the SDK can
fail after `next_batch` returned), so they are read again and the dedupe window absorbs
what it remembers. A call that handed over nothing finished its messages for good.

Falco's thread only: not thread-safe.
"""

from __future__ import annotations

import collections
import time
from collections import Counter
from collections.abc import Callable
from typing import Generic, TypeVar

from extractor.envelope.normalize import AuditEvent
from extractor.policy.ratelimit import TokenBucket
from plugin.k8saudit_aks.stats import Stats
from plugin.sdk import Event, Timeout

MAX_BATCH = 256          # events per next_batch
POLL_WAIT_S = 0.05       # longest next_batch waits for data or tokens

M = TypeVar("M")


def falco_event(event: AuditEvent, now_ns: int) -> Event:
    """The event Falco gets: the audit JSON, at stageTimestamp or else `now_ns`."""
    return Event(event.data, event.timestamp_ns or now_ns)


class Handover(Generic[M]):
    def __init__(self, *, bucket: TokenBucket | None = None, max_batch: int = MAX_BATCH
                 ) -> None:
        self.bucket = bucket
        self.max_batch = max_batch
        self._messages: collections.deque[tuple[M, list[AuditEvent]]] = collections.deque()
        self._next = 0            # index of the next event of the head message
        self._pending = 0         # events added, not yet taken
        self._allowance = 0       # tokens granted, not yet used
        self._finished: list[M] = []
        self._handed = False      # this call gave Falco events
        self._counts: Counter[str] = Counter()

    def add(self, message: M, events: list[AuditEvent]) -> None:
        """Queue a message's events; a message without events finishes on the next take."""
        self._messages.append((message, events))
        self._pending += len(events)

    def acknowledge(self) -> list[M]:
        """Start of `next_batch`: the messages Falco has consumed, to delete or checkpoint."""
        finished, self._finished, self._handed = self._finished, [], False
        return finished

    def unconsumed_at_close(self) -> list[M]:
        """At close: the finished messages that are safe to acknowledge (none when the last
        call handed Falco a batch: it may not have been processed)."""
        finished = [] if self._handed else self._finished
        self._finished, self._handed = [], False
        return finished

    def counts(self) -> Counter[str]:
        """`delivered` since the previous call."""
        counts, self._counts = self._counts, Counter()
        return counts

    def falco_batch(self, wait_for_data: Callable[[float], object], stats: Stats
                    ) -> list[Event]:
        """A live source's next batch. With nothing to take, waits at most `POLL_WAIT_S`,
        for a token when the rate limit holds back pending events, else for data
        (`wait_for_data(timeout)` must `add` what arrives), then raises Timeout if there
        is still nothing. Counts are merged into `stats`."""
        events = self.take()
        if not events:
            if self._pending and self.bucket is not None:
                time.sleep(min(POLL_WAIT_S, max(0.001, self.bucket.wait_time(1))))
            else:
                wait_for_data(POLL_WAIT_S)
            events = self.take()
        stats.merge(self.counts())
        if not events:
            raise Timeout
        return events

    def take(self) -> list[Event]:
        """Up to `max_batch` events, in order, without waiting."""
        out: list[Event] = []
        taken = 0
        bucket = self.bucket
        now_ns = time.time_ns()
        blocked = False
        while self._messages and len(out) < self.max_batch and not blocked:
            message, events = self._messages[0]
            i = self._next
            while i < len(events) and len(out) < self.max_batch:
                event = events[i]
                if bucket is not None and self._allowance == 0:
                    self._allowance = bucket.grant(
                        min(self.max_batch - len(out), self._pending - taken))
                    if self._allowance == 0:
                        blocked = True
                        break
                if bucket is not None:
                    self._allowance -= 1
                out.append(falco_event(event, now_ns))
                i += 1
                taken += 1
            if i < len(events):
                self._next = i
                break
            self._messages.popleft()
            self._next = 0
            self._finished.append(message)
        self._pending -= taken
        if out:
            self._handed = True
            self._counts["delivered"] += len(out)
        return out
