"""The queue source's storage worker: every Azure call of the queue source, on its own thread.

It receives messages, decodes them (claim-check blobs included) and posts their events to
the `Mailbox`; it keeps the messages it holds invisible while Falco works through them,
deletes each one (then its claim-check blob) once Falco consumed its events, and
dead-letters what no retry can read. A failed call pauses it (`Backoff`); each storage
call names its operation (`storage_call`), which is what the outage line says. Its parts:
`_Reader` (a message -> its events through the policy chain), `_Holdings` (visibility and
deletes), `_Letters` (dead letters), `_BacklogWatch` (the queue's length, for metrics).

A message is deleted only after Falco consumed all its events; its blob only after the
message is gone. A message whose visibility lapses anyway (long outage, crash) is received
again; its events already delivered are absorbed by the dedupe window.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

from azure.storage.blob import ContainerClient
from azure.storage.queue import QueueClient

from extractor.envelope.normalize import DELIVERED, Batch, Reason
from extractor.message.codec import DEFAULT_LIMITS, PoisonMessage, unpack, unpack_blob
from extractor.message.deadletter import DeadLetter, QueueOrigin
from extractor.policy.chain import Chain
from extractor.safe_text import describe_redacted
from plugin.k8saudit_aks.config import Common, QueueMode
from plugin.k8saudit_aks.sources.backoff import Backoff
from plugin.k8saudit_aks.sources.mailbox import Mailbox
from plugin.k8saudit_aks.stats import Stats
from transport.backlog import measure_backlog
from transport.deadletter import send_dead_letter
from transport.errors import is_storage_failure

log = logging.getLogger("k8saudit-aks.queue")

WORKER_TICK_S = 1.0                  # longest the worker sleeps between checks
IDLE_POLL_S = (0.05, 1.0)            # pause after an empty receive: first, doubling to
# Messages held (received, not yet deleted), in polls: one poll ahead keeps Falco busy
# while the next receive is in flight, and bounds what a crashed Falco gets again.
HELD_POLLS = 2
# Longest pause between tries while storage is down: once it is back, messages Falco has
# consumed are deleted within this long (a Falco killed before their delete gets them
# again). One try per 5 s is no load on a storage account.
RECONNECT_MAX_S = 5.0
BACKLOG_EVERY_S = 30.0               # queue length and oldest message age, for metrics
BACKLOG_GROWING_CHECKS = 4           # rises in a row before a warning (2 minutes)
STALE_CODES = ("MessageNotFound", "PopReceiptMismatch")


@dataclass(eq=False)
class Held:
    """One received queue message, from receive until its delete."""

    queue_id: str
    pop_receipt: str
    visible_until: float                 # monotonic time it reappears unless extended
    text: str                            # kept until decoded (dead letters carry it)
    dequeue_count: int | None = None
    blob: str | None = None              # claim-check blob, deleted after the message
    poison: tuple[str, str] | None = None
    deadletter_sent: bool = False
    stale: bool = False                  # our pop receipt lost (visibility lapsed)


class Unreadable(Exception):
    """A message no retry makes readable, for a reason `extractor.message.codec` does not
    know."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class CallFailed(Exception):
    """A storage call failed: `op` names it, `cause` is what the SDK raised."""

    def __init__(self, op: str, cause: Exception) -> None:
        super().__init__(f"{op}: {cause}")
        self.op = op
        self.cause = cause


@contextlib.contextmanager
def storage_call(op: str) -> Iterator[None]:
    """Label what fails inside with the operation it was (`Unreadable` passes as it is)."""
    try:
        yield
    except Unreadable:
        raise
    except Exception as exc:
        raise CallFailed(op, exc) from exc


def _status(exc: BaseException) -> int | None:
    return getattr(exc, "status_code", None)


def _is_stale(exc: BaseException) -> bool:
    """The message is gone or was received again elsewhere: our receipt is useless."""
    return _status(exc) in (400, 404) and getattr(exc, "error_code", None) in STALE_CODES


