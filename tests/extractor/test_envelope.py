"""Envelope parsing and normalization: input shapes, drop reasons, cluster names, dedupe,
truncation salvage and the AKS fixture's lossless-delivery contract."""

from __future__ import annotations

from collections import Counter
from typing import Any

import orjson
import pytest

from extractor.envelope.documents import split
from extractor.envelope.normalize import (
    CLUSTER_ANNOTATION,
    DELIVERED,
    EVENT_CLUSTER_ANNOTATION,
    ORIGINAL_ANNOTATIONS,
    SALVAGED,
    TIMESTAMP_ANNOTATION,
    TRUNCATED_ANNOTATION,
    AuditEvent,
    Reason,
    cluster_from_resource_id,
    parse_documents,
    parse_timestamp_ns,
    with_fallback_cluster,
)
from extractor.envelope.numbers import Numbers
from extractor.envelope.salvage import Salvaged, salvage
from extractor.policy.chain import Chain
from tests import FIXTURES

AKS = FIXTURES / "aks"
RID = (
    "/SUBSCRIPTIONS/0B7E1F3C-1111-4C1E-9A6E-7F2D1C0A9B01/RESOURCEGROUPS/RG-DEV/PROVIDERS/"
    "MICROSOFT.CONTAINERSERVICE/MANAGEDCLUSTERS/AKS-DEV-01"
)
TS = "2026-11-18T00:56:24.719830Z"
TS_NS = 1_794_963_384_719_830_000


def event(audit_id: str = "a1", stage: str = "ResponseComplete", **extra: Any) -> dict[str, Any]:
    base = {"kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": "Metadata",
            "auditID": audit_id, "stage": stage, "verb": "get", "stageTimestamp": TS}
    return {**base, **extra}


def record(log: Any, category: str = "kube-audit", resource_id: str | None = RID) -> dict:
    rec: dict[str, Any] = {"category": category, "properties": {"log": log, "pod": "p"}}
    if resource_id is not None:
        rec["resourceId"] = resource_id
    return rec


def log_of(ev: dict[str, Any]) -> str:
    return orjson.dumps(ev).decode() + "\n"


def dumps(value: Any) -> bytes:
    return orjson.dumps(value)


# --- input shapes ---------------------------------------------------------------------

SHAPES = [
    ("event hub body", [dumps({"records": [record(log_of(event("a"))),
                                            record(log_of(event("b")))]})], ["a", "b"]),
    ("archive line", [dumps(record(log_of(event("a"))))], ["a"]),
    ("log already an object", [dumps(record(event("a")))], ["a"]),
    ("raw event", [dumps(event("a"))], ["a"]),
    ("event list", [dumps({"kind": "EventList", "items": [event("a"), event("b")]})], ["a", "b"]),
    ("array of events", [dumps([event("a"), event("b")])], ["a", "b"]),
    ("array of records", [dumps([record(log_of(event("a"))), record(log_of(event("b")))])],
     ["a", "b"]),
    ("pretty file", split(orjson.dumps([event("a")], option=orjson.OPT_INDENT_2)),
     ["a"]),
    ("json lines file", split(dumps(event("a")) + b"\n\n" + dumps(event("b"))),
     ["a", "b"]),
]


@pytest.mark.parametrize(("documents", "ids"), [s[1:] for s in SHAPES], ids=[s[0] for s in SHAPES])
def test_every_input_shape_yields_its_events(documents: list[bytes], ids: list[str]) -> None:
    batch = parse_documents(documents)
    assert [e.audit_id for e in batch.events] == ids
    assert batch.drops == []
    assert batch.counts == Counter({DELIVERED: len(ids)})


def test_event_output_is_compact_normalized_json_with_metadata() -> None:
    source = event("a", annotations={"x": "y"})
    (out,) = parse_documents([dumps(record(log_of(source)))]).events
    assert out == AuditEvent(
        dumps({**source, "annotations": {"x": "y", CLUSTER_ANNOTATION: "aks-dev-01"}}),
        TS_NS, "a", "ResponseComplete", "aks-dev-01",
    )


