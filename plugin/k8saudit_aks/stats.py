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

from extractor.envelope import Batch, Reason
from plugin.sdk import Instance

log = logging.getLogger("k8saudit-aks")

# Counters reported from the start, at 0: a Prometheus alert on increase() then sees the
# first dead letter or error too (a series born at 1 has no increase). `dead_lettered` is
# the sum of the `dead_lettered.<reason>` counters.
SERVED_FROM_START = ("received", "delivered", "dead_lettered", "errors")
DEAD_LETTERED = "dead_lettered"


class Stats:
    """received, delivered, skipped by reason, deduplicated, dead-lettered, checkpoints."""

    def __init__(self, source: str, interval_s: float = 60.0,
                 lock: threading.Lock | None = None) -> None:
        self.source = source
        self.lock = lock or threading.Lock()  # the one the source updates counters under
        self.counts: Counter[str] = Counter(dict.fromkeys(SERVED_FROM_START, 0))
        self.gauges: dict[str, float] = {}
        self.interval_s = interval_s
        self.last_receive = time.monotonic()
        self._next_report = time.monotonic() + interval_s

    def received(self, n: int = 1) -> None:
        self.counts["received"] += n
        self.last_receive = time.monotonic()

    def add(self, key: str, n: int = 1) -> None:
        self.counts[key] += n
        if key.startswith(DEAD_LETTERED + "."):
            self.counts[DEAD_LETTERED] += n

    def skipped(self, reason: str, n: int = 1) -> None:
        self.counts[f"skipped.{reason}"] += n

    def parsed(self, batch: Batch, where: str) -> None:
        """What one envelope parse gave: events received, duplicates, drops by reason.
        A drop worth a dead letter (it carries its raw item) is logged as a warning."""
        self.received(len(batch.events))
        for drop in batch.drops:
            if drop.reason is Reason.DUPLICATE:
                self.add("deduplicated")
                continue
            self.skipped(drop.reason)
            level = logging.DEBUG if drop.raw is None else logging.WARNING
            log.log(level, "%s: skipped (%s): %s", where, drop.reason, drop.detail[:200])

    def gauge(self, key: str, value: float) -> None:
        """A value that goes up and down (a backlog), reported as it was last set."""
        self.gauges[key] = value

    def metrics(self) -> list[tuple[str, float, bool]]:
        """(name, value, is_gauge): every counter, every gauge, and the seconds since the
        last receive. From Falco's metrics thread, so under the source's lock."""
        with self.lock:
            out = [(key, float(value), False) for key, value in sorted(self.counts.items())]
            out += [(key, value, True) for key, value in sorted(self.gauges.items())]
        out.append(("seconds_since_last_receive", time.monotonic() - self.last_receive, True))
        return out

    def line(self) -> str:
        parts = [f"{k}={v}" for k, v in sorted(self.counts.items())]
        parts += [f"{k}={v:g}" for k, v in sorted(self.gauges.items())]
        since = time.monotonic() - self.last_receive
        parts.append(f"seconds_since_last_receive={since:.0f}")
        return f"stats source={self.source} " + " ".join(parts)

    def maybe_report(self) -> None:
        now = time.monotonic()
        if now >= self._next_report:
            self._next_report = now + self.interval_s
            log.info("%s", self.line())


class Source(Instance):
    """An instance whose `stats` are its metrics in Falco."""

    stats: Stats

    def metrics(self) -> list[tuple[str, float, bool]]:
        return self.stats.metrics()
