"""Drain the Storage Queue the ingest function fills: at-least-once, nothing dropped.

Two threads share an instance (design and trade-offs: docs/queue-source.md):

- Falco's thread runs `next_batch`. It never touches the network: it hands over buffered
  events (deduplicated, rate limited), and acknowledges the messages whose every event went
  out in an earlier batch (Falco calling again means it consumed that batch).
- One worker thread does every Azure call: receive, decode, claim-check fetch, visibility
  extension, delete, dead-letter. A failed call pauses the worker (exponential backoff,
  `backoff.py`) while `next_batch` keeps answering Timeout within `POLL_WAIT_S`
  (`handover.py`, which also holds the hand-over and acknowledgment rules).

A message is deleted only after Falco consumed all its events; its claim-check blob only
after the message is gone. A message whose visibility lapses anyway (long outage, crash) is
received again; its events already delivered are then absorbed by the dedupe window.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from azure.core.exceptions import HttpResponseError
from azure.storage.blob import ContainerClient
from azure.storage.queue import QueueClient

from extractor.deadletter import DeadLetter, QueueOrigin
from extractor.envelope import (
    AuditEvent,
    Deduper,
    split_by_size,
    too_large_detail,
    with_fallback_cluster,
)
from extractor.message import DEFAULT_LIMITS, PoisonMessage, unpack, unpack_blob
from extractor.ratelimit import TokenBucket
from plugin.k8saudit_aks.config import Common, QueueMode
from plugin.k8saudit_aks.sources.backoff import Backoff, describe
from plugin.k8saudit_aks.sources.handover import Handover
from plugin.k8saudit_aks.stats import Source, Stats
from plugin.sdk import Event, PluginError
from transport.backlog import measure_backlog
from transport.deadletter import send_dead_letter
from transport.errors import is_storage_failure

log = logging.getLogger("k8saudit-aks.queue")

WORKER_TICK_S = 1.0                  # longest the worker sleeps between checks
IDLE_POLL_S = (0.05, 1.0)            # pause after an empty receive: first, doubling to
# Read-ahead: what a crashed Falco gets again (duplicates) and what the buffer holds in
# memory. One poll ahead keeps Falco busy while the next receive is in flight.
MAX_BUFFERED_BYTES = 4 * 1024 * 1024
HELD_POLLS = 2
# Longest pause between tries while storage is down: once it is back, messages Falco has
# consumed are deleted within this long (a Falco killed before their delete gets them
# again). One try per 5 s is no load on a storage account.
RECONNECT_MAX_S = 5.0
CLOSE_TIMEOUT_S = 5.0                # close() waits this long for the last deletes
BACKLOG_EVERY_S = 30.0               # queue length and oldest message age, for metrics
BACKLOG_GROWING_CHECKS = 4           # rises in a row before a warning (2 minutes)
# Client calls fail fast; retries are ours (Backoff), so they are paced and logged.
CLIENT_OPTIONS: dict[str, Any] = {"retry_total": 0, "connection_timeout": 5,
                                  "read_timeout": 20}
STALE_CODES = ("MessageNotFound", "PopReceiptMismatch")


@dataclass(eq=False)
class Held:
    """One received queue message, from receive until its delete."""

    queue_id: str
    pop_receipt: str
    visible_until: float                 # monotonic time it reappears unless extended
    text: str                            # kept until decoded (dead letters carry it)
    blob: str | None = None              # claim-check blob, deleted after the message
    nbytes: int = 0
    poison: tuple[str, str] | None = None
    deadletter_sent: bool = False
    stale: bool = False                  # our pop receipt lost (visibility lapsed)
    dequeue_count: int | None = None


class Unreadable(Exception):
    """A message no retry makes readable, for a reason `extractor.message` does not know."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def _status(exc: BaseException) -> int | None:
    return getattr(exc, "status_code", None)