# --- drop reasons -----------------------------------------------------------------------

TRUNCATED_EARLY = log_of(event("t"))[:40]
DROPS = [
    ("klog category", dumps(record("I1127 06:52:01 text\n", "kube-apiserver")),
     Reason.CATEGORY_NOT_ACCEPTED, False),
    ("category not a string", dumps(record(log_of(event()), category=None)),  # type: ignore[arg-type]
     Reason.CATEGORY_NOT_ACCEPTED, False),
    ("not json", b"{nope", Reason.NOT_JSON, True),
    ("not utf-8", b'{"kind":"\xff"}', Reason.NOT_JSON, True),
    ("klog text as audit log", dumps(record("E1127 status.go:71] oops\n")), Reason.NOT_JSON, True),
    ("json string", b'"text"', Reason.NOT_AUDIT_EVENT, True),
    ("other kind", dumps({"kind": "Pod", "auditID": "a"}), Reason.NOT_AUDIT_EVENT, True),
    ("kind missing", dumps({"auditID": "a", "stage": "x", "stageTimestamp": TS}),
     Reason.NOT_AUDIT_EVENT, True),
    ("record without log", dumps(record(None)), Reason.NOT_AUDIT_EVENT, True),
    ("log is a json array", dumps(record("[1]")), Reason.NOT_AUDIT_EVENT, True),
    ("auditID missing", dumps({k: v for k, v in event().items() if k != "auditID"}),
     Reason.MISSING_AUDIT_ID, True),
    ("auditID not a string", dumps(event(audit_id=3)), Reason.MISSING_AUDIT_ID, True),  # type: ignore[arg-type]
    ("stage missing", dumps({k: v for k, v in event().items() if k != "stage"}),
     Reason.MISSING_STAGE, True),
    ("stageTimestamp missing", dumps({k: v for k, v in event().items() if k != "stageTimestamp"}),
     Reason.MISSING_STAGE_TIMESTAMP, True),
    ("stageTimestamp null", dumps(event(stageTimestamp=None)), Reason.MISSING_STAGE_TIMESTAMP,
     True),
    ("truncated before auditID", dumps(record(TRUNCATED_EARLY)), Reason.TRUNCATED_UNRECOVERABLE,
     True),
]


@pytest.mark.parametrize(("document", "reason", "has_raw"), [d[1:] for d in DROPS],
                         ids=[d[0] for d in DROPS])
def test_every_drop_reason(document: bytes, reason: Reason, has_raw: bool) -> None:
    batch = parse_documents([document])
    assert batch.events == []
    (drop,) = batch.drops
    assert drop.reason is reason
    assert drop.detail
    assert (drop.raw is not None) is has_raw
    assert batch.counts == Counter({reason: 1})


def test_duplicate_is_dropped_and_counted_without_raw() -> None:
    copies = [record(log_of(event())), record(log_of(event()), "kube-audit-admin")]
    body = dumps({"records": copies})
    batch = Chain().admit(parse_documents([body]))
    assert len(batch.events) == 1
    assert [(d.reason, d.raw) for d in batch.drops] == [(Reason.DUPLICATE, None)]
    assert batch.counts == Counter({DELIVERED: 1, Reason.DUPLICATE: 1})


def test_unrecoverable_truncation_carries_the_record_for_dead_lettering() -> None:
    rec = record(TRUNCATED_EARLY)
    (drop,) = parse_documents([dumps({"records": [rec]})]).drops
    assert drop.raw is not None
    assert orjson.loads(drop.raw) == rec


