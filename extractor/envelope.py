"""Turn AKS diagnostic-settings traffic (or raw audit files) into normalized audit events.

Accepted input documents (one ``bytes`` each):

* an Event Hub message body ``{"records": [...]}``;
* one line of a storage-account archive (``PT1H.json``): a single diagnostic record;
* a raw audit event, an ``EventList`` (``{"kind": "EventList", "items": [...]}``) or a JSON
  array of events or records.

Everything that is not delivered comes back as a :class:`Drop` with a :class:`Reason`, so the
caller can count it and dead-letter what deserves it. See ``docs/normalization.md``.
"""

from __future__ import annotations

import json
import re
from collections import Counter, OrderedDict
from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from functools import lru_cache
from typing import Any

import orjson

DEFAULT_CATEGORIES: frozenset[str] = frozenset({"kube-audit", "kube-audit-admin"})
CLUSTER_ANNOTATION = "cluster_name"
TRUNCATED_ANNOTATION = "k8saudit-aks/truncated"
DEFAULT_DEDUPE_WINDOW = 65_536

# Counter keys next to the drop reasons: every delivered event counts in DELIVERED, the
# partially recovered ones also in SALVAGED.
DELIVERED = "delivered"
SALVAGED = "salvaged"


class Reason(StrEnum):
    """Why an input item was not delivered."""

    CATEGORY_NOT_ACCEPTED = "category_not_accepted"
    NOT_JSON = "not_json"
    NOT_AUDIT_EVENT = "not_audit_event"
    MISSING_AUDIT_ID = "missing_audit_id"
    MISSING_STAGE = "missing_stage"
    MISSING_STAGE_TIMESTAMP = "missing_stage_timestamp"
    DUPLICATE = "duplicate"
    TRUNCATED_UNRECOVERABLE = "truncated_unrecoverable"


@dataclass(frozen=True, slots=True)
class AuditEvent:
    """One audit event ready for Falco: compact JSON (one line) plus what the reader needs
    without parsing it again (timestamp, dedupe key)."""

    data: bytes
    timestamp_ns: int
    audit_id: str
    stage: str
    cluster: str | None

    @property
    def key(self) -> tuple[str | None, str, str]:
        """Identity used for deduplication: (cluster, auditID, stage)."""
        return (self.cluster, self.audit_id, self.stage)


@dataclass(frozen=True, slots=True)
class Drop:
    """An input item that was not delivered. ``raw`` is set when the item is worth
    dead-lettering (anything but benign category filtering and duplicates)."""

    reason: Reason
    detail: str
    raw: bytes | None = None


@dataclass(slots=True)
class Batch:
    """Result of one parse call; ``counts`` maps DELIVERED, SALVAGED and reasons to counts."""

    events: list[AuditEvent] = field(default_factory=list)
    drops: list[Drop] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)


class Deduper:
    """Bounded LRU of event keys.

    Bounded because it lives as long as the process (Function host, Falco plugin) and must
    catch the ``kube-audit`` / ``kube-audit-admin`` copies and queue redeliveries without
    growing with traffic.
    """

    __slots__ = ("_capacity", "_keys")

    def __init__(self, capacity: int = DEFAULT_DEDUPE_WINDOW) -> None:
        if capacity < 1:
            raise ValueError("capacity must be positive")
        self._capacity = capacity
        self._keys: OrderedDict[Hashable, None] = OrderedDict()

    def seen(self, key: Hashable) -> bool:
        """Record ``key``; return True when it was already in the window."""
        keys = self._keys
        if key in keys:
            keys.move_to_end(key)
            return True
        keys[key] = None
        if len(keys) > self._capacity:
            keys.popitem(last=False)
        return False

    def __len__(self) -> int:
        return len(self._keys)


_CLUSTER_RE = re.compile(r"/managedclusters/([^/]+)", re.IGNORECASE)
_TIMESTAMP_RE = re.compile(
    r"(\d{4}-\d\d-\d\d[Tt ]\d\d:\d\d):([0-5]\d)(?:\.(\d{1,9}))?([Zz]|[+-]\d\d:\d\d)\Z"
)


@lru_cache(maxsize=1024)
def cluster_from_resource_id(resource_id: str) -> str | None:
    """Managed cluster name of an AKS ``resourceId`` (upper case in diagnostic logs),
    lower-cased as Azure names are case-insensitive; None when it is not a cluster id."""
    match = _CLUSTER_RE.search(resource_id)
    return match.group(1).lower() if match else None


