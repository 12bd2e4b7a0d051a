"""The ingest function's app settings, read and checked once per worker process:
`docs/ingest-function.md` lists them."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from enum import StrEnum
from typing import Any

from extractor.envelope.normalize import (
    DEFAULT_CATEGORIES,
)
from extractor.policy.dedupe import DEFAULT_DEDUPE_WINDOW


class RatePolicy(StrEnum):
    """What happens to events over the rate limit."""

    DEFER = "defer"  # sent now, invisible until their tokens are paid: nothing is lost
    SHED = "shed"  # not sent: counted and logged (explicit opt-in loss)


def _categories(value: str) -> tuple[str, ...]:
    return tuple(c.strip() for c in value.split(",") if c.strip())


@dataclass(frozen=True, slots=True)
class IngestSettings:
    """Function app settings; ``metadata["env"]`` names the app setting of each field."""

    queue_connection_string: str | None = field(
        default=None, metadata={"env": "QUEUE_CONNECTION_STRING"})
    queue_account_url: str | None = field(default=None, metadata={"env": "QUEUE_ACCOUNT_URL"})
    blob_account_url: str | None = field(
        default=None, metadata={"env": "CLAIMCHECK_ACCOUNT_URL"})
    queue_name: str = field(default="k8saudit", metadata={"env": "QUEUE_NAME"})
    deadletter_queue_name: str = field(
        default="k8saudit-deadletter", metadata={"env": "DEADLETTER_QUEUE_NAME"})
    claimcheck_container: str = field(
        default="k8saudit-claims", metadata={"env": "CLAIMCHECK_CONTAINER"})
    categories: tuple[str, ...] = field(
        default=tuple(sorted(DEFAULT_CATEGORIES)),
        metadata={"env": "AUDIT_CATEGORIES", "parse": _categories})
    rate_limit_events_per_second: float = field(
        default=1000.0, metadata={"env": "rate_limit_events_per_second", "parse": float})
    rate_limit_burst: int = field(
        default=2000, metadata={"env": "rate_limit_burst", "parse": int})
    rate_limit_policy: RatePolicy = field(
        default=RatePolicy.DEFER,
        metadata={"env": "RATE_LIMIT_POLICY", "parse": lambda v: RatePolicy(v.strip().lower())})
    dedupe_window: int = field(
        default=DEFAULT_DEDUPE_WINDOW, metadata={"env": "DEDUPE_WINDOW", "parse": int})
    storage_retry_total: int = field(
        default=3, metadata={"env": "STORAGE_RETRY_TOTAL", "parse": int})

    def __post_init__(self) -> None:
        if not (self.queue_connection_string or self.queue_account_url):
            raise ValueError("set QUEUE_CONNECTION_STRING or QUEUE_ACCOUNT_URL")
        if not self.categories:
            raise ValueError("AUDIT_CATEGORIES is empty")
        if self.rate_limit_events_per_second < 0 or self.rate_limit_burst < 1:
            raise ValueError("rate_limit_events_per_second must be >= 0 (0: no limit) "
                             "and rate_limit_burst >= 1")
        if self.dedupe_window < 0 or self.storage_retry_total < 0:
            raise ValueError("DEDUPE_WINDOW must be >= 0 (0: off) and STORAGE_RETRY_TOTAL >= 0")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> IngestSettings:
        """Settings from app settings (environment); unset or empty ones keep defaults."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = env.get(f.metadata["env"], "").strip()
            if raw:
                parse: Callable[[str], Any] = f.metadata.get("parse", str)
                try:
                    values[f.name] = parse(raw)
                except ValueError as exc:
                    raise ValueError(f"app setting {f.metadata['env']}={raw!r}: {exc}") from None
        return cls(**values)