@pytest.mark.parametrize(
    ("categories", "category", "accepted"),
    [
        (None, "kube-audit", True),
        (None, "KUBE-AUDIT-ADMIN", True),
        (None, "guard", False),
        (["Kube-Audit-Admin"], "kube-audit-admin", True),
        (["kube-audit-admin"], "kube-audit", False),
    ],
)
def test_accepted_categories_are_configurable_and_case_insensitive(
    categories: list[str] | None, category: str, accepted: bool
) -> None:
    kwargs = {} if categories is None else {"categories": categories}
    batch = parse_documents([dumps(record(log_of(event()), category))], **kwargs)
    assert len(batch.events) == int(accepted)


# --- cluster names ----------------------------------------------------------------------

@pytest.mark.parametrize(
    ("resource_id", "expected"),
    [
        (RID, "aks-dev-01"),
        (RID.lower(), "aks-dev-01"),
        ("/subscriptions/s/resourceGroups/g/providers/Microsoft.ContainerService/"
         "managedClusters/Prod-1", "prod-1"),
        ("/SUBSCRIPTIONS/S/RESOURCEGROUPS/G/PROVIDERS/MICROSOFT.NETWORK/VNETS/V", None),
        ("", None),
    ],
)
def test_cluster_from_resource_id(resource_id: str, expected: str | None) -> None:
    assert cluster_from_resource_id(resource_id) == expected


@pytest.mark.parametrize(
    ("document", "fallback", "cluster"),
    [
        (dumps(record(log_of(event()))), None, "aks-dev-01"),
        (dumps(record(log_of(event()))), "other", "aks-dev-01"),
        (dumps(record(log_of(event()), resource_id=None)), "Raw-Cluster", "raw-cluster"),
        (dumps(record(log_of(event()), resource_id="/not/a/cluster")), "fb", "fb"),
        (dumps(record(log_of(event()), resource_id=None)), None, None),
        (dumps(event()), "fb", "fb"),
        (dumps(event()), None, None),
    ],
)
def test_cluster_from_resource_id_or_fallback(
    document: bytes, fallback: str | None, cluster: str | None
) -> None:
    (out,) = Chain(fallback_cluster=fallback).admit(parse_documents([document])).events
    assert out.cluster == cluster
    annotations = orjson.loads(out.data).get("annotations", {})
    assert annotations.get(CLUSTER_ANNOTATION) == cluster


@pytest.mark.parametrize(
    ("annotations", "resource_id", "expected"),
    [
        (None, RID, {CLUSTER_ANNOTATION: "aks-dev-01"}),
        ({}, RID, {CLUSTER_ANNOTATION: "aks-dev-01"}),
        ({"a": "b"}, RID, {"a": "b", CLUSTER_ANNOTATION: "aks-dev-01"}),
        # The record's resourceId, which Azure writes, wins; the event's own value is kept.
        ({CLUSTER_ANNOTATION: "other"}, RID,
         {CLUSTER_ANNOTATION: "aks-dev-01", EVENT_CLUSTER_ANNOTATION: "other"}),
        ({CLUSTER_ANNOTATION: "aks-dev-01"}, RID, {CLUSTER_ANNOTATION: "aks-dev-01"}),
        # Without a resourceId the fallback only fills a missing name.
        ({CLUSTER_ANNOTATION: "own"}, None, {CLUSTER_ANNOTATION: "own"}),
        # Annotations that are not an object: replaced, the original kept as text, so the
        # cluster name is still written (ka.cluster.name reads it).
        (7, RID, {ORIGINAL_ANNOTATIONS: "7", CLUSTER_ANNOTATION: "aks-dev-01"}),
        (7, None, {ORIGINAL_ANNOTATIONS: "7", CLUSTER_ANNOTATION: "fallback"}),
    ],
)
def test_one_writer_of_the_cluster_name(annotations: Any, resource_id: str | None,
                                        expected: Any) -> None:
    document = dumps(record(log_of(event(annotations=annotations)), resource_id=resource_id))
    (out,) = Chain(fallback_cluster="fallback").admit(parse_documents([document])).events
    assert orjson.loads(out.data)["annotations"] == expected


