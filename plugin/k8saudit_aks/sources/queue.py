"""Drain the Storage Queue the ingest function fills: at-least-once, nothing dropped.

Two halves meet in a `Mailbox` (design and trade-offs: docs/queue-source.md):

- Falco's thread runs `QueueInstance.next_batch`. It never touches the network: it takes
  the decoded messages from the mailbox, hands their events to Falco through the
  `Handover` (rate limited), and returns the messages whose every event went
  out in an earlier batch (Falco calling again means it consumed that batch).
- The `StorageWorker` (`queue_worker.py`) does every Azure call: receive, decode,
  claim-check fetch, visibility extension, delete, dead-letter. A failed call pauses it
  (exponential backoff) while `next_batch` keeps answering Timeout within `POLL_WAIT_S`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from azure.storage.blob import ContainerClient
from azure.storage.queue import QueueClient

from extractor.policy.ratelimit import TokenBucket
from plugin.k8saudit_aks.config import Common, QueueMode
from plugin.k8saudit_aks.sources.handover import Handover
from plugin.k8saudit_aks.sources.mailbox import Mailbox
from plugin.k8saudit_aks.sources.queue_worker import Held, StorageWorker
from plugin.k8saudit_aks.stats import Source, Stats
from plugin.sdk import Event, PluginError

log = logging.getLogger("k8saudit-aks.queue")

# Read-ahead: what a crashed Falco gets again (duplicates) and what the buffer holds in
# memory. One poll ahead keeps Falco busy while the next receive is in flight.
MAX_BUFFERED_BYTES = 4 * 1024 * 1024
CLOSE_TIMEOUT_S = 5.0                # close() waits this long for the last deletes
# Client calls fail fast; retries are the worker's (Backoff), so they are paced and logged.
CLIENT_OPTIONS: dict[str, Any] = {"retry_total": 0, "connection_timeout": 5,
                                  "read_timeout": 20}


class QueueInstance(Source):
    def __init__(self, mode: QueueMode, common: Common, cluster: str | None = None,
                 *, clients: tuple[QueueClient, QueueClient, ContainerClient] | None = None
                 ) -> None:
        queue, deadletter, claims = clients or _clients(mode)
        self.stats = Stats(f"queue:{queue.account_name}/{mode.queue_name}",
                           common.stats_interval_seconds)
        self.handover: Handover[Held] = Handover(
            bucket=(TokenBucket(common.rate_limit_events_per_second, common.rate_limit_burst)
                    if common.rate_limit_events_per_second else None))
        self.mailbox: Mailbox[Held] = Mailbox(MAX_BUFFERED_BYTES)
        self.worker = StorageWorker(mode, common, cluster,
                                    (queue, deadletter, claims), self.mailbox, self.stats)
        self._closed = False
        log.info("draining queue %s of account %s (visibility %d s, %d messages a poll, %s)",
                 mode.queue_name, queue.account_name, mode.visibility_timeout_seconds,
                 mode.max_messages_per_poll,
                 f"rate limit {common.rate_limit_events_per_second:g}/s burst "
                 f"{common.rate_limit_burst}" if common.rate_limit_events_per_second
                 else "no rate limit")
        self.worker.start()

    def next_batch(self) -> Sequence[Event]:
        self.stats.maybe_report()
        if not self.worker.is_alive():
            raise PluginError("queue source: the storage worker stopped unexpectedly "
                              f"(last error: {self.worker.backoff.last_error or 'none'})")
        self.mailbox.consumed(self.handover.acknowledge())
        self._take_ready()
        return self.handover.falco_batch(self._take_ready, self.stats)

    def _take_ready(self, timeout: float = 0.0) -> None:
        """Move what the worker decoded to the hand-over, in message order, waiting up to
        `timeout` for the first."""
        for held, events in self.mailbox.take(timeout):
            self.handover.add(held, events)

    def close(self) -> None:
        """Delete what Falco consumed; the rest reappears after its visibility timeout.

        The last batch handed over does not count as consumed: Falco may stop mid-batch
        (SIGTERM, hot reload), or the batch never reached it (the SDK failed after
        next_batch returned). Its messages are read again; the dedupe window absorbs what
        it still remembers."""
        if self._closed:
            return
        self._closed = True
        self.mailbox.consumed(self.handover.unconsumed_at_close())
        left = self.worker.stop(CLOSE_TIMEOUT_S)
        if left:
            log.warning("closing with %d consumed messages not deleted (%s); they reappear "
                        "after their visibility timeout and are delivered again", left,
                        self.worker.backoff.last_error or "storage too slow")
        log.info("%s", self.stats.line())


def _clients(mode: QueueMode) -> tuple[QueueClient, QueueClient, ContainerClient]:
    """Source queue, dead-letter queue, claim-check container: fail fast, no SDK retries."""
    from transport.clients import pipeline_clients

    return pipeline_clients(mode, queue_options=CLIENT_OPTIONS, blob_options=CLIENT_OPTIONS)
