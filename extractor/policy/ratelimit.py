"""A token bucket for `rate_limit_events_per_second` / `rate_limit_burst`.

Both users are lossless: the plugin takes only what `grant` allows now and leaves the rest
queued; the ingest function `reserve`s tokens into debt and delays the excess (queue
visibility), so nothing is shed unless a caller explicitly chooses to.
"""

from __future__ import annotations

import time
from collections.abc import Callable


class TokenBucket:
    def __init__(self, rate: float, burst: int,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be > 0 and burst >= 1")
        self.rate = float(rate)
        self.burst = float(burst)
        self._clock = clock
        self._tokens = float(burst)
        self._at = clock()

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
        self._at = now

    def grant(self, wanted: int) -> int:
        """Take up to `wanted` whole tokens available now; return how many were taken."""
        self._refill()
        n = max(0, min(wanted, int(self._tokens)))
        self._tokens -= n
        return n

    def reserve(self, n: int) -> float:
        """Take `n` tokens, going into debt if needed; return seconds until they are paid."""
        self._refill()
        self._tokens -= n
        return max(0.0, -self._tokens / self.rate)

    def refund(self, n: int) -> None:
        """Give back `n` tokens that `grant` or `reserve` took for work that then failed
        (its retry takes them again); never above the burst."""
        self._refill()
        self._tokens = min(self.burst, self._tokens + n)

    def wait_time(self, n: int = 1) -> float:
        """Seconds until `n` tokens are available (0 if they are now)."""
        self._refill()
        return max(0.0, (min(n, self.burst) - self._tokens) / self.rate)