def test_a_reader_names_what_the_writer_could_not_attribute() -> None:
    (unnamed,) = parse_documents([dumps(event("a", annotations={"x": "y"}))]).events
    named = with_fallback_cluster(unnamed, "prod")
    assert named.cluster == "prod"
    assert orjson.loads(named.data)["annotations"] == {"x": "y", CLUSTER_ANNOTATION: "prod"}


# --- timestamps -------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("text", "nanos"),
    [
        (TS, TS_NS),
        ("2026-11-18T00:56:24.719830123Z", TS_NS + 123),
        ("2026-11-18T00:56:24Z", TS_NS - 719_830_000),
        ("2026-11-18T02:56:24.7198301+02:00", TS_NS + 100),
        ("2026-11-17T23:56:24.71983-01:00", TS_NS),
        ("1970-01-01T00:00:00.000000001z", 1),
        ("", None),
        ("x", None),
        ("2026-13-01T00:00:00Z", None),
        ("2026-11-18T00:56:24.1234567890Z", None),
        ("2026-11-18T00:56:24", None),
    ],
)
def test_parse_timestamp_ns(text: str, nanos: int | None) -> None:
    assert parse_timestamp_ns(text) == nanos


@pytest.mark.parametrize(
    ("fields", "nanos"),
    [
        ({"stageTimestamp": TS}, TS_NS),
        ({"stageTimestamp": "", "requestReceivedTimestamp": TS}, TS_NS),
        ({"stageTimestamp": "x", "requestReceivedTimestamp": 0}, 0),
    ],
)
def test_event_time_falls_back(fields: dict[str, Any], nanos: int) -> None:
    (out,) = parse_documents([dumps(event(**fields))]).events
    assert out.timestamp_ns == nanos












# --- dedupe -----------------------------------------------------------------------------

def test_dedupe_key_includes_cluster_and_spans_calls_of_one_chain() -> None:
    other = RID.replace("AKS-DEV-01", "AKS-PROD")
    docs = [dumps(record(log_of(event()))), dumps(record(log_of(event()), resource_id=other))]
    chain = Chain()
    assert len(chain.admit(parse_documents(docs)).events) == 2
    assert chain.admit(parse_documents(docs[:1])).counts == Counter({Reason.DUPLICATE: 1})
    assert len(Chain().admit(parse_documents(docs[:1])).events) == 1  # a window a chain


# --- truncation salvage -------------------------------------------------------------------

FULL = '{"kind":"Event","auditID":"a","code":200,"user":{"u":1},"ok":true}'


@pytest.mark.parametrize(
    ("cut", "expected"),
    [
        (len(FULL), orjson.loads(FULL)),
        (len(FULL) - 1, {"kind": "Event", "auditID": "a", "code": 200, "user": {"u": 1}}),
        (FULL.index("200") + 2, {"kind": "Event", "auditID": "a"}),  # "code":20 is not kept
        (FULL.index('{"u"') + 3, {"kind": "Event", "auditID": "a", "code": 200}),
        (FULL.index('"auditID"') + 4, {"kind": "Event"}),
        (0, {}),
    ],
)
def test_salvage_keeps_only_complete_leading_members(cut: int, expected: dict) -> None:
    assert salvage(FULL[:cut], Numbers()) == Salvaged(expected, [], complete=cut == len(FULL))


@pytest.mark.parametrize("text", ["[1,2", '  { "a" : 1 , "b"', '{"a" 1}', '{1:2}'])
def test_salvage_stops_at_anything_odd(text: str) -> None:
    assert salvage(text, Numbers()).members == ({"a": 1} if text.startswith("  {") else {})


