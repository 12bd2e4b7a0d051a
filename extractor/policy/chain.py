"""The one chain of policies a normalized audit event meets, the same for the ingest
function and every plugin source, in this order:

1. the cluster mark: an event its writer could not attribute (no resourceId) is named by
   the reader's fallback cluster (the plugin's open params), before its dedupe key is made;
2. the size bound: an event over `max_event_bytes` is dropped as `too_large`, its data kept
   for the caller's dead letter or log line;
3. the dedupe window: an event whose (cluster, auditID, stage) was delivered within the
   last `dedupe_window` keys is dropped as `duplicate`; a key enters the window only when
   its event passes, so a copy of an event that was not delivered is not a duplicate.

The rate limit comes last and is the caller's, as it is about time rather than content:
the plugin's hand-over paces events out (`TokenBucket.grant`), the function delays or
sheds messages (`TokenBucket.reserve`).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from extractor.envelope.normalize import (
    DELIVERED,
    AuditEvent,
    Batch,
    Drop,
    Reason,
    with_fallback_cluster,
)
from extractor.policy.dedupe import DEFAULT_DEDUPE_WINDOW, Deduper


def too_large_detail(audit_id: str, stage: str, size: int, max_bytes: int) -> str:
    """Why an event was not delivered for its size: a drop's or a dead letter's detail."""
    return f"event {audit_id!r} {stage!r}: {size} bytes, over the {max_bytes}-byte limit"


@dataclass(slots=True)
class Chain:
    """Thread-safe: an Event Hub source's partitions and a function's concurrent
    invocations share one chain, and so one dedupe window."""

    max_event_bytes: int | None = None
    dedupe_window: int = DEFAULT_DEDUPE_WINDOW
    fallback_cluster: str | None = None
    _deduper: Deduper = field(init=False, repr=False)
    _lock: threading.Lock = field(init=False, repr=False, default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self._deduper = Deduper(self.dedupe_window)
        if self.fallback_cluster:
            self.fallback_cluster = self.fallback_cluster.lower()

    def admit(self, batch: Batch) -> Batch:
        """`batch` with its events through the chain: those that pass stay, in order; the
        others become drops (`too_large` with their data, `duplicate` without) and move
        from DELIVERED to their reason in the counts."""
        passed: list[AuditEvent] = []
        with self._lock:
            for parsed in batch.events:
                event = parsed
                if self.fallback_cluster and event.cluster is None:
                    event = with_fallback_cluster(event, self.fallback_cluster)
                reason = self._verdict(event)
                if reason is None:
                    passed.append(event)
                    continue
                batch.counts[DELIVERED] -= 1
                batch.counts.subtract(batch.also_counted.pop(id(parsed), ()))
                batch.counts[reason] += 1
                if reason is Reason.TOO_LARGE:
                    batch.drops.append(Drop(reason, too_large_detail(
                        event.audit_id, event.stage, len(event.data), self.max_event_bytes or 0),
                        event.data))
                else:
                    batch.drops.append(Drop(reason, f"{event.audit_id!r} {event.stage!r}"))
        batch.events = passed
        return batch

    def _verdict(self, event: AuditEvent) -> Reason | None:
        if self.max_event_bytes is not None and len(event.data) > self.max_event_bytes:
            return Reason.TOO_LARGE
        if self._deduper.seen(event.key):
            return Reason.DUPLICATE
        return None

    def withdraw(self, events: list[AuditEvent]) -> None:
        """These admitted events were not delivered after all (their message failed and
        will be read again): their keys leave the window, so the retry is no duplicate."""
        with self._lock:
            for event in events:
                self._deduper.discard(event.key)

    def forget(self) -> None:
        """Empty the dedupe window (a file replay's next file shows in full)."""
        with self._lock:
            self._deduper = Deduper(self.dedupe_window)