def parse_timestamp_ns(value: str) -> int | None:
    """RFC 3339 time (0 to 9 fraction digits, ``Z`` or offset) as ns since the epoch;
    None when it is not one. Hand-rolled because ``datetime`` drops the nanoseconds."""
    match = _TIMESTAMP_RE.match(value)
    if match is None:
        return None
    minute, seconds, fraction, zone = match.groups()
    base = _minute_epoch(minute, zone)
    if base is None:
        return None
    nanos = int(fraction.ljust(9, "0")) if fraction else 0
    return (base + int(seconds)) * 1_000_000_000 + nanos


@lru_cache(maxsize=4096)
def _minute_epoch(minute: str, zone: str) -> int | None:
    """Epoch seconds of a ``YYYY-MM-DDTHH:MM`` + zone; cached as events share minutes."""
    try:
        moment = datetime.fromisoformat(f"{minute}:00{'+00:00' if zone in 'Zz' else zone}")
    except ValueError:
        return None
    return int(moment.timestamp())


def split_documents(data: bytes) -> list[bytes]:
    """A whole file as documents: itself when it is one JSON value (Event Hub body, array,
    EventList), else its non-blank lines (storage archive, JSON lines)."""
    try:
        orjson.loads(data)
    except orjson.JSONDecodeError:
        return [line for line in data.splitlines() if line.strip()]
    return [data]


def parse_documents(
    documents: Iterable[bytes],
    *,
    categories: Iterable[str] = DEFAULT_CATEGORIES,
    fallback_cluster: str | None = None,
    deduper: Deduper | None = None,
) -> Batch:
    """Parse and normalize documents into one :class:`Batch`.

    ``fallback_cluster`` names the cluster of events without a ``resourceId`` (raw files).
    Without ``deduper`` duplicates are only caught within this call; pass a long-lived one
    to catch them across calls.
    """
    walker = _Walker(
        frozenset(c.lower() for c in categories),
        fallback_cluster.lower() if fallback_cluster else None,
        deduper if deduper is not None else Deduper(),
    )
    for document in documents:
        walker.document(document)
    return walker.batch


class _Walker:
    """Dispatches input shapes and accumulates the batch."""

    __slots__ = ("batch", "categories", "deduper", "fallback_cluster")

    def __init__(self, categories: frozenset[str], fallback: str | None, deduper: Deduper):
        self.categories = categories
        self.fallback_cluster = fallback
        self.deduper = deduper
        self.batch = Batch()

    def drop(self, reason: Reason, detail: str, raw: bytes | None = None) -> None:
        self.batch.drops.append(Drop(reason, detail, raw))
        self.batch.counts[reason] += 1

    def document(self, data: bytes) -> None:
        try:
            value = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            self.drop(Reason.NOT_JSON, str(exc), data)
            return
        self.value(value, self.fallback_cluster)

    def value(self, value: Any, cluster: str | None) -> None:
        if isinstance(value, list):
            for item in value:
                self.value(item, cluster)
        elif not isinstance(value, dict):
            self.drop(Reason.NOT_AUDIT_EVENT, f"JSON {type(value).__name__}", _dump(value))
        elif isinstance(value.get("records"), list):
            for record in value["records"]:
                self.value(record, cluster)
        elif "category" in value and "properties" in value:
            self.record(value)
        elif value.get("kind") == "EventList" and isinstance(value.get("items"), list):
            for item in value["items"]:
                self.value(item, cluster)
        else:
            self.event(value, cluster, truncated=False, raw=None)

    def record(self, record: dict[str, Any]) -> None:
        category = record["category"]
        if not isinstance(category, str) or category.lower() not in self.categories:
            self.drop(Reason.CATEGORY_NOT_ACCEPTED, f"category {category!r}")
            return
        resource_id = record.get("resourceId")
        cluster = (
            cluster_from_resource_id(resource_id) if isinstance(resource_id, str) else None
        ) or self.fallback_cluster
        properties = record["properties"]
        log = properties.get("log") if isinstance(properties, dict) else None
        if isinstance(log, dict):
            self.event(log, cluster, truncated=False, raw=None)
        elif not isinstance(log, str):
            self.drop(Reason.NOT_AUDIT_EVENT, "record without properties.log", _dump(record))
        else:
            self.log(log, cluster, record)

    def log(self, log: str, cluster: str | None, record: dict[str, Any]) -> None:
        try:
            event = orjson.loads(log)
        except orjson.JSONDecodeError as exc:
            if log.lstrip().startswith("{"):
                self.event(salvage(log), cluster, truncated=True, raw=record)
            else:
                self.drop(Reason.NOT_JSON, f"properties.log: {exc}", _dump(record))
            return
        if isinstance(event, dict):
            self.event(event, cluster, truncated=False, raw=record)
        else:
            self.drop(Reason.NOT_AUDIT_EVENT, "properties.log is not an object", _dump(record))

    def event(
        self, event: dict[str, Any], cluster: str | None, *, truncated: bool, raw: Any
    ) -> None:
        rejection = _rejection(event)
        if rejection is None and truncated and not _annotate(
            event, event.get("annotations"), TRUNCATED_ANNOTATION, "true"
        ):
            rejection = (Reason.TRUNCATED_UNRECOVERABLE, "cannot mark: annotations not an object")
        if rejection is not None:
            reason = Reason.TRUNCATED_UNRECOVERABLE if truncated else rejection[0]
            self.drop(reason, rejection[1], _dump(raw if raw is not None else event))
            return
        audit_id, stage = event["auditID"], event["stage"]
        if self.deduper.seen((cluster, audit_id, stage)):
            self.drop(Reason.DUPLICATE, f"{audit_id} {stage}")
            return
        if cluster is not None:
            _annotate(event, event.get("annotations"), CLUSTER_ANNOTATION, cluster)
        self.batch.events.append(
            AuditEvent(orjson.dumps(event), _event_time(event), audit_id, stage, cluster)
        )
        self.batch.counts[DELIVERED] += 1
        if truncated:
            self.batch.counts[SALVAGED] += 1