def test_truncated_event_with_annotations_not_an_object_is_still_marked() -> None:
    """Marks must be written: the odd annotations are kept as JSON text beside them."""
    cut = log_of(event(annotations=[5], requestObject={"x": 1}))[:-10]
    (out,) = parse_documents([dumps(record(cut))]).events
    assert orjson.loads(out.data)["annotations"] == {
        ORIGINAL_ANNOTATIONS: "[5]", CLUSTER_ANNOTATION: "aks-dev-01",
        TRUNCATED_ANNOTATION: "true"}


def test_salvaged_event_is_marked() -> None:
    cut = log_of(event(annotations={"a": "b"}, requestObject={"big": "x" * 100}))[:-30]
    batch = parse_documents([dumps(record(cut))])
    (out,) = batch.events
    annotations = orjson.loads(out.data)["annotations"]
    assert annotations == {"a": "b", TRUNCATED_ANNOTATION: "true",
                           CLUSTER_ANNOTATION: "aks-dev-01"}
    assert batch.counts == Counter({DELIVERED: 1, SALVAGED: 1})


# --- the AKS fixture ------------------------------------------------------------------------

def expected_events() -> list[dict[str, Any]]:
    lines = (AKS / "eventhub-bodies.expected.jsonl").read_bytes().splitlines()
    return [orjson.loads(line) for line in lines]


def test_fixture_delivers_every_expected_event_exactly_once() -> None:
    bodies = (AKS / "eventhub-bodies.jsonl").read_bytes().splitlines()
    batch = Chain().admit(parse_documents(bodies))
    delivered = Counter(e.key for e in batch.events)
    assert max(delivered.values()) == 1
    unrecoverable_logs = {
        orjson.loads(d.raw)["properties"]["log"]  # type: ignore[arg-type]
        for d in batch.drops if d.reason is Reason.TRUNCATED_UNRECOVERABLE
    }
    by_key = {e.key: e for e in batch.events}
    for exp in expected_events():
        key = (exp["cluster"], exp["auditID"], exp["stage"])
        if not exp["truncated"]:
            assert key in by_key, exp
            assert TRUNCATED_ANNOTATION.encode() not in by_key[key].data
        elif key in by_key:
            assert orjson.loads(by_key[key].data)["annotations"][TRUNCATED_ANNOTATION] == "true"
        else:
            assert any(f'"auditID":"{exp["auditID"]}"' in log and len(log) == exp["bytes"]
                       for log in unrecoverable_logs), exp
    assert set(by_key) <= {(e["cluster"], e["auditID"], e["stage"]) for e in expected_events()}
    assert set(batch.counts) <= {DELIVERED, SALVAGED, Reason.DUPLICATE,
                                 Reason.CATEGORY_NOT_ACCEPTED, Reason.TRUNCATED_UNRECOVERABLE}


def test_fixture_salvage_rate() -> None:
    """All 21 of the fixture's truncated events keep auditID and stage: all are delivered,
    the 13 that lost stageTimestamp timed by requestReceivedTimestamp or the record's time
    (the AKS fixture's counts)."""
    bodies = (AKS / "eventhub-bodies.jsonl").read_bytes().splitlines()
    batch = Chain().admit(parse_documents(bodies))
    salvaged = {e.key for e in batch.events if TRUNCATED_ANNOTATION.encode() in e.data}
    truncated = {(e["cluster"], e["auditID"], e["stage"]) for e in expected_events()
                 if e["truncated"]}
    assert salvaged == truncated
    assert len(salvaged) == 21
    fallbacks = Counter(orjson.loads(e.data)["annotations"].get(TIMESTAMP_ANNOTATION)
                        for e in batch.events if e.key in salvaged)
    assert fallbacks == {None: 8, "record.time": 12, "requestReceivedTimestamp": 1}


def test_storage_archive_matches_the_event_hub_bodies_it_came_from() -> None:
    archive = parse_documents(split((AKS / "storage-archive-PT1H.json").read_bytes()))
    bodies = parse_documents((AKS / "eventhub-bodies.jsonl").read_bytes().splitlines()[:20])
    assert archive.events == bodies.events
    assert archive.counts == bodies.counts
