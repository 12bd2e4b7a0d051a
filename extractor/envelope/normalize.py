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

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from functools import lru_cache
from typing import Any

import orjson

from extractor.envelope.documents import split
from extractor.envelope.numbers import Numbers, suspect
from extractor.envelope.salvage import Salvaged, salvage
from extractor.safe_text import describe_redacted, json_safe

DEFAULT_CATEGORIES: frozenset[str] = frozenset({"kube-audit", "kube-audit-admin"})
CLUSTER_ANNOTATION = "cluster_name"
# The event's own cluster_name when the record's resourceId (which Azure writes) named
# another: kept, never silently replaced.
EVENT_CLUSTER_ANNOTATION = "k8saudit-aks/event-cluster-name"
TRUNCATED_ANNOTATION = "k8saudit-aks/truncated"
TIMESTAMP_ANNOTATION = "k8saudit-aks/timestamp-from"  # a salvaged event's stand-in time
OMITTED_ANNOTATION = "k8saudit-aks/omitted"  # members left out, comma-separated
ORIGINAL_ANNOTATIONS = "k8saudit-aks/original-annotations"  # they were not an object
# Arrays, `records` and `items` nest at most this deep around an event (an array of Event
# Hub bodies is 2): deeper input is dropped as too_deep instead of recursing on it.
MAX_CONTAINER_DEPTH = 3

# Counter keys next to the drop reasons. Every input item (Batch.items: an event, a
# record, a value that is neither) counts once in DELIVERED or a drop reason (the policy
# chain moves what it drops from DELIVERED to its reason); the delivered events recovered
# from a cut log also count in SALVAGED, those delivered without a member that could not be
# encoded (nested too deep, a lone surrogate, ...) in OMITTED.
DELIVERED = "delivered"
SALVAGED = "salvaged"
OMITTED = "omitted_members"


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
    TOO_DEEP = "too_deep"
    TOO_LARGE = "too_large"
    INTERNAL_ERROR = "internal_error"


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
    """Result of one parse call; ``counts`` maps DELIVERED, SALVAGED, OMITTED and reasons
    to counts. ``items`` input items were seen: each is delivered or dropped, once."""

    events: list[AuditEvent] = field(default_factory=list)
    drops: list[Drop] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)
    items: int = 0
    # id() of each event also counted in SALVAGED or OMITTED -> those keys: what the
    # policy chain takes back when it drops the event.
    also_counted: dict[int, tuple[str, ...]] = field(default_factory=dict)



_RECORDS_BODY = re.compile(rb'\A\s*\{\s*"records"\s*:\s*\[')
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






def parse_documents(
    documents: Iterable[bytes],
    *,
    categories: Iterable[str] = DEFAULT_CATEGORIES,
) -> Batch:
    """Parse and normalize documents into one :class:`Batch`. Never raises on data: each
    item is processed inside its own boundary, and anything unexpected in one becomes an
    ``internal_error`` drop carrying that item.

    Normalization only: an event without a ``resourceId`` has no cluster yet, and the
    size bound and the dedupe window are the policy chain's (``extractor.policy.chain``),
    which every caller applies next.
    """
    walker = _Walker(frozenset(c.lower() for c in categories))
    for document in documents:
        walker.document(document)
    return walker.batch


