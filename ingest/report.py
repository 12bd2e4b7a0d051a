"""What one invocation did: the counters of its summary log line and of its metrics
(`ingest.telemetry`), and the messages it sent."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

# Counter keys of a Report, besides the envelope's ("delivered", "salvaged" and each
# extractor.envelope.normalize.Reason).
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


@dataclass(frozen=True, slots=True)
class SentMessage:
    """A queue message this invocation sent: id, events in it, visibility delay (s)."""

    message_id: str
    count: int
    delay: int


@dataclass(slots=True)
class Report:
    """What one invocation did: counters, the messages sent in send order, and what the
    function's metrics break down (``ingest.telemetry``): the events sent per cluster,
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
