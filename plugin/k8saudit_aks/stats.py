"""Counters every source keeps, and the periodic stats line that reports them.

Plugin API 3.0.0 (what this plugin declares, so every Falco since 0.35 loads it) has no
metrics capability, so the counters reach operators as one log line per interval.
"""

from __future__ import annotations

import logging
import time
from collections import Counter

from extractor.envelope import Batch, Reason

log = logging.getLogger("k8saudit-aks")


class Stats:
    """received, delivered, skipped by reason, deduplicated, dead-lettered, checkpoints."""

    def __init__(self, source: str, interval_s: float = 60.0) -> None:
        self.source = source
        self.counts: Counter[str] = Counter()
        self.interval_s = interval_s
        self.last_receive = time.monotonic()
        self._next_report = time.monotonic() + interval_s

    def received(self, n: int = 1) -> None:
        self.counts["received"] += n
        self.last_receive = time.monotonic()

    def add(self, key: str, n: int = 1) -> None:
        self.counts[key] += n

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

    def line(self) -> str:
        parts = [f"{k}={v}" for k, v in sorted(self.counts.items())]
        since = time.monotonic() - self.last_receive
        parts.append(f"seconds_since_last_receive={since:.0f}")
        return f"stats source={self.source} " + " ".join(parts)

    def maybe_report(self) -> None:
        now = time.monotonic()
        if now >= self._next_report:
            self._next_report = now + self.interval_s
            log.info("%s", self.line())