class StorageWorker:
    def __init__(self, mode: QueueMode, common: Common, cluster: str | None,
                 clients: tuple[QueueClient, QueueClient, ContainerClient],
                 mailbox: Mailbox[Held], stats: Stats) -> None:
        self.mode = mode
        self.queue, self.deadletter, self.claims = clients
        self.mailbox, self.stats = mailbox, stats
        self.letters = _Letters(mode, self.deadletter, self.claims)
        self.reader = _Reader(common, cluster, self.claims, self.letters, stats)
        self.holdings = _Holdings(self.queue, self.claims, mode.visibility_timeout_seconds,
                                  stats)
        self.max_held = HELD_POLLS * mode.max_messages_per_poll
        self.backoff = Backoff(log, max_s=RECONNECT_MAX_S)
        self.backlog = _BacklogWatch(self.queue, mode.queue_name, stats)
        self._undecoded: collections.deque[Held] = collections.deque()
        self._poisoned: collections.deque[Held] = collections.deque()
        self._idle = IDLE_POLL_S[0]
        self._stopping = threading.Event()
        self._close_deadline = float("inf")
        self._thread = threading.Thread(target=self._run, name="k8saudit-aks-queue",
                                        daemon=True)

    def start(self) -> None:
        self._thread.start()

    def is_alive(self) -> bool:
        return self._thread.is_alive()

    def stop(self, timeout: float) -> int:
        """Delete what Falco consumed, for up to `timeout` seconds; the consumed messages
        left undeleted."""
        self._close_deadline = time.monotonic() + timeout
        self._stopping.set()
        self.mailbox.wake.set()
        self._thread.join(timeout + 1)
        return self.mailbox.pending() + self.holdings.undeleted()

    def _owes(self) -> bool:
        return bool(self.mailbox.pending()) or not self.holdings.done()

    def _run(self) -> None:
        while True:
            stopping = self._stopping.is_set()
            if stopping and (time.monotonic() >= self._close_deadline or not self._owes()):
                return
            if self.backoff.remaining() > 0:
                self.backoff.still_failing()
                self.mailbox.sleep(min(self.backoff.remaining(), WORKER_TICK_S))
                continue
            try:
                self.holdings.delete(self.mailbox.take_consumed())
                if stopping:
                    return
                self.holdings.extend_due()
                self._dead_letter_poisoned()
                received = self._fill()
                self.backlog.measure()
            except CallFailed as failed:
                self.stats.add("errors")
                self.backoff.failed(failed.op, failed.cause)
                continue
            except Exception as exc:  # a bug here, not storage: logged, paced, retried
                log.exception("queue worker")
                self.stats.add("errors")
                self.backoff.failed("queue worker", exc)
                continue
            self.backoff.succeeded()
            if received:
                self._idle = IDLE_POLL_S[0]
                continue
            self.mailbox.sleep(min(self._idle, self.holdings.next_extension()))
            self._idle = min(IDLE_POLL_S[1], self._idle * 2)

    # --- receiving and decoding ----------------------------------------------------------

    def _fill(self) -> bool:
        """Decode what is pending, then receive more if the mailbox has room."""
        self._decode_pending()
        wanted = min(self.mode.max_messages_per_poll, self.max_held - len(self.holdings.held))
        if not self.mailbox.has_room() or wanted <= 0 or self._undecoded:
            return False
        started = time.monotonic()
        with storage_call("receive"):
            messages = list(self.queue.receive_messages(
                messages_per_page=wanted, max_messages=wanted,
                visibility_timeout=self.holdings.visibility))
        if not messages:
            return False
        self.stats.add("received_messages", len(messages))
        for message in messages:
            held = Held(message.id, message.pop_receipt or "", started + self.holdings.visibility,
                        message.content if isinstance(message.content, str) else "",
                        message.dequeue_count)
            self.holdings.held.add(held)
            self._undecoded.append(held)
        self._decode_pending()
        return True

    def _decode_pending(self) -> None:
        """Decode each received message inside its own boundary: one that cannot be read
        costs itself (dead letter, or a later retry for a storage failure), never the
        messages behind it. Only while the mailbox has room: the rest wait as their text
        (64 KiB at most), decoded as Falco consumes what is ahead of them."""
        while self._undecoded and self.mailbox.has_room():
            held = self._undecoded.popleft()
            try:
                admitted = self.reader.read(held)
            except Exception as exc:
                self._decode_failed(held, exc)
                continue
            held.text = ""
            self.stats.received(admitted.items)
            self.mailbox.post(held, admitted.events)

    def _decode_failed(self, held: Held, exc: Exception) -> None:
        """Poison is dead-lettered now. A storage failure releases the message: it
        reappears after its visibility timeout, until `max_dequeue_count` receives have
        failed, when it is dead-lettered with its last error. Anything else is a bug:
        dead-lettered as `internal_error`."""
        if isinstance(exc, (PoisonMessage, Unreadable)):
            self._poison(held, str(exc.reason), exc.detail)
        elif not (isinstance(exc, CallFailed) and is_storage_failure(exc.cause)):
            log.exception("message %s: unexpected error while reading it", held.queue_id)
            self._poison(held, "internal_error", describe_redacted(
                exc.cause if isinstance(exc, CallFailed) else exc))
        elif (held.dequeue_count or 0) >= self.mode.max_dequeue_count:
            self._poison(held, "max_dequeue_count", f"received {held.dequeue_count} times; "
                         f"last error ({exc.op}): {describe_redacted(exc.cause)}")
        else:
            self.holdings.held.discard(held)  # no longer extended: it reappears and is retried
            self.stats.add("released")
            self.backoff.failed(f"{exc.op} (message {held.queue_id} released, receive "
                                f"{held.dequeue_count} of {self.mode.max_dequeue_count})",
                                exc.cause)

    # --- dead letters --------------------------------------------------------------------

    def _poison(self, held: Held, reason: str, detail: str) -> None:
        held.poison = (reason, detail)
        self._poisoned.append(held)

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
                    self.letters.send(held, reason, detail,
                                      held.text.encode("utf-8", "surrogatepass"))
                except CallFailed as failed:
                    if is_storage_failure(failed.cause):
                        raise
                    log.error("message %s (%s): its dead letter was refused (%s); left in "
                              "the queue", held.queue_id, reason,
                              describe_redacted(failed.cause))
                    self.stats.add("dead_letter_refused")
                    self.holdings.held.discard(held)
                    self._poisoned.popleft()
                    continue
                held.deadletter_sent = True
                held.text = ""
                self.stats.add(f"dead_lettered.{reason}")
                log.warning("message %s dead-lettered to %s: %s: %s", held.queue_id,
                            self.mode.deadletter_queue_name, reason, detail[:200])
            self.holdings.to_delete(held)
            self._poisoned.popleft()
        self.holdings.delete([])