def _rejection(event: dict[str, Any]) -> tuple[Reason, str] | None:
    """Why ``event`` cannot be delivered, or None. Values are only type-checked: an empty or
    odd auditID/stage still identifies the event and dropping it would lose data."""
    if event.get("kind") != "Event":
        return Reason.NOT_AUDIT_EVENT, f"kind {event.get('kind')!r}"
    if not isinstance(event.get("auditID"), str):
        return Reason.MISSING_AUDIT_ID, "auditID absent or not a string"
    if not isinstance(event.get("stage"), str):
        return Reason.MISSING_STAGE, "stage absent or not a string"
    if not isinstance(event.get("stageTimestamp"), str):
        return Reason.MISSING_STAGE_TIMESTAMP, "stageTimestamp absent or not a string"
    return None


def _annotate(event: dict[str, Any], annotations: Any, key: str, value: str) -> bool:
    """Add ``key`` unless present; False when annotations exist but are not an object
    (left untouched: rewriting them would destroy source data)."""
    if annotations is None:
        event["annotations"] = {key: value}
    elif isinstance(annotations, dict):
        annotations.setdefault(key, value)
    else:
        return False
    return True


def _event_time(event: dict[str, Any]) -> int:
    """stageTimestamp, else requestReceivedTimestamp, else 0 (unknown: reader's clock)."""
    for name in ("stageTimestamp", "requestReceivedTimestamp"):
        value = event.get(name)
        if isinstance(value, str) and (nanos := parse_timestamp_ns(value)) is not None:
            return nanos
    return 0


def _dump(value: Any) -> bytes:
    """Raw bytes for a dead letter."""
    return orjson.dumps(value)


_DECODER = json.JSONDecoder()
_WHITESPACE = re.compile(r"[ \t\n\r]*")


def salvage(text: str) -> dict[str, Any]:
    """Leading top-level members of a JSON object cut short, each complete.

    AKS cuts ``properties.log`` at a byte limit. A member counts only when followed by ``,``
    or ``}``, so a number or literal cut mid-way (``"code":20`` of ``200``) is not kept.
    """
    members: dict[str, Any] = {}
    skip = _WHITESPACE.match
    pos = skip(text).end()
    if not text.startswith("{", pos):
        return members
    pos += 1
    while True:
        try:
            key, pos = _DECODER.raw_decode(text, skip(text, pos).end())
            pos = skip(text, pos).end()
            if not isinstance(key, str) or not text.startswith(":", pos):
                return members
            value, pos = _DECODER.raw_decode(text, skip(text, pos + 1).end())
        except json.JSONDecodeError:
            return members
        pos = skip(text, pos).end()
        if not text.startswith((",", "}"), pos):
            return members
        members[key] = value
        if text.startswith("}", pos):
            return members
        pos += 1
