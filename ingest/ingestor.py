"""The I/O of one ingest invocation: Event Hub bodies in, queue messages and dead letters out.

``function_app.py`` calls :meth:`Ingestor.ingest` with the bodies of one Event Hub batch. It
parses them (``extractor.envelope``), puts them through the policy chain
(``extractor.policy.chain``), rate-limits, packs (``extractor.message``), uploads
claim-check blobs before the messages that name them, sends, dead-letters the drops that
carry their raw record, and logs one summary line. Any storage failure propagates: the
Functions host then retries the batch (infinite retry policy) instead of checkpointing past
it. A retry re-sends what was already sent, so delivery is at-least-once; the reader's
chain dedupes on (cluster, auditID, stage). Settings, counters and the dead-letter format:
``docs/ingest-function.md``.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import logging
import math
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from azure.core.exceptions import ResourceExistsError
from azure.storage.blob import ContainerClient
from azure.storage.blob import ExponentialRetry as BlobRetry
from azure.storage.queue import ExponentialRetry as QueueRetry
from azure.storage.queue import QueueClient

from extractor.envelope.normalize import (
    AuditEvent,
    Drop,
    Reason,
    parse_documents,
)
from extractor.message.codec import DEFAULT_LIMITS, OutgoingMessage, pack
from extractor.message.deadletter import DeadLetter
from extractor.policy.chain import Chain
from extractor.policy.ratelimit import TokenBucket
from extractor.safe_text import describe_redacted
from ingest.report import (
    BODIES,
    CLAIM_CHECKS,
    DEAD_LETTER_CLAIM_CHECKS,
    DEAD_LETTER_REFUSED,
    DEAD_LETTERED,
    DEFER_CAPPED,
    DEFERRED,
    FAILED,
    MESSAGES,
    REFUSED,
    SENT,
    SHED,
    UNKNOWN_CLUSTER,
    Report,
    SentMessage,
)
from ingest.settings import IngestSettings, RatePolicy
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


class Ingestor:
    """Long-lived state of one worker process: storage clients, the token bucket and the
    policy chain (its dedupe window spans batches). Thread-safe: the Python worker may run
    invocations for several partitions at once."""

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
        self.chain = Chain(DEFAULT_LIMITS.max_event_bytes, settings.dedupe_window)
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
            self.chain.forget()
            self._finish(report, started)
            log.error("ingest failed, the host retries the batch: %s", report.line())
            raise
        self._finish(report, started)
        log.info("ingest ok: %s", report.line())
        return report

    def _ingest(self, bodies: Sequence[bytes], report: Report) -> None:
        counts = report.counts
        with self._lock:
            batch = self.chain.admit(
                parse_documents(bodies, categories=self.settings.categories))
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
                          message.message_id, message.count, describe_redacted(exc))
                counts[REFUSED] += message.count
                self._dead_letter_now(Drop(Reason.INTERNAL_ERROR, describe_redacted(exc),
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
                log.error("dead letter refused by the queue: %s", describe_redacted(exc))
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
                      "queue", describe_redacted(exc), len(bodies))
        report.counts[Reason.INTERNAL_ERROR] += len(bodies)
        for body in bodies:
            self._dead_letter_now(Drop(Reason.INTERNAL_ERROR, describe_redacted(exc), body), report)

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
