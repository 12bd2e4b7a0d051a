"""Counters every source keeps: Falco's metrics and the periodic stats line report them.

The plugin declares API 3.0.0 (so every Falco since 0.35 loads it), yet libsinsp resolves
`plugin_get_metrics` by name whatever the declared version, so Falco versions with plugin
metrics (0.38+) collect these counters too (`metrics.plugins_metrics_enabled`). The stats
line stays, for older Falcos and for logs.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter

from extractor.envelope.normalize import Batch, Reason
from plugin.sdk import Instance

log = logging.getLogger("k8saudit-aks")

# Counters reported from the start, at 0: a Prometheus alert on increase() then sees the
# first dead letter or error too (a series born at 1 has no increase). `dead_lettered` is
# the sum of the `dead_lettered.<reason>` counters.
SERVED_FROM_START = ("received", "delivered", "dead_lettered", "errors")
DEAD_LETTERED = "dead_lettered"


class Stats:
    """received, delivered, skipped by reason, deduplicated, dead-lettered, checkpoints.

    Thread-safe: Falco's thread, a source's worker threads and Falco's metrics thread all
    update or read it, so every method takes its lock and no caller needs one."""

    def __init__(self, source: str, interval_s: float = 60.0) -> None:
        self.source = source
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter(dict.fromkeys(SERVED_FROM_START, 0))
        self._gauges: dict[str, float] = {}
        self.interval_s = interval_s
        self.last_receive = time.monotonic()
        self._next_report = time.monotonic() + interval_s

    def received(self, n: int = 1) -> None:
        with self._lock:
            self._counts["received"] += n
            self.last_receive = time.monotonic()

    def add(self, key: str, n: int = 1) -> None:
        with self._lock:
            self._add(key, n)

    def _add(self, key: str, n: int) -> None:
        self._counts[key] += n
        if key.startswith(DEAD_LETTERED + "."):
            self._counts[DEAD_LETTERED] += n

    def merge(self, counts: Counter[str]) -> None:
        """Add a batch of counts at once (a hand-over's `delivered`, `deduplicated`)."""
        if counts:
            with self._lock:
                for key, n in counts.items():
                    self._add(key, n)

    def skipped(self, reason: str, n: int = 1) -> None:
        self.add(f"skipped.{reason}", n)

    def parsed(self, batch: Batch, where: str) -> None:
        """What one envelope parse and the policy chain gave: events received (every
        audit event read, whatever the chain made of it), duplicates, drops by reason. A
        drop worth a dead letter (it carries its raw item) is logged as a warning."""
        self.received(len(batch.events) + batch.counts[Reason.DUPLICATE]
                      + batch.counts[Reason.TOO_LARGE])
        for drop in batch.drops:
            if drop.reason is Reason.DUPLICATE:
                self.add("deduplicated")
                continue
            self.skipped(drop.reason)
            level = logging.DEBUG if drop.raw is None else logging.WARNING
            log.log(level, "%s: skipped (%s): %s", where, drop.reason, drop.detail[:200])

    def gauge(self, key: str, value: float) -> None:
        """A value that goes up and down (a backlog), reported as it was last set."""
        with self._lock:
            self._gauges[key] = value

    @property
    def counts(self) -> Counter[str]:
        """A copy of the counters, as they are now."""
        with self._lock:
            return self._counts.copy()

    @property
    def gauges(self) -> dict[str, float]:
        """A copy of the gauges, as they are now."""
        with self._lock:
            return dict(self._gauges)

    def metrics(self) -> list[tuple[str, float, bool]]:
        """(name, value, is_gauge): every counter, every gauge, and the seconds since the
        last receive."""
        with self._lock:
            out = [(key, float(value), False) for key, value in sorted(self._counts.items())]
            out += [(key, value, True) for key, value in sorted(self._gauges.items())]
            since = time.monotonic() - self.last_receive
        out.append(("seconds_since_last_receive", since, True))
        return out

    def line(self) -> str:
        with self._lock:
            parts = [f"{k}={v}" for k, v in sorted(self._counts.items())]
            parts += [f"{k}={v:g}" for k, v in sorted(self._gauges.items())]
            since = time.monotonic() - self.last_receive
        parts.append(f"seconds_since_last_receive={since:.0f}")
        return f"stats source={self.source} " + " ".join(parts)

    def maybe_report(self) -> None:
        now = time.monotonic()
        with self._lock:
            due = now >= self._next_report
            if due:
                self._next_report = now + self.interval_s
        if due:
            log.info("%s", self.line())


class Source(Instance):
    """An instance whose `stats` are its metrics in Falco."""

    stats: Stats

    def metrics(self) -> list[tuple[str, float, bool]]:
        return self.stats.metrics()