class _Walker:
    """Dispatches input shapes and accumulates the batch."""

    __slots__ = ("authoritative", "batch", "categories", "source")

    def __init__(self, categories: frozenset[str]):
        self.categories = categories
        self.batch = Batch()
        self.source = b""  # the document being walked: the raw of what cannot be re-dumped
        self.authoritative = False  # the current item's cluster came from its resourceId

    def drop(self, reason: Reason, detail: str, raw: bytes | None = None) -> None:
        self.batch.drops.append(Drop(reason, detail, raw))
        self.batch.counts[reason] += 1

    def raw(self, value: Any) -> bytes:
        """``value`` as dead-letter bytes; the whole document when it cannot be dumped."""
        try:
            return orjson.dumps(value)
        except TypeError:
            return self.source

    def document(self, data: bytes) -> None:
        self.source = data
        try:
            value = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            # An Event Hub body's records, each on its own: one hostile record costs itself.
            # Any other document that is not JSON is one item.
            pieces = split(data) if _RECORDS_BODY.match(data) else []
            if not pieces:
                self.not_json(exc, data)
            for piece in pieces:
                self.source = piece
                try:
                    value = orjson.loads(piece)
                except orjson.JSONDecodeError as piece_exc:
                    self.not_json(piece_exc, piece)
                    continue
                self.value(value, 1)
            return
        self.value(value, 0)

    def not_json(self, exc: orjson.JSONDecodeError, raw: bytes) -> None:
        self.batch.items += 1
        self.drop(Reason.TOO_DEEP if "depth" in str(exc) else Reason.NOT_JSON, str(exc), raw)

    def value(self, value: Any, depth: int) -> None:
        if isinstance(value, list):
            items: Any = value
        elif isinstance(value, dict) and isinstance(value.get("records"), list):
            items = value["records"]
        elif (isinstance(value, dict) and value.get("kind") == "EventList"
              and isinstance(value.get("items"), list)):
            items = value["items"]
        else:
            self.item(value)
            return
        if depth >= MAX_CONTAINER_DEPTH:
            self.batch.items += 1
            self.drop(Reason.TOO_DEEP, f"input nested more than {MAX_CONTAINER_DEPTH} "
                                       "arrays deep around its events", self.raw(value))
            return
        for item in items:
            self.value(item, depth + 1)

    def item(self, value: Any) -> None:
        """One event, record or stray value: the isolation boundary."""
        self.batch.items += 1
        self.authoritative = False
        try:
            if not isinstance(value, dict):
                self.drop(Reason.NOT_AUDIT_EVENT, f"JSON {type(value).__name__}",
                          self.raw(value))
            elif "category" in value and "properties" in value:
                self.record(value)
            else:
                self.event(value, None, raw=value)
        except Exception as exc:
            self.drop(Reason.INTERNAL_ERROR, describe_redacted(exc), self.raw(value))

    def record(self, record: dict[str, Any]) -> None:
        category = record["category"]
        if not isinstance(category, str) or category.lower() not in self.categories:
            self.drop(Reason.CATEGORY_NOT_ACCEPTED, f"category {category!r}")
            return
        resource_id = record.get("resourceId")
        cluster = cluster_from_resource_id(resource_id) if isinstance(resource_id, str) else None
        self.authoritative = cluster is not None
        properties = record["properties"]
        log = properties.get("log") if isinstance(properties, dict) else None
        if isinstance(log, dict):
            self.event(log, cluster, raw=record)
        elif not isinstance(log, str):
            self.drop(Reason.NOT_AUDIT_EVENT, "record without properties.log", self.raw(record))
        else:
            self.log(log, cluster, record)

    def log(self, log: str, cluster: str | None, record: dict[str, Any]) -> None:
        try:
            event = orjson.loads(log)
        except orjson.JSONDecodeError as exc:
            if not log.lstrip().startswith("{"):
                self.drop(Reason.NOT_JSON, f"properties.log: {exc}", self.raw(record))
                return
            event = None  # cut short, or a value orjson refuses: read member by member
        if event is not None and not isinstance(event, dict):
            self.drop(Reason.NOT_AUDIT_EVENT, "properties.log is not an object",
                      self.raw(record))
        elif event is None or suspect(log):  # exact numbers, refused members named
            numbers = Numbers()
            found = salvage(log, numbers)
            if found.complete:
                self.event(found.members, cluster, raw=record, omitted=found.omitted,
                           numbers=numbers)
            else:
                self.salvaged(found, cluster, record, numbers)
        else:
            self.event(event, cluster, raw=record)

    def salvaged(self, found: Salvaged, cluster: str | None, record: dict[str, Any],
                 numbers: Numbers) -> None:
        """A cut log: delivered when its intact members identify the event, marked, and
        timed by the best stand-in for a lost stageTimestamp."""
        event = found.members
        rejection = _rejection(event, timed=False, numbers=numbers)
        if rejection is not None:
            reason, detail = rejection
            # A member the cut left out makes it unrecoverable; one that is there with a
            # value that cannot identify the event is the same fault as in a whole log.
            present = {Reason.MISSING_AUDIT_ID: "auditID", Reason.MISSING_STAGE: "stage"}
            if present.get(reason) not in event and present.get(reason) not in found.omitted:
                reason = Reason.TRUNCATED_UNRECOVERABLE
            self.drop(reason, detail, self.raw(record))
            return
        marks = {TRUNCATED_ANNOTATION: "true"}
        timestamp_ns = _event_time(event)
        if not isinstance(event.get("stageTimestamp"), str):
            time = record.get("time")
            if timestamp_ns:
                marks[TIMESTAMP_ANNOTATION] = "requestReceivedTimestamp"
            elif isinstance(time, str) and (time_ns := parse_timestamp_ns(time)) is not None:
                timestamp_ns, marks[TIMESTAMP_ANNOTATION] = time_ns, "record.time"
            else:
                marks[TIMESTAMP_ANNOTATION] = "received"  # the reader's clock
        self.event(event, cluster, raw=record, marks=marks, omitted=found.omitted,
                   timestamp_ns=timestamp_ns, numbers=numbers)

    def event(self, event: dict[str, Any], cluster: str | None, *, raw: Any,
              marks: dict[str, str] | None = None, omitted: Sequence[str] = (),
              timestamp_ns: int | None = None, numbers: Numbers | None = None) -> None:
        """Validate (a salvaged event, which carries ``marks``, is already), annotate and
        encode one event."""
        rejection = None if marks is not None else _rejection(event, timed=True,
                                                              numbers=numbers)
        if rejection is not None:
            self.drop(*rejection, self.raw(raw))
            return
        audit_id, stage = event["auditID"], event["stage"]
        data, omitted = _encode(event, (cluster, self.authoritative), marks or {},
                                list(omitted))
        if "auditID" in omitted or "stage" in omitted:
            self.drop(Reason.MISSING_AUDIT_ID if "auditID" in omitted else Reason.MISSING_STAGE,
                      "auditID or stage cannot be encoded", self.raw(raw))
            return
        if numbers is not None:
            data = numbers.restore(data)
        if timestamp_ns is None:
            timestamp_ns = _event_time(event)
        delivered = AuditEvent(data, timestamp_ns, audit_id, stage, cluster)
        self.batch.events.append(delivered)
        also = (SALVAGED,) * (marks is not None) + (OMITTED,) * bool(omitted)
        self.batch.counts.update((DELIVERED, *also))
        if also:
            self.batch.also_counted[id(delivered)] = also


