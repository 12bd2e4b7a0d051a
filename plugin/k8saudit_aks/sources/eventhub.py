"""Read AKS diagnostic logs straight from the Event Hub: the Go k8saudit-aks plugin's mode.

Three threads share an instance:

- `receiver` runs `EventHubConsumerClient.receive_batch`, the SDK's event processor
  (partition ownership and checkpoints in the blob container). Its callback turns each Event
  Hub message into audit events with `extractor.envelope.normalize` (the ingest function's
  normalization) and posts it to the `Mailbox` (`mailbox.py`, shared with the queue
  source). A full mailbox blocks the callback: backpressure, nothing dropped. A malformed
  message becomes a message with no events (skipped and counted); its partition goes on.
- Falco's thread runs `next_batch` and never touches the network: it hands over queued
  events within the token bucket (`handover.py`, shared with the other sources), or raises
  `Timeout` when none is ready.
- `housekeeper` writes checkpoints, logs an error line at least every 30 s while the hub is
  unreachable (`backoff.py`, shared with the queue source), and the periodic stats line.

Checkpoint protocol: a message is *handed* when the last of its events went out in a batch.
Falco calls `next_batch` again only after consuming the previous batch, so each call first
returns the messages handed in the previous call to the mailbox as *consumed*; the
housekeeper takes them and, for each partition, calls `update_checkpoint` with the newest
(one blob metadata write; the store's clients may be used from any thread). A checkpoint never
passes an event Falco has not consumed. After a crash the undelivered tail is read again:
at-least-once, and the dedupe window absorbs what it still remembers.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from azure.eventhub import EventData, EventHubConsumerClient, PartitionContext
from azure.eventhub.extensions.checkpointstoreblob import BlobCheckpointStore

from extractor.envelope.normalize import AuditEvent, parse_documents
from extractor.message.deadletter import DeadLetter
from extractor.policy.chain import Chain
from extractor.policy.ratelimit import TokenBucket
from extractor.safe_text import describe_redacted, redact
from plugin.k8saudit_aks.config import GO_PLUGIN_RATE, Common, EventHubMode
from plugin.k8saudit_aks.sources.backoff import FIRST_DELAY_S, MAX_DELAY_S, Backoff
from plugin.k8saudit_aks.sources.handover import Handover
from plugin.k8saudit_aks.sources.mailbox import Mailbox
from plugin.k8saudit_aks.stats import Source, Stats
from plugin.sdk import Event, PluginError
from transport.clients import container_client, default_credential
from transport.deadletter import store_dead_letter
from transport.errors import is_storage_failure

log = logging.getLogger("k8saudit-aks.eventhub")

MAX_BUFFERED_BYTES = 4 * 1024 * 1024  # events parsed ahead of Falco
PREFETCH = 64                # messages the AMQP link buffers per partition
MESSAGES_PER_CALLBACK = 16
RECEIVE_WAIT_S = 5.0         # an idle owned partition still calls back this often
LOAD_BALANCING_S = 10.0      # partition claim/renew cadence; ownership expires after 6x
CHECKPOINT_EVERY_S = 5.0
ERROR_LINE_EVERY_S = 30.0    # while unreachable: one error line at least this often
TICK_S = 0.2                 # housekeeper cadence, and the longest a blocked put waits
BACKOFF_S = (FIRST_DELAY_S, MAX_DELAY_S)  # pause after the first failure, doubling to
BACKOFF_JITTER = 0.2         # readers of one hub do not reconnect in step
START_LOOKBACK_S = 60.0      # no checkpoint yet: start this long before open (clock skew)
IDLE_NAP_S = 0.05
SDK_RETRIES = 2              # the SDK's own quick retries (0.8 s, 1.6 s) before on_error
CLOSE_TIMEOUT_S = 10.0


@dataclass(eq=False, slots=True)
class _Message:
    """One Event Hub message between the receive callback and its checkpoint."""

    partition: PartitionContext
    event: EventData         # what update_checkpoint records (offset, sequence number)


def body_bytes(event: EventData) -> bytes:
    """An Event Hub message body as bytes (a data body may come in several sections)."""
    body = event.body
    if isinstance(body, (bytes, bytearray)):
        return bytes(body)
    if isinstance(body, str):
        return body.encode()
    try:  # a data body: an iterable of sections
        sections: Any = body  # typed as one value; a data body iterates its sections
        return b"".join(bytes(section) for section in sections)
    except TypeError:
        return event.body_as_str(encoding="utf-8").encode()


def _body_or_empty(event: EventData) -> bytes:
    """The body, or b"" for an AMQP body that cannot be read (it then counts as not_json)."""
    try:
        return body_bytes(event)
    except Exception as exc:
        log.warning("unreadable Event Hub message body (sequence %s): %s",
                    event.sequence_number, describe_redacted(exc))
        return b""


def build_client(mode: EventHubMode, store: BlobCheckpointStore) -> EventHubConsumerClient:
    """The consumer client, from a connection string or the namespace + Azure identity.
    Builds only: no network call happens before `receive_batch`."""
    options: dict[str, Any] = {"checkpoint_store": store, "retry_total": SDK_RETRIES,
                               "load_balancing_interval": LOAD_BALANCING_S}
    if mode.event_hub_namespace_connection_string:
        try:
            return EventHubConsumerClient.from_connection_string(
                mode.event_hub_namespace_connection_string, mode.consumer_group,
                eventhub_name=mode.event_hub_name, **options,
            )
        except ValueError as exc:
            raise PluginError("init_config.event_hub_namespace_connection_string: "
                              f"{redact(str(exc))}") from None
    return EventHubConsumerClient(
        mode.event_hub_fully_qualified_namespace or "", mode.event_hub_name, mode.consumer_group,
        credential=default_credential(), **options,
    )


def build_store(mode: EventHubMode) -> BlobCheckpointStore:
    container = mode.blob_storage_container_name
    try:
        if mode.blob_storage_connection_string:
            return BlobCheckpointStore.from_connection_string(
                mode.blob_storage_connection_string, container)
        return BlobCheckpointStore(mode.blob_storage_account_url or "", container,
                                   credential=default_credential())
    except ValueError as exc:
        key = ("blob_storage_connection_string" if mode.blob_storage_connection_string
               else "blob_storage_account_url")
        raise PluginError(f"init_config.{key}: {redact(str(exc))}") from None


class _Checkpoints:
    """The newest delivered message per partition, until the housekeeper writes it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()       # _due
        self._writing = threading.Lock()    # one flush at a time, so none moves back
        self._due: dict[str, tuple[PartitionContext, EventData]] = {}
        self._written: dict[str, int] = {}

    def offer(self, partition: PartitionContext, event: EventData) -> None:
        with self._lock:
            self._due[partition.partition_id] = (partition, event)

    def flush(self) -> int:
        """Write what is due; return how many checkpoints were written. A failed write
        stays due (unless a newer one arrived) and the error propagates."""
        with self._writing:
            return self._flush()

    def _flush(self) -> int:
        with self._lock:
            due, self._due = list(self._due.items()), {}
        written = 0
        for i, (pid, (partition, event)) in enumerate(due):
            seq = event.sequence_number if event.sequence_number is not None else -1
            if self._written.get(pid, -2) >= seq:
                continue  # never move a checkpoint back (e.g. after a partition restart)
            try:
                partition.update_checkpoint(event)
            except Exception:
                with self._lock:
                    for later_pid, item in due[i:]:
                        self._due.setdefault(later_pid, item)
                raise
            self._written[pid] = seq
            written += 1
        return written


