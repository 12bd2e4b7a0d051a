"""Retry pacing and outage logging for a source's Azure calls.

One `Backoff` per source: every failed call doubles the pause (0.5 s up to 30 s), every
success resets it. While calls keep failing an error line is logged at the first failure
and then at least every `log_every_s`, each naming the seconds since the last success, so
an outage is never a silent stall. Exception texts pass through `redact` first.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from plugin.k8saudit_aks.redact import redact

FIRST_DELAY_S = 0.5
MAX_DELAY_S = 30.0
LOG_EVERY_S = 10.0


def describe(exc: BaseException, limit: int = 300) -> str:
    """One redacted line for a log: `Type: first line of the message`."""
    lines = str(exc).strip().splitlines()
    text = f"{type(exc).__name__}: {lines[0] if lines else ''}".rstrip(": ")
    return redact(text)[:limit]


class Backoff:
    def __init__(self, log: logging.Logger, first_s: float = FIRST_DELAY_S,
                 max_s: float = MAX_DELAY_S, log_every_s: float = LOG_EVERY_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.log = log
        self.first_s, self.max_s, self.log_every_s = first_s, max_s, log_every_s
        self.clock = clock
        self.delay = 0.0
        self.failures = 0
        self.retry_at = 0.0
        self.last_success = clock()
        self.last_error = ""
        self._last_log = 0.0

    @property
    def failing(self) -> bool:
        return self.failures > 0

    def remaining(self) -> float:
        """Seconds until the next attempt is due (0 when it is)."""
        return max(0.0, self.retry_at - self.clock())

    def failed(self, what: str, exc: BaseException) -> float:
        """Record a failed call; return the pause before the next attempt."""
        now = self.clock()
        self.failures += 1
        self.delay = self.first_s if self.failures == 1 else min(self.max_s, self.delay * 2)
        self.retry_at = now + self.delay
        self.last_error = f"{what}: {describe(exc)}"
        if self.failures == 1 or now - self._last_log >= self.log_every_s:
            self._log(now)
        return self.delay

    def still_failing(self) -> None:
        """Call while waiting out a pause: logs again when the last line is old enough."""
        now = self.clock()
        if self.failing and now - self._last_log >= self.log_every_s:
            self._log(now)

    def succeeded(self) -> None:
        now = self.clock()
        if self.failing:
            self.log.warning("storage reachable again after %.0f s (%d failed attempts)",
                             now - self.last_success, self.failures)
        self.failures = 0
        self.delay = 0.0
        self.retry_at = 0.0
        self.last_success = now

    def _log(self, now: float) -> None:
        self._last_log = now
        self.log.error("%s; %.0f s since last success, %d failed attempts, retrying in %.1f s",
                       self.last_error, now - self.last_success, self.failures,
                       max(0.0, self.retry_at - now))