def _rejection(event: dict[str, Any], *, timed: bool,
               numbers: Numbers | None = None) -> tuple[Reason, str] | None:
    """Why ``event`` cannot be delivered, or None. Values are only type-checked: an empty or
    odd auditID/stage still identifies the event and dropping it would lose data. A salvaged
    event (not ``timed``) may have lost its stageTimestamp to the cut. A number kept by
    ``numbers`` is a number, not a string."""
    def text(name: str) -> bool:
        value = event.get(name)
        return isinstance(value, str) and not (numbers is not None and numbers.kept(value))

    if event.get("kind") != "Event":
        return Reason.NOT_AUDIT_EVENT, f"kind {event.get('kind')!r}"
    if not text("auditID"):
        return Reason.MISSING_AUDIT_ID, "auditID absent or not a string"
    if not text("stage"):
        return Reason.MISSING_STAGE, "stage absent or not a string"
    if timed and not text("stageTimestamp"):
        return Reason.MISSING_STAGE_TIMESTAMP, "stageTimestamp absent or not a string"
    return None


def _encode(event: dict[str, Any], cluster: tuple[str | None, bool], marks: dict[str, str],
            omitted: list[str]) -> tuple[bytes, list[str]]:
    """The annotated event as compact JSON, and the members left out of it: those orjson
    refuses (nested beyond its 254 levels, a lone surrogate, an integer beyond 64 bits) go,
    named in OMITTED_ANNOTATION, so one hostile member never costs the event."""
    if omitted:
        marks = {**marks, OMITTED_ANNOTATION: _names(omitted)}
    _annotate(event, cluster, marks)
    try:
        return orjson.dumps(event), omitted
    except TypeError:  # orjson.JSONEncodeError
        pass
    refused = [key for key, value in event.items() if not _encodable(key, value)]
    for key in refused:
        del event[key]
    omitted = omitted + refused
    _annotate(event, cluster, {**marks, OMITTED_ANNOTATION: _names(omitted)})
    return orjson.dumps(event), omitted