class _Holdings:
    """The messages the worker holds, from receive until their delete: each kept invisible
    while Falco works through it, deleted (then its claim-check blob) once consumed."""

    def __init__(self, queue: QueueClient, claims: ContainerClient, visibility: int,
                 stats: Stats) -> None:
        self.queue, self.claims, self.visibility, self.stats = queue, claims, visibility, stats
        self.held: set[Held] = set()
        self._deleting: collections.deque[Held] = collections.deque()
        self._blobs: collections.deque[str] = collections.deque()

    def undeleted(self) -> int:
        """Consumed messages not deleted yet."""
        return len(self._deleting)

    def done(self) -> bool:
        """Nothing left to delete, message or blob."""
        return not (self._deleting or self._blobs)

    def to_delete(self, held: Held) -> None:
        """A dead-lettered message: deleted like a consumed one."""
        self._deleting.append(held)

    def next_extension(self) -> float:
        """Seconds until the next visibility extension is due."""
        now = time.monotonic()
        due = [h.visible_until - self.visibility / 2 - now for h in self.held if not h.stale]
        return max(0.0, min(due, default=WORKER_TICK_S))

    def delete(self, consumed: list[Held]) -> None:
        """Delete `consumed` and whatever earlier deletes left, then their blobs."""
        self._deleting.extend(consumed)
        while self._deleting:
            held = self._deleting[0]
            if not held.stale:
                try:
                    with storage_call("delete"):
                        self.queue.delete_message(held.queue_id, held.pop_receipt)
                    self.stats.add("deleted")
                    if held.blob and held.poison is None:  # a dead letter keeps its blob
                        self._blobs.append(held.blob)
                except CallFailed as failed:
                    if not _is_stale(failed.cause):
                        raise
                    held.stale = True
            if held.stale:  # received again by someone: that copy is deleted instead
                self.stats.add("delete_stale")
            self.held.discard(held)
            self._deleting.popleft()
        while self._blobs:
            try:
                with storage_call("delete claim-check blob"):
                    self.claims.delete_blob(self._blobs[0])
                self.stats.add("claimcheck_deleted")
            except CallFailed as failed:
                if _status(failed.cause) != 404:
                    raise
            self._blobs.popleft()

    def extend_due(self) -> None:
        now = time.monotonic()
        for held in list(self.held):
            if held.stale or held.visible_until - now > self.visibility / 2:
                continue
            try:
                with storage_call("extend visibility"):
                    updated = self.queue.update_message(
                        held.queue_id, held.pop_receipt, visibility_timeout=self.visibility)
            except CallFailed as failed:
                if not _is_stale(failed.cause):
                    raise
                held.stale = True
                self.stats.add("visibility_lost")
                log.warning("message %s reappeared before its visibility was extended; "
                            "its redelivery is deduplicated", held.queue_id)
                continue
            held.pop_receipt = updated.pop_receipt or held.pop_receipt
            held.visible_until = now + self.visibility
            self.stats.add("visibility_extended")


