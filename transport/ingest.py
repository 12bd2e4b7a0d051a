"""The I/O of one ingest invocation: Event Hub bodies in, queue messages and dead letters out.

``function_app.py`` calls :meth:`Ingestor.ingest` with the bodies of one Event Hub batch. It
parses them (``extractor.envelope``), rate-limits, packs (``extractor.message``), uploads
claim-check blobs before the messages that name them, sends, dead-letters the drops that
carry their raw record, and logs one summary line. Any storage failure propagates: the
Functions host then retries the batch (infinite retry policy) instead of checkpointing past
it. A retry re-sends what was already sent, so delivery is at-least-once; the reader
dedupes on auditID+stage. Settings, counters and the dead-letter format:
``docs/ingest-function.md``.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import logging
import math
import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from enum import StrEnum
from typing import Any

from azure.core.exceptions import ResourceExistsError
from azure.storage.blob import ContainerClient
from azure.storage.blob import ExponentialRetry as BlobRetry
from azure.storage.queue import ExponentialRetry as QueueRetry
from azure.storage.queue import QueueClient

from extractor.deadletter import DeadLetter, describe
from extractor.envelope import (
    DEFAULT_CATEGORIES,
    DEFAULT_DEDUPE_WINDOW,
    AuditEvent,
    Deduper,
    Drop,
    Reason,
    parse_documents,
)
from extractor.message import DEFAULT_LIMITS, OutgoingMessage, pack
from extractor.ratelimit import TokenBucket
from transport.clients import NO_EXPIRY, pipeline_clients
from transport.deadletter import send_dead_letter
from transport.errors import is_storage_failure

log = logging.getLogger("k8saudit.ingest")

# Azure Storage: a message may stay invisible at most 7 days. Messages never expire
# (NO_EXPIRY): the default 7-day TTL would silently drop what nobody read in time.
MAX_VISIBILITY_S = 7 * 24 * 3600
_SHED_LOG_IDS = 20
# Storage requests in flight per worker process (messages and dead letters of a batch).
SEND_CONCURRENCY = 8

# Counter keys of a Report, besides the envelope's ("delivered", "salvaged" and each
# extractor.envelope.Reason).
BODIES = "bodies"
SENT = "sent"  # events in queue messages
MESSAGES = "messages"
CLAIM_CHECKS = "claim_checks"  # messages whose events went to a blob
DEFERRED = "deferred"  # events sent with a visibility delay (defer policy)
DEFER_CAPPED = "defer_capped"  # ... whose delay was cut to 7 days (rate exceeded)
SHED = "shed"  # events not sent (shed policy)
DEAD_LETTERED = "dead_lettered"
DEAD_LETTER_CLAIM_CHECKS = "dead_letter_claim_checks"
REFUSED = "refused"  # events of a queue message the service refused (400/413), dead-lettered
DEAD_LETTER_REFUSED = "dead_letter_refused"  # dead letters the queue refused: logged only
FAILED = "failed"  # invocations that raised (the host retries them)
UNKNOWN_CLUSTER = "unknown"  # Report.clusters key of events whose record named no cluster


class RatePolicy(StrEnum):
    """What happens to events over the rate limit."""

    DEFER = "defer"  # sent now, invisible until their tokens are paid: nothing is lost
    SHED = "shed"  # not sent: counted and logged (explicit opt-in loss)


def _categories(value: str) -> tuple[str, ...]:
    return tuple(c.strip() for c in value.split(",") if c.strip())


@dataclass(frozen=True, slots=True)
class IngestSettings:
    """Function app settings; ``metadata["env"]`` names the app setting of each field."""

    queue_connection_string: str | None = field(
        default=None, metadata={"env": "QUEUE_CONNECTION_STRING"})
    queue_account_url: str | None = field(default=None, metadata={"env": "QUEUE_ACCOUNT_URL"})
    blob_account_url: str | None = field(
        default=None, metadata={"env": "CLAIMCHECK_ACCOUNT_URL"})
    queue_name: str = field(default="k8saudit", metadata={"env": "QUEUE_NAME"})
    deadletter_queue_name: str = field(
        default="k8saudit-deadletter", metadata={"env": "DEADLETTER_QUEUE_NAME"})
    claimcheck_container: str = field(
        default="k8saudit-claims", metadata={"env": "CLAIMCHECK_CONTAINER"})
    categories: tuple[str, ...] = field(
        default=tuple(sorted(DEFAULT_CATEGORIES)),
        metadata={"env": "AUDIT_CATEGORIES", "parse": _categories})
    rate_limit_events_per_second: float = field(
        default=1000.0, metadata={"env": "rate_limit_events_per_second", "parse": float})
    rate_limit_burst: int = field(
        default=2000, metadata={"env": "rate_limit_burst", "parse": int})
    rate_limit_policy: RatePolicy = field(
        default=RatePolicy.DEFER,
        metadata={"env": "RATE_LIMIT_POLICY", "parse": lambda v: RatePolicy(v.strip().lower())})
    dedupe_window: int = field(
        default=DEFAULT_DEDUPE_WINDOW, metadata={"env": "DEDUPE_WINDOW", "parse": int})
    storage_retry_total: int = field(
        default=3, metadata={"env": "STORAGE_RETRY_TOTAL", "parse": int})

    def __post_init__(self) -> None:
        if not (self.queue_connection_string or self.queue_account_url):
            raise ValueError("set QUEUE_CONNECTION_STRING or QUEUE_ACCOUNT_URL")
        if not self.categories:
            raise ValueError("AUDIT_CATEGORIES is empty")
        if self.rate_limit_events_per_second < 0 or self.rate_limit_burst < 1:
            raise ValueError("rate_limit_events_per_second must be >= 0 (0: no limit) "
                             "and rate_limit_burst >= 1")
        if self.dedupe_window < 0 or self.storage_retry_total < 0:
            raise ValueError("DEDUPE_WINDOW must be >= 0 (0: off) and STORAGE_RETRY_TOTAL >= 0")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> IngestSettings:
        """Settings from app settings (environment); unset or empty ones keep defaults."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = env.get(f.metadata["env"], "").strip()
            if raw:
                parse: Callable[[str], Any] = f.metadata.get("parse", str)
                try:
                    values[f.name] = parse(raw)
                except ValueError as exc:
                    raise ValueError(f"app setting {f.metadata['env']}={raw!r}: {exc}") from None
        return cls(**values)


