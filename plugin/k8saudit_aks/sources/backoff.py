"""Retry pacing and outage logging for a source's Azure calls.

One `Backoff` per source (the queue source's worker, the Event Hub source's receiver and
housekeeper): every failed call doubles the pause (0.5 s up to 30 s, optionally jittered),
every success resets it. While calls keep failing an error line is logged at the first
failure and then at least every `log_every_s`, each naming the seconds since the last
success, so an outage is never a silent stall. Exception texts pass through `redact`
first. Thread-safe.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable

from extractor.safe_text import describe_redacted

FIRST_DELAY_S = 0.5
MAX_DELAY_S = 30.0
LOG_EVERY_S = 10.0


class Backoff:
    """`name` (say "Event Hub x") makes the lines read "x unreachable: …" and "x reachable
    again", else "…" and "storage reachable again"; `context` adds a clause of its own to
    each error line; `jitter` spreads each pause by up to ± that fraction."""

    def __init__(self, log: logging.Logger, first_s: float = FIRST_DELAY_S,
                 max_s: float = MAX_DELAY_S, log_every_s: float = LOG_EVERY_S,
                 clock: Callable[[], float] = time.monotonic, *, name: str | None = None,
                 context: Callable[[], str] | None = None, jitter: float = 0.0) -> None:
        self.log = log
        self.first_s, self.max_s, self.log_every_s = first_s, max_s, log_every_s
        self.clock = clock
        self.name, self.context, self.jitter = name, context, jitter
        self.delay = 0.0
        self.failures = 0
        self.retry_at = 0.0
        self.last_success = clock()
        self.last_error = ""
        self._last_log = 0.0
        self._lock = threading.Lock()

    @property
    def failing(self) -> bool:
        return self.failures > 0

    def remaining(self) -> float:
        """Seconds until the next attempt is due (0 when it is)."""
        return max(0.0, self.retry_at - self.clock())

    def failed(self, what: str, exc: BaseException) -> float:
        """Record a failed call; return the pause before the next attempt."""
        with self._lock:
            now = self.clock()
            self.failures += 1
            self.delay = (self.first_s if self.failures == 1
                          else min(self.max_s, self.delay * 2))
            pause = self.delay
            if self.jitter:
                pause *= random.uniform(1 - self.jitter, 1 + self.jitter)
            self.retry_at = now + pause
            self.last_error = f"{what}: {describe_redacted(exc)}"
            if self.failures == 1 or now - self._last_log >= self.log_every_s:
                self._log(now)
            return pause

    def still_failing(self) -> None:
        """Call while waiting out a pause: logs again when the last line is old enough."""
        with self._lock:
            now = self.clock()
            if self.failing and now - self._last_log >= self.log_every_s:
                self._log(now)

    def succeeded(self) -> None:
        with self._lock:
            now = self.clock()
            if self.failing:
                self.log.warning("%s reachable again after %.0f s (%d failed attempts)",
                                 self.name or "storage", now - self.last_success,
                                 self.failures)
            self.failures = 0
            self.delay = 0.0
            self.retry_at = 0.0
            self.last_success = now

    def _log(self, now: float) -> None:
        self._last_log = now
        prefix = f"{self.name} unreachable: " if self.name else ""
        extra = f"; {self.context()}" if self.context else ""
        self.log.error("%s%s; %.0f s since last success, %d failed attempts, retrying in "
                       "%.1f s%s", prefix, self.last_error, now - self.last_success,
                       self.failures, max(0.0, self.retry_at - now), extra)