class _Letters:
    """This source's dead letters: the pipeline's one format, `source: "plugin"`."""

    def __init__(self, mode: QueueMode, deadletter: QueueClient, claims: ContainerClient
                 ) -> None:
        self.mode, self.deadletter, self.claims = mode, deadletter, claims

    def send(self, held: Held, reason: str, detail: str, raw: bytes) -> None:
        """A letter about this message (or one of its events), raw inline or in a blob."""
        origin = QueueOrigin(self.mode.queue_name, held.queue_id, held.dequeue_count,
                             held.blob)
        with storage_call("dead-letter"):
            send_dead_letter(self.deadletter, self.claims,
                             DeadLetter("plugin", reason, detail, raw, origin),
                             create_queue=bool(self.mode.queue_connection_string))


class _Reader:
    """A received message -> its audit events through the policy chain, claim-check blob
    fetched, events over the size bound dead-lettered before the message can go."""

    def __init__(self, common: Common, cluster: str | None, claims: ContainerClient,
                 letters: _Letters, stats: Stats) -> None:
        self.claims, self.letters, self.stats = claims, letters, stats
        self.chain = Chain(common.max_event_size, common.dedupe_window, cluster)

    def read(self, held: Held) -> Batch:
        """The message's events through the policy chain; `items`: every event it held."""
        unpacked = unpack(held.text)
        if unpacked.blob is None:
            events = unpacked.events or []
        else:
            held.blob = unpacked.blob.name
            try:  # a ranged read: a blob larger than any claim check never fills memory
                with storage_call("download claim-check blob"):
                    data = self.claims.download_blob(
                        unpacked.blob.name, offset=0,
                        length=DEFAULT_LIMITS.max_blob_bytes + 1).readall()
            except CallFailed as failed:
                if _status(failed.cause) != 404:
                    raise
                raise Unreadable("claimcheck_missing",
                                 f"blob {unpacked.blob.name} not found") from None
            self.stats.add("claimcheck_fetched")
            events = unpack_blob(unpacked.blob, data)
        admitted = self.chain.admit(
            Batch(events, counts=Counter({DELIVERED: len(events)}), items=len(events)))
        try:
            for drop in admitted.drops:
                if drop.reason is Reason.DUPLICATE:
                    self.stats.add("deduplicated")
                else:  # too_large: dead-lettered before the message can be deleted
                    self.letters.send(held, str(drop.reason), drop.detail, drop.raw or b"")
                    self.stats.add(f"dead_lettered.{drop.reason}")
        except BaseException:  # the message is read again: its events are no duplicates
            self.chain.withdraw(admitted.events)
            raise
        return admitted


class _BacklogWatch:
    """The queue's length and the age of its oldest message, every `BACKLOG_EVERY_S`, as
    gauges; a warning when the length grew `BACKLOG_GROWING_CHECKS` times in a row."""

    def __init__(self, queue: QueueClient, name: str, stats: Stats) -> None:
        self.queue, self.name, self.stats = queue, name, stats
        self._next = 0.0
        self._last = 0
        self._growth = 0

    def measure(self) -> None:
        now = time.monotonic()
        if now < self._next:
            return
        self._next = now + BACKLOG_EVERY_S
        with storage_call("measure backlog"):
            backlog = measure_backlog(self.queue)
        count, age = backlog.messages, backlog.oldest_message_age_s
        self.stats.gauge("queue_backlog_messages", float(count))
        self.stats.gauge("queue_oldest_message_age", age)
        self._growth = self._growth + 1 if count > self._last > 0 else 0
        self._last = count
        if self._growth >= BACKLOG_GROWING_CHECKS:
            self._growth = 0
            self.stats.add("backlog_growing")
            log.warning("queue %s backlog grew for %.0f s to %d messages (oldest %.0f s): Falco "
                        "reads slower than the function writes; raise "
                        "rate_limit_events_per_second (or unset it) or add replicas",
                        self.name, BACKLOG_GROWING_CHECKS * BACKLOG_EVERY_S, count, age)