@dataclass(frozen=True, slots=True)
class SentMessage:
    """A queue message this invocation sent: id, events in it, visibility delay (s)."""

    message_id: str
    count: int
    delay: int


@dataclass(slots=True)
class Report:
    """What one invocation did: counters, the messages sent in send order, and what the
    function's metrics break down (``transport.telemetry``): the events sent per cluster,
    each sent event's lag (seconds from its stageTimestamp to its message's send) and the
    dead letters per reason."""

    counts: Counter[str] = field(default_factory=Counter)
    sent: list[SentMessage] = field(default_factory=list)
    elapsed_s: float = 0.0
    clusters: Counter[str] = field(default_factory=Counter)
    lags_s: list[float] = field(default_factory=list)
    dead_letter_reasons: Counter[str] = field(default_factory=Counter)

    @property
    def delays(self) -> list[int]:
        return [message.delay for message in self.sent]

    def line(self) -> str:
        """The one summary log line: every non-zero counter, then timing."""
        parts = [f"{key}={value}" for key, value in sorted(self.counts.items()) if value]
        parts.append(f"max_delay_s={max(self.delays, default=0)}")
        parts.append(f"ms={self.elapsed_s * 1000:.1f}")
        return " ".join(parts)


class Ingestor:
    """Long-lived state of one worker process: storage clients, the token bucket and the
    cross-batch dedupe window. Thread-safe: the Python worker may run invocations for
    several partitions at once."""

    def __init__(
        self,
        settings: IngestSettings,
        *,
        queue: QueueClient,
        deadletter: QueueClient,
        claims: ContainerClient,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.queue = queue
        self.deadletter = deadletter
        self.claims = claims
        rate = settings.rate_limit_events_per_second
        self.bucket = TokenBucket(rate, settings.rate_limit_burst, clock) if rate > 0 else None
        self.deduper = Deduper(settings.dedupe_window)
        self.wall_clock = wall_clock
        self._lock = threading.Lock()
        self._pool = concurrent.futures.ThreadPoolExecutor(
            SEND_CONCURRENCY, thread_name_prefix="ingest-send")

    @classmethod
    def from_settings(cls, settings: IngestSettings) -> Ingestor:
        """Clients from a connection string (Azurite, local: queues and container are
        created when missing) or account URLs with DefaultAzureCredential (Azure: the
        infrastructure creates them, the identity only sends)."""
        clients = pipeline_clients(
            settings,
            queue_options={"retry_policy": _retry(QueueRetry, settings.storage_retry_total)},
            blob_options={"retry_policy": _retry(BlobRetry, settings.storage_retry_total)},
        )
        ingestor = cls(settings, queue=clients.queue, deadletter=clients.deadletter,
                       claims=clients.claims)
        if settings.queue_connection_string:
            ingestor.ensure_resources()
        return ingestor

    def ensure_resources(self) -> None:
        """Create the queues and the claim-check container when missing."""
        for create in (self.queue.create_queue, self.deadletter.create_queue,
                       self.claims.create_container):
            with contextlib.suppress(ResourceExistsError):
                create()

    def ingest(self, bodies: Sequence[bytes], report: Report | None = None) -> Report:
        """Process one Event Hub batch; raise only when storage failed (the host retries).

        Bad data costs only its own item (a dead letter), never the batch. A failure that is
        neither the data's nor the storage's (a bug) dead-letters the batch's bodies rather
        than blocking the partition behind a batch that would fail forever.

        `report`, when given, is filled in place: the caller sees the counters of a failed
        invocation too."""
        started = time.perf_counter()
        report = Report() if report is None else report
        report.counts[BODIES] = len(bodies)
        try:
            try:
                self._ingest(bodies, report)
            except Exception as exc:
                if is_storage_failure(exc):
                    raise
                self._dead_letter_bodies(bodies, exc, report)
        except BaseException:
            report.counts[FAILED] += 1
            # This batch's keys are in the window: its retry would be dropped as duplicates.
            # A fresh window costs only some extra duplicates, which the reader absorbs.
            with self._lock:
                self.deduper = Deduper(self.settings.dedupe_window)
            self._finish(report, started)
            log.error("ingest failed, the host retries the batch: %s", report.line())
            raise
        self._finish(report, started)
        log.info("ingest ok: %s", report.line())
        return report

    def _ingest(self, bodies: Sequence[bytes], report: Report) -> None:
        counts = report.counts
        with self._lock:
            batch = parse_documents(
                bodies, categories=self.settings.categories, deduper=self.deduper,
                max_event_bytes=DEFAULT_LIMITS.max_event_bytes)
            events = self._shed(batch.events, counts)
            messages = pack(events)
            delays = [self._delay(message.count, counts) for message in messages]
            tokens = len(events)  # what _shed granted or _delay reserved, with a bucket
        counts.update(batch.counts)
        try:
            self._send_all(messages, delays, events, batch.drops, report)
        except BaseException:
            # The host retries the batch, which takes its tokens again: give them back, or
            # every failed attempt during an outage would add to the debt (and the delays)
            # of everything sent after it.
            if self.bucket is not None and tokens:
                with self._lock:
                    self.bucket.refund(tokens)
            raise

    def _send_all(self, messages: list[OutgoingMessage], delays: list[int],
                  events: Sequence[AuditEvent], drops: Sequence[Drop], report: Report) -> None:
        """Messages and dead letters are independent: send them concurrently, wait for all,
        then raise the first failure. Counters are updated here, on one thread. ``pack``
        keeps order, so each message holds the next ``count`` of ``events``."""
        counts = report.counts
        sends = [self._pool.submit(self._send, m, d) for m, d in zip(messages, delays,
                                                                      strict=True)]
        lettered = [drop for drop in drops if drop.raw is not None]
        letters = [self._pool.submit(self._dead_letter, drop) for drop in lettered]
        pending: list[concurrent.futures.Future[Any]] = [*sends, *letters]
        concurrent.futures.wait(pending)
        sent_at = self.wall_clock()
        storage_failure: BaseException | None = None
        first = 0
        for message, future in zip(messages, sends, strict=True):
            contents, first = events[first:first + message.count], first + message.count
            if (exc := future.exception()) is None:
                sent, claim_checked = future.result()
                report.sent.append(sent)
                counts[MESSAGES] += 1
                counts[SENT] += sent.count
                counts[CLAIM_CHECKS] += claim_checked
                for event in contents:
                    report.clusters[event.cluster or UNKNOWN_CLUSTER] += 1
                    report.lags_s.append(sent_at - event.timestamp_ns / 1e9)
            elif is_storage_failure(exc):
                storage_failure = storage_failure or exc
            else:  # the service refused this message's content: it alone is lost to Falco
                log.error("queue message %s (%d events) refused, dead-lettered: %s",
                          message.message_id, message.count, describe(exc))
                counts[REFUSED] += message.count
                self._dead_letter_now(Drop(Reason.INTERNAL_ERROR, describe(exc),
                                           message.text.encode("ascii")), report)
        for drop, letter in zip(lettered, letters, strict=True):
            if (exc := letter.exception()) is None:
                counts[DEAD_LETTER_CLAIM_CHECKS] += letter.result()
                counts[DEAD_LETTERED] += 1
                report.dead_letter_reasons[drop.reason] += 1
            elif is_storage_failure(exc):
                storage_failure = storage_failure or exc
            else:
                counts[DEAD_LETTER_REFUSED] += 1
                log.error("dead letter refused by the queue: %s", describe(exc))
        if storage_failure is not None:
            raise storage_failure

    def _dead_letter_now(self, drop: Drop, report: Report) -> None:
        """One dead letter from this thread; a storage failure propagates (host retry)."""
        report.counts[DEAD_LETTER_CLAIM_CHECKS] += self._dead_letter(drop)
        report.counts[DEAD_LETTERED] += 1
        report.dead_letter_reasons[drop.reason] += 1

    def _dead_letter_bodies(self, bodies: Sequence[bytes], exc: Exception,
                            report: Report) -> None:
        log.exception("ingest: unexpected %s, the batch's %d bodies go to the dead-letter "
                      "queue", describe(exc), len(bodies))
        report.counts[Reason.INTERNAL_ERROR] += len(bodies)
        for body in bodies:
            self._dead_letter_now(Drop(Reason.INTERNAL_ERROR, describe(exc), body), report)

    def _shed(self, events: list[AuditEvent], counts: Counter[str]) -> list[AuditEvent]:
        if self.bucket is None or self.settings.rate_limit_policy is not RatePolicy.SHED:
            return events
        granted = self.bucket.grant(len(events))
        shed = events[granted:]
        if shed:
            counts[SHED] += len(shed)
            log.warning("rate limit: shed %d audit events (RATE_LIMIT_POLICY=shed), first: %s",
                        len(shed), ", ".join(f"{e.audit_id}/{e.stage}"
                                             for e in shed[:_SHED_LOG_IDS]))
        return events[:granted]

    def _delay(self, count: int, counts: Counter[str]) -> int:
        """Whole seconds until ``count`` tokens are paid (rounded up: never early)."""
        if self.bucket is None or self.settings.rate_limit_policy is not RatePolicy.DEFER:
            return 0
        delay = math.ceil(self.bucket.reserve(count))
        if delay > 0:
            counts[DEFERRED] += count
        if delay > MAX_VISIBILITY_S:
            counts[DEFER_CAPPED] += count
            delay = MAX_VISIBILITY_S
        return delay

    def _send(self, message: OutgoingMessage, delay: int) -> tuple[SentMessage, bool]:
        """Upload the claim-check blob, if any, then send the message that names it."""
        if message.blob is not None:
            name, data = message.blob
            self.claims.upload_blob(name, data, overwrite=True)
        self.queue.send_message(message.text, visibility_timeout=delay or None,
                                time_to_live=NO_EXPIRY)
        return SentMessage(message.message_id, message.count, delay), message.blob is not None

    def _dead_letter(self, drop: Drop) -> bool:
        """Send one dead letter; True when its record went to a claim-check blob."""
        letter = DeadLetter("ingest", str(drop.reason), drop.detail, drop.raw or b"")
        return send_dead_letter(self.deadletter, self.claims, letter)

    def _finish(self, report: Report, started: float) -> None:
        report.elapsed_s = time.perf_counter() - started


def _retry(policy: type, total: int) -> Any:
    """Short in-process retries: a longer outage is the host's retry policy's job, which
    keeps the partition's checkpoint where it is."""
    return policy(initial_backoff=1, increment_base=2, retry_total=total, random_jitter_range=1)