def _is_stale(exc: BaseException) -> bool:
    """The message is gone or was received again elsewhere: our receipt is useless."""
    return _status(exc) in (400, 404) and getattr(exc, "error_code", None) in STALE_CODES


class QueueInstance(Source):
    def __init__(self, mode: QueueMode, common: Common, cluster: str | None = None,
                 *, clients: tuple[QueueClient, QueueClient, ContainerClient] | None = None
                 ) -> None:
        self.mode, self.common = mode, common
        self.cluster = cluster.lower() if cluster else None
        self.queue, self.deadletter, self.claims = clients or _clients(mode)
        self._lock = threading.Lock()
        self.stats = Stats(f"queue:{self.queue.account_name}/{mode.queue_name}",
                           common.stats_interval_seconds, self._lock)
        self.handover: Handover[Held] = Handover(
            bucket=(TokenBucket(common.rate_limit_events_per_second, common.rate_limit_burst)
                    if common.rate_limit_events_per_second else None),
            deduper=Deduper(common.dedupe_window))
        self.visibility = mode.visibility_timeout_seconds
        self.max_held = HELD_POLLS * mode.max_messages_per_poll
        # Shared between the threads, under _lock.
        self._ready_cond = threading.Condition(self._lock)
        self._ready: collections.deque[tuple[Held, list[AuditEvent]]] = collections.deque()
        self._buffered_bytes = 0             # events received and not yet consumed
        self._acks: collections.deque[Held] = collections.deque()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        # Falco thread only: self.handover, and
        self._closed = False
        # Worker only.
        self._held: set[Held] = set()
        self._undecoded: collections.deque[Held] = collections.deque()
        self._poisoned: list[Held] = []
        self._deleting: list[Held] = []
        self._blobs: list[str] = []
        self._idle = IDLE_POLL_S[0]
        self.backoff = Backoff(log, max_s=RECONNECT_MAX_S)
        self._op = "start"
        self._close_deadline = float("inf")
        self._next_backlog = 0.0
        self._last_backlog = 0
        self._growth = 0
        self._worker = threading.Thread(target=self._run, name="k8saudit-aks-queue",
                                        daemon=True)
        log.info("draining queue %s of account %s (visibility %d s, %d messages a poll, %s)",
                 mode.queue_name, self.queue.account_name, self.visibility,
                 mode.max_messages_per_poll,
                 f"rate limit {common.rate_limit_events_per_second:g}/s burst "
                 f"{common.rate_limit_burst}" if common.rate_limit_events_per_second
                 else "no rate limit")
        self._worker.start()

    # --- Falco's thread ------------------------------------------------------------------

    def next_batch(self) -> Sequence[Event]:
        self._count_report()
        if not self._worker.is_alive():
            raise PluginError("queue source: the storage worker stopped unexpectedly "
                              f"(last error: {self.backoff.last_error or 'none'})")
        self._acknowledge(self.handover.acknowledge())
        self._take_ready()
        return self.handover.falco_batch(self._wait_for_ready, self.stats, self._lock)

    def _acknowledge(self, consumed: list[Held]) -> None:
        """Falco consumed these messages' events: the worker may delete them."""
        if consumed:
            with self._lock:
                self._acks.extend(consumed)
                self._buffered_bytes -= sum(held.nbytes for held in consumed)
            self._wake.set()

    def _take_ready(self) -> None:
        """Move what the worker decoded to the hand-over, in message order."""
        with self._lock:
            ready, self._ready = self._ready, collections.deque()
        for held, events in ready:
            self.handover.add(held, events)

    def _wait_for_ready(self, timeout: float) -> None:
        with self._ready_cond:
            if not self._ready:
                self._ready_cond.wait(timeout)
        self._take_ready()

    def _count_report(self) -> None:
        with self._lock:
            self.stats.maybe_report()

    def close(self) -> None:
        """Delete what Falco consumed; the rest reappears after its visibility timeout.

        The last batch handed over does not count as consumed: Falco may stop mid-batch
        (SIGTERM, hot reload), or the batch never reached it (the SDK failed after
        next_batch returned). Its messages are read again; the dedupe window absorbs what
        it still remembers."""
        if self._closed:
            return
        self._closed = True
        self._acknowledge(self.handover.unconsumed_at_close())
        self._close_deadline = time.monotonic() + CLOSE_TIMEOUT_S
        self._stopping.set()
        self._wake.set()
        self._worker.join(CLOSE_TIMEOUT_S + 1)
        with self._lock:
            left = len(self._acks) + len(self._deleting)
            if left:
                log.warning("closing with %d consumed messages not deleted (%s); they "
                            "reappear after their visibility timeout and are delivered again",
                            left, self.backoff.last_error or "storage too slow")
            log.info("%s", self.stats.line())

    # --- worker thread -------------------------------------------------------------------

    def _count(self, key: str, n: int = 1) -> None:
        with self._lock:
            self.stats.add(key, n)

    def _run(self) -> None:
        while True:
            stopping = self._stopping.is_set()
            if stopping and (time.monotonic() >= self._close_deadline
                             or not (self._acks or self._deleting or self._blobs)):
                return
            if self.backoff.remaining() > 0:
                self.backoff.still_failing()
                self._sleep(min(self.backoff.remaining(), WORKER_TICK_S))
                continue
            try:
                self._op = "delete"
                self._delete_consumed()
                if stopping:
                    return
                self._op = "extend visibility"
                self._extend_due()
                self._op = "dead-letter"
                self._dead_letter_poisoned()
                received = self._fill()
                self._op = "measure backlog"
                self._measure_backlog()
            except Exception as exc:
                self._count("errors")
                self.backoff.failed(self._op, exc)
                continue
            self.backoff.succeeded()
            if received:
                self._idle = IDLE_POLL_S[0]
                continue
            self._sleep(min(self._idle, self._next_extension()))
            self._idle = min(IDLE_POLL_S[1], self._idle * 2)

    def _measure_backlog(self) -> None:
        """Every BACKLOG_EVERY_S: messages waiting (approximate, as the service counts
        them) and the age of the oldest visible one, for Falco's metrics."""
        now = time.monotonic()
        if now < self._next_backlog:
            return
        self._next_backlog = now + BACKLOG_EVERY_S
        backlog = measure_backlog(self.queue)
        count, age = backlog.messages, backlog.oldest_message_age_s
        with self._lock:
            self.stats.gauge("queue_backlog_messages", float(count))
            self.stats.gauge("queue_oldest_message_age", age)
        self._growth = self._growth + 1 if count > self._last_backlog > 0 else 0
        self._last_backlog = count
        if self._growth >= BACKLOG_GROWING_CHECKS:
            self._growth = 0
            self._count("backlog_growing")
            log.warning("queue %s backlog grew for %.0f s to %d messages (oldest %.0f s): Falco "
                        "reads slower than the function writes; raise "
                        "rate_limit_events_per_second (or unset it) or add replicas",
                        self.mode.queue_name, BACKLOG_GROWING_CHECKS * BACKLOG_EVERY_S, count,
                        age)

    def _sleep(self, seconds: float) -> None:
        if seconds > 0 and self._wake.wait(seconds):
            self._wake.clear()

    def _next_extension(self) -> float:
        now = time.monotonic()
        due = [h.visible_until - self.visibility / 2 - now for h in self._held if not h.stale]
        return max(0.0, min(due, default=WORKER_TICK_S))

    def _delete_consumed(self) -> None:
        with self._lock:
            self._deleting.extend(self._acks)
            self._acks.clear()
        while self._deleting:
            held = self._deleting[0]
            if not held.stale:
                try:
                    self.queue.delete_message(held.queue_id, held.pop_receipt)
                    self._count("deleted")
                    if held.blob and held.poison is None:  # a dead letter keeps its blob
                        self._blobs.append(held.blob)
                except HttpResponseError as exc:
                    if not _is_stale(exc):
                        raise
                    held.stale = True
            if held.stale:  # received again by someone: that copy is deleted instead
                self._count("delete_stale")
            self._held.discard(held)
            with self._lock:
                self._deleting.pop(0)
        self._op = "delete claim-check blob"
        while self._blobs:
            try:
                self.claims.delete_blob(self._blobs[0])
                self._count("claimcheck_deleted")
            except HttpResponseError as exc:
                if _status(exc) != 404:
                    raise
            self._blobs.pop(0)

    def _extend_due(self) -> None:
        now = time.monotonic()
        for held in list(self._held):
            if held.stale or held.visible_until - now > self.visibility / 2:
                continue
            try:
                updated = self.queue.update_message(
                    held.queue_id, held.pop_receipt, visibility_timeout=self.visibility)
            except HttpResponseError as exc:
                if not _is_stale(exc):
                    raise
                held.stale = True
                self._count("visibility_lost")
                log.warning("message %s reappeared before its visibility was extended; "
                            "its redelivery is deduplicated", held.queue_id)
                continue
            held.pop_receipt = updated.pop_receipt or held.pop_receipt
            held.visible_until = now + self.visibility
            self._count("visibility_extended")

    def _fill(self) -> bool:
        """Decode what is pending, then receive more if the buffer has room."""
        self._op = "download claim-check blob"
        self._decode_pending()
        with self._lock:
            room = self._buffered_bytes < MAX_BUFFERED_BYTES
        wanted = min(self.mode.max_messages_per_poll, self.max_held - len(self._held))
        if not room or wanted <= 0 or self._undecoded:
            return False
        self._op = "receive"
        started = time.monotonic()
        messages = list(self.queue.receive_messages(
            messages_per_page=wanted, max_messages=wanted, visibility_timeout=self.visibility))
        if not messages:
            return False
        self._count("received_messages", len(messages))
        for message in messages:
            held = Held(message.id, message.pop_receipt or "", started + self.visibility,
                        message.content if isinstance(message.content, str) else "")
            held.dequeue_count = message.dequeue_count
            self._held.add(held)
            self._undecoded.append(held)
        self._op = "download claim-check blob"
        self._decode_pending()
        return True

    def _decode_pending(self) -> None:
        """Decode each received message inside its own boundary: one that cannot be read
        costs itself (dead letter, or a later retry for a storage failure), never the
        messages behind it. Only while the buffer has room: the rest wait as their text
        (64 KiB at most), decoded as Falco consumes what is ahead of them."""
        while self._undecoded:
            with self._lock:
                if self._buffered_bytes >= MAX_BUFFERED_BYTES:
                    return
            held = self._undecoded.popleft()
            try:
                events = self._decode(held)
            except Exception as exc:
                self._decode_failed(held, exc)
                continue
            held.text = ""
            held.nbytes = sum(len(e.data) for e in events)
            with self._ready_cond:
                self.stats.received(len(events))
                self._ready.append((held, events))
                self._buffered_bytes += held.nbytes
                self._ready_cond.notify()

    def _decode_failed(self, held: Held, exc: Exception) -> None:
        """Poison is dead-lettered now. A storage failure releases the message: it
        reappears after its visibility timeout, until `max_dequeue_count` receives have
        failed, when it is dead-lettered with its last error. Anything else is a bug:
        dead-lettered as `internal_error`."""
        if isinstance(exc, (PoisonMessage, Unreadable)):
            self._poison(held, str(exc.reason), exc.detail)
        elif not is_storage_failure(exc):
            log.exception("message %s: unexpected error while reading it", held.queue_id)
            self._poison(held, "internal_error", describe(exc))
        elif (held.dequeue_count or 0) >= self.mode.max_dequeue_count:
            self._poison(held, "max_dequeue_count", f"received {held.dequeue_count} times; "
                         f"last error ({self._op}): {describe(exc)}")
        else:
            self._held.discard(held)  # no longer extended: it reappears and is retried
            self._count("released")
            self.backoff.failed(f"{self._op} (message {held.queue_id} released, receive "
                                f"{held.dequeue_count} of {self.mode.max_dequeue_count})", exc)

    def _poison(self, held: Held, reason: str, detail: str) -> None:
        held.poison = (reason, detail)
        self._poisoned.append(held)

    def _decode(self, held: Held) -> list[AuditEvent]:
        unpacked = unpack(held.text)
        if unpacked.blob is None:
            events = unpacked.events or []
        else:
            held.blob = unpacked.blob.name
            self._op = "download claim-check blob"
            try:  # a ranged read: a blob larger than any claim check never fills memory
                data = self.claims.download_blob(
                    unpacked.blob.name, offset=0, length=DEFAULT_LIMITS.max_blob_bytes + 1,
                ).readall()
            except HttpResponseError as exc:
                if _status(exc) != 404:
                    raise
                raise Unreadable("claimcheck_missing",
                                 f"blob {unpacked.blob.name} not found") from None
            self._count("claimcheck_fetched")
            events = unpack_blob(unpacked.blob, data)
        events, too_large = split_by_size(events, self.common.max_event_size)
        for event in too_large:  # before the message can be deleted
            self._op = "dead-letter"
            self._send_dead_letter(held, "too_large", too_large_detail(
                event.audit_id, event.stage, len(event.data), self.common.max_event_size),
                event.data)
            self._count("dead_lettered.too_large")
        if self.cluster:
            events = [with_fallback_cluster(e, self.cluster) if e.cluster is None else e
                      for e in events]
        return events

    def _dead_letter_poisoned(self) -> None:
        """Send each poisoned message's dead letter, then delete it like a consumed one. A
        storage failure propagates (the worker backs off and tries again); a letter the
        queue refuses for its content releases the message instead, so it cannot block
        the ones behind it and is not deleted unrecorded."""
        while self._poisoned:
            held = self._poisoned[0]
            reason, detail = held.poison or ("unknown", "")
            if not held.deadletter_sent and not held.stale:
                try:
                    self._send_dead_letter(held, reason, detail,
                                           held.text.encode("utf-8", "surrogatepass"))
                except Exception as exc:
                    if is_storage_failure(exc):
                        raise
                    log.error("message %s (%s): its dead letter was refused (%s); left in "
                              "the queue", held.queue_id, reason, describe(exc))
                    self._count("dead_letter_refused")
                    self._held.discard(held)
                    self._poisoned.pop(0)
                    continue
                held.deadletter_sent = True
                held.text = ""
                self._count(f"dead_lettered.{reason}")
                log.warning("message %s dead-lettered to %s: %s: %s", held.queue_id,
                            self.mode.deadletter_queue_name, reason, detail[:200])
            with self._lock:
                self._acks.append(held)  # deleted like a consumed message
            self._poisoned.pop(0)
        self._delete_consumed()

    def _send_dead_letter(self, held: Held, reason: str, detail: str, raw: bytes) -> None:
        """The pipeline's one dead-letter format (extractor.deadletter), `source: "plugin"`,
        about this message (or one of its events), raw inline or in a blob."""
        origin = QueueOrigin(self.mode.queue_name, held.queue_id, held.dequeue_count,
                             held.blob)
        send_dead_letter(self.deadletter, self.claims,
                         DeadLetter("plugin", reason, detail, raw, origin),
                         create_queue=bool(self.mode.queue_connection_string))


def _clients(mode: QueueMode) -> tuple[QueueClient, QueueClient, ContainerClient]:
    """Source queue, dead-letter queue, claim-check container: fail fast, no SDK retries."""
    from transport.clients import pipeline_clients

    return pipeline_clients(mode, queue_options=CLIENT_OPTIONS, blob_options=CLIENT_OPTIONS)