def _encodable(key: str, value: Any) -> bool:
    try:
        orjson.dumps({key: value})  # as a member: one level deeper than the value alone
    except TypeError:
        return False
    return True


def _names(keys: Sequence[str]) -> str:
    """Member names for an annotation, lone surrogates escaped."""
    return ",".join(json_safe(key) for key in keys)


def _annotate(event: dict[str, Any], cluster: tuple[str | None, bool],
              marks: dict[str, str]) -> None:
    """Write ``marks`` and the cluster name (see `set_cluster`) into the annotations.
    Annotations that are not an object are replaced when there is something to write (the
    cluster name or a mark), the original kept as JSON text under ORIGINAL_ANNOTATIONS."""
    name, authoritative = cluster
    annotations = event.get("annotations")
    if not isinstance(annotations, dict):
        if name is None and not marks:
            return
        annotations = event["annotations"] = (
            {} if annotations is None else {ORIGINAL_ANNOTATIONS: _json_text(annotations)})
    if name is not None:
        set_cluster(annotations, name, authoritative=authoritative)
    annotations.update(marks)


def set_cluster(annotations: dict[str, Any], cluster: str, *, authoritative: bool) -> None:
    """The one writer of `cluster_name`. A name from the record's AKS `resourceId` (written
    by Azure, `authoritative`) wins over the event's own annotation, which is then kept
    under EVENT_CLUSTER_ANNOTATION; a fallback name (raw files, open params) only fills a
    missing one."""
    own = annotations.get(CLUSTER_ANNOTATION)
    if own is None:
        annotations[CLUSTER_ANNOTATION] = cluster
    elif authoritative and own != cluster:
        annotations[EVENT_CLUSTER_ANNOTATION] = own
        annotations[CLUSTER_ANNOTATION] = cluster


def with_fallback_cluster(event: AuditEvent, cluster: str) -> AuditEvent:
    """An event its writer could not attribute (no resourceId), named by the reader's
    fallback (the policy chain's: the plugin's open params) through `set_cluster`, which
    only fills a missing name; its numbers pass exactly."""
    try:
        doc = orjson.loads(event.data)
    except orjson.JSONDecodeError:
        return event
    if not isinstance(doc, dict):
        return AuditEvent(event.data, event.timestamp_ns, event.audit_id, event.stage, cluster)
    numbers = None
    if suspect(text := event.data.decode("utf-8", "replace")):
        numbers = Numbers()
        doc = salvage(text, numbers).members
    _annotate(doc, (cluster, False), {})
    data = orjson.dumps(doc)
    return AuditEvent(numbers.restore(data) if numbers else data, event.timestamp_ns,
                      event.audit_id, event.stage, cluster)


def _json_text(value: Any) -> str:
    try:
        return orjson.dumps(value).decode("utf-8")
    except TypeError:
        return "(not encodable)"


def _event_time(event: dict[str, Any]) -> int:
    """stageTimestamp, else requestReceivedTimestamp, else 0 (unknown: reader's clock)."""
    for name in ("stageTimestamp", "requestReceivedTimestamp"):
        value = event.get(name)
        if isinstance(value, str) and (nanos := parse_timestamp_ns(value)) is not None:
            return nanos
    return 0