class _NappingDict(dict):
    """The sync `EventProcessor.start` loop (azure-eventhub 5.x) iterates its consumers
    without a pause; with no partition claimed (hub unreachable, or every partition owned
    by another reader) it spins a core and competes with Falco's thread for the GIL. This
    dict, swapped in for `_consumers`, naps in `items()` while empty."""

    def items(self):
        if not self:
            time.sleep(IDLE_NAP_S)
        return super().items()


def quiet_processor_warnings() -> None:
    """The event processor's per-error warnings duplicate our lines (the `azure` logger's
    level is set in plugin.py)."""
    processor = logging.getLogger("azure.eventhub._eventprocessor")
    if processor.level == logging.NOTSET:
        processor.setLevel(logging.ERROR)


class EventHubInstance(Source):
    def __init__(
        self, mode: EventHubMode, common: Common, cluster: str | None = None, *,
        connect: Callable[[EventHubMode, BlobCheckpointStore], EventHubConsumerClient]
        = build_client,
    ) -> None:
        quiet_processor_warnings()
        self.mode, self.common, self.cluster = mode, common, cluster
        self.where = f"{mode.event_hub_name} (consumer group {mode.consumer_group})"
        self.store = build_store(mode)
        self.letters = container_client(  # dead letters: blobs beside the checkpoints
            mode.blob_storage_container_name,
            connection_string=mode.blob_storage_connection_string,
            account_url=mode.blob_storage_account_url)
        self.client = connect(mode, self.store)
        self.stats = Stats(f"eventhub:{mode.event_hub_name}", common.stats_interval_seconds)
        for key in ("messages", "received", "delivered", "deduplicated", "checkpoints",
                    "errors"):
            self.stats.add(key, 0)  # the stats line shows them from the start
        self.handover: Handover[_Message] = Handover(
            bucket=TokenBucket(common.rate_limit_events_per_second or GO_PLUGIN_RATE,
                               common.rate_limit_burst))
        self.chain = Chain(common.max_event_size, common.dedupe_window, cluster)
        self.checkpoints = _Checkpoints()
        self.start_at = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=START_LOOKBACK_S)
        self.mailbox: Mailbox[_Message] = Mailbox(MAX_BUFFERED_BYTES)
        self._closed = threading.Event()
        first_s, max_s = BACKOFF_S
        self.backoff = Backoff(log, first_s, max_s, ERROR_LINE_EVERY_S,
                               name=f"Event Hub {self.where}", context=self._since_receive,
                               jitter=BACKOFF_JITTER)
        self._last_silence_line = float("-inf")
        self._threads = [
            threading.Thread(target=self._receive_forever, name="eventhub-receiver",
                             daemon=True),
            threading.Thread(target=self._housekeep, name="eventhub-housekeeper",
                             daemon=True),
        ]
        for thread in self._threads:
            thread.start()
        log.info("reading Event Hub %s, checkpoints in container %s", self.where,
                 mode.blob_storage_container_name)

    # -- Falco's thread ----------------------------------------------------------------

    def next_batch(self) -> Sequence[Event]:
        self.mailbox.consumed(self.handover.acknowledge())  # Falco consumed the last batch
        self._take_ready()
        return self.handover.falco_batch(self._take_ready, self.stats)

    def _take_ready(self, timeout: float = 0.0) -> None:
        """Move parsed messages to the hand-over, waiting up to `timeout` for the first."""
        for message, events in self.mailbox.take(timeout):
            self.handover.add(message, events)

    # -- receiver thread -----------------------------------------------------------------

    def _receive_forever(self) -> None:
        while not self._closed.is_set():
            self._ensure_container()
            try:
                self.client.receive_batch(
                    on_event_batch=self._on_batch, on_error=self._on_error,
                    on_partition_initialize=self._on_claimed,
                    on_partition_close=self._on_released,
                    max_batch_size=MESSAGES_PER_CALLBACK, max_wait_time=RECEIVE_WAIT_S,
                    prefetch=PREFETCH, starting_position=self.start_at,
                )
                if self._closed.is_set():
                    return
                raise RuntimeError("receive_batch returned")
            except Exception as exc:
                if self._closed.is_set():
                    return
                self._closed.wait(self._failed("receive", exc))

    def _ensure_container(self) -> None:
        """Create the checkpoint container if missing (the Bicep does; Azurite does not).
        Best effort: lacking the right to create is fine when it exists."""
        mode = self.mode
        try:
            container_client(mode.blob_storage_container_name,
                             connection_string=mode.blob_storage_connection_string,
                             account_url=mode.blob_storage_account_url).create_container()
        except Exception as exc:
            log.debug("checkpoint container not created: %s", redact(str(exc))[:200])

    def _on_batch(self, partition: PartitionContext, batch: list[EventData]) -> None:
        self._contact()
        for event in batch:
            try:
                message, events = self._parse(partition, event)
            except Exception as exc:  # a bug, not the data: this message alone pays
                log.exception("partition %s: unexpected error parsing a message",
                              partition.partition_id)
                self._dead_letter(DeadLetter("plugin", "internal_error", describe_redacted(exc),
                                             _body_or_empty(event)))
                message, events = _Message(partition, event), []
            while not self.mailbox.wait_for_room(TICK_S):  # Falco is behind: the partition
                if self._closed.is_set():                  # waits with us
                    return
                self._contact()
            self.mailbox.post(message, events)

    def _parse(self, partition: PartitionContext, event: EventData
               ) -> tuple[_Message, list[AuditEvent]]:
        batch = self.chain.admit(parse_documents(
            [_body_or_empty(event)], categories=self.common.accepted_categories))
        where = f"partition {partition.partition_id} seq {event.sequence_number}"
        self.stats.add("messages")
        self.stats.parsed(batch, where)
        for drop in batch.drops:  # before the message can be checkpointed
            if drop.raw is not None:
                self._dead_letter(DeadLetter("plugin", str(drop.reason),
                                             f"{where}: {drop.detail}", drop.raw))
        return _Message(partition, event), batch.events

    def _dead_letter(self, letter: DeadLetter) -> None:
        """Store one dead letter, retrying storage failures while open: the partition
        waits (nothing is checkpointed past an item that was not recorded)."""
        while not self._closed.is_set():
            try:
                name = store_dead_letter(self.letters, letter)
            except Exception as exc:
                if is_storage_failure(exc):
                    self._closed.wait(self._failed("dead letter", exc))
                    continue
                log.error("dead letter %s (%s) refused: %s", letter.id, letter.reason,
                          describe_redacted(exc))
                name = ""
            self.stats.add(f"dead_lettered.{letter.reason}" if name
                           else "dead_letter_refused")
            return

    def _on_error(self, partition: PartitionContext | None, error: Exception) -> None:
        where = f"partition {partition.partition_id}" if partition else "load balancing"
        pause = self._failed(where, error)
        if partition is not None:  # the receive loop's thread: pace the reconnect
            self._closed.wait(pause)

    def _on_claimed(self, partition: PartitionContext) -> None:
        log.info("claimed partition %s of %s", partition.partition_id, self.where)

    def _on_released(self, partition: PartitionContext, reason: Any) -> None:
        log.info("released partition %s of %s (%s)", partition.partition_id, self.where,
                 getattr(reason, "name", reason))

    def _contact(self) -> None:
        """The hub answered (a callback, even an empty one)."""
        self.backoff.succeeded()

    def _failed(self, where: str, error: BaseException) -> float:
        """Count and log a failure; return the pause before the next attempt."""
        self.stats.add("errors")
        return self.backoff.failed(where, error)

    def _since_receive(self) -> str:
        return f"{time.monotonic() - self.stats.last_receive:.0f} s since last receive"

    # -- housekeeper thread ------------------------------------------------------------

    def _housekeep(self) -> None:
        next_checkpoint = time.monotonic() + CHECKPOINT_EVERY_S
        while not self._closed.wait(TICK_S):
            self._throttle_idle_loop()
            now = time.monotonic()
            if now >= next_checkpoint:
                next_checkpoint = now + CHECKPOINT_EVERY_S
                self.flush_checkpoints()
            self._health(now)
            self.stats.maybe_report()

    def flush_checkpoints(self) -> int:
        for message in self.mailbox.take_consumed():
            self.checkpoints.offer(message.partition, message.event)
        try:
            written = self.checkpoints.flush()
        except Exception as exc:
            self._failed("checkpoint", exc)
            return 0
        if written:
            self.stats.add("checkpoints", written)
        return written

    def _health(self, now: float) -> None:
        """While failing, the backoff's error line at least every ERROR_LINE_EVERY_S; also
        when nothing fails but no partition has called back for that long."""
        if self.backoff.failing:
            self.backoff.still_failing()
            return
        silent = now - self.backoff.last_success
        if silent < ERROR_LINE_EVERY_S or now - self._last_silence_line < ERROR_LINE_EVERY_S:
            return
        self._last_silence_line = now
        log.error("Event Hub %s: no partition has answered for %.0f s (all owned by other "
                  "readers of this consumer group?); %s", self.where, silent,
                  self._since_receive())

    def _throttle_idle_loop(self) -> None:
        processors = getattr(self.client, "_event_processors", None) or {}
        for processor in list(processors.values()):
            consumers, lock = getattr(processor, "_consumers", None), getattr(
                processor, "_lock", None)
            if type(consumers) is dict and lock is not None:
                with lock:
                    processor._consumers = _NappingDict(processor._consumers)

    # -- close ---------------------------------------------------------------------------

    def _close_client(self) -> None:
        try:
            self.client.close()  # stops the event processor: receive_batch returns
        except Exception as exc:
            log.warning("closing the Event Hub client: %s", redact(str(exc))[:300])

    def close(self) -> None:
        """Stop receiving, then checkpoint what Falco consumed. The last batch handed over
        is not counted as consumed (Falco may stop mid-batch): it is read again next time."""
        self._closed.set()
        self._close_client()
        deadline = time.monotonic() + CLOSE_TIMEOUT_S
        for thread in self._threads:
            while thread.is_alive() and time.monotonic() < deadline:
                thread.join(TICK_S)
                if thread.is_alive():  # a receive_batch that began after the first close
                    self._close_client()
        self.flush_checkpoints()
        try:
            self.store.close()
        except Exception:
            log.debug("closing the checkpoint store failed", exc_info=True)
        log.info("%s", self.stats.line())
