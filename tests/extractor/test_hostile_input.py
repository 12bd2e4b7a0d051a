"""No input can make the envelope parser raise or cost more than itself.

Each hostile record rides in one Event Hub body between two good ones: the good ones are
always delivered, the hostile one ends delivered (marked when members were left out) or
dropped with a reason and a raw item a dead letter can carry, and the counts add up. The
property tests below throw generated shapes at the same invariant.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from extractor.envelope.normalize import (
    DELIVERED,
    OMITTED,
    OMITTED_ANNOTATION,
    SALVAGED,
    TRUNCATED_ANNOTATION,
    Batch,
    Reason,
    parse_documents,
)
from extractor.message.deadletter import DeadLetter
from extractor.policy.chain import Chain
from tests.support.strategies import DOCUMENTS, HEAD, TIME, deep, record


def good(audit_id: str) -> dict[str, Any]:
    return record(HEAD.replace('"h"', f'"{audit_id}"') + TIME + "}")


def body(*records: dict[str, Any]) -> bytes:
    return orjson.dumps({"records": [good("before"), *records, good("after")]})


def check_invariants(batch: Batch) -> None:
    """Every item is delivered or dropped once; what is delivered is a loadable audit event
    object; what is dropped with a raw item can be written as a dead letter."""
    drops = sum(n for key, n in batch.counts.items() if key in set(Reason))
    assert batch.items == batch.counts[DELIVERED] + drops
    assert len(batch.events) == batch.counts[DELIVERED]
    assert len(batch.drops) == drops
    for event in batch.events:
        assert isinstance(orjson.loads(event.data), dict)
        orjson.dumps((event.timestamp_ns, event.audit_id, event.stage, event.cluster))
    for drop in batch.drops:
        orjson.loads(DeadLetter("ingest", drop.reason, drop.detail, drop.raw or b"").text())


HOSTILE = [
    # (name, hostile record, expected outcome of the hostile item, members omitted)
    ("a log nested 1,025 deep",
     record(HEAD + TIME + ',"o":' + deep(1025) + "}"), DELIVERED, "o"),
    ("complete log nested 300 deep (orjson reads it, refuses to write it)",
     record(HEAD + '"requestObject":' + deep(300) + "," + TIME + "}"), DELIVERED,
     "requestObject"),
    ("cut log: integer beyond 64 bits (carried exactly)",
     record(HEAD + '"n":123456789012345678901234567890,' + TIME + ',"x":"cu'), DELIVERED, None),
    ("cut log: 5,000-digit integer", record(HEAD + '"n":' + "9" * 5000 + "," + TIME + ',"x'),
     DELIVERED, "n"),
    ("cut log: NaN", record(HEAD + '"n":NaN,' + TIME + ',"x'), DELIVERED, "n"),
    ("cut log: Infinity", record(HEAD + '"n":-Infinity,' + TIME + ',"x'), DELIVERED, "n"),
    ("cut log: lone surrogate value", record(HEAD + '"s":"\\ud800",' + TIME + ',"x'),
     DELIVERED, "s"),
    ("cut log: lone surrogate key", record(HEAD + '"\\udfff":1,' + TIME + ',"x'), DELIVERED,
     "\\udfff"),
    ("cut log: lone surrogate auditID",
     record(HEAD.replace('"h"', '"\\ud800"') + TIME + ',"x'), Reason.MISSING_AUDIT_ID, None),
    ("cut log without stageTimestamp, record time as stand-in",
     record(HEAD + '"requestObject":{"a":"' + "x" * 100), DELIVERED, None),
    ("cut log, no time anywhere", record(HEAD + '"requestObject":{', time=None),
     DELIVERED, None),
    ("cut log before stage", record(HEAD[:HEAD.index('"stage"')]),
     Reason.TRUNCATED_UNRECOVERABLE, None),
    ("arrays nested around events", [[[[orjson.loads(HEAD + TIME + "}")]]]], Reason.TOO_DEEP,
     None),
    ("record: properties not an object", {"category": "kube-audit", "properties": 7},
     Reason.NOT_AUDIT_EVENT, None),
    ("record: category an object", {"category": {"a": 1}, "properties": {}},
     Reason.CATEGORY_NOT_ACCEPTED, None),
    ("record: resourceId a number", {**record(HEAD + TIME + "}"), "resourceId": 5}, DELIVERED,
     None),
    ("log: a huge string", record("x" * 2_000_000), Reason.NOT_JSON, None),
    ("annotations nested 300 deep", record(HEAD + TIME + ',"annotations":' + deep(300) + "}"),
     DELIVERED, "annotations"),
]


@pytest.mark.parametrize(("hostile", "outcome", "omitted"), [h[1:] for h in HOSTILE],
                         ids=[h[0] for h in HOSTILE])
def test_hostile_record_costs_only_itself(hostile: Any, outcome: str, omitted: str | None
                                          ) -> None:
    batch = parse_documents([body(hostile)])
    check_invariants(batch)
    ids = [e.audit_id for e in batch.events]
    assert ids[0] == "before" and ids[-1] == "after"
    assert batch.items == 3
    if outcome == DELIVERED:
        assert len(ids) == 3
        annotations = orjson.loads(batch.events[1].data).get("annotations", {})
        assert annotations.get(OMITTED_ANNOTATION) == omitted
        assert batch.counts[OMITTED] == (omitted is not None)
    else:
        assert len(ids) == 2
        (drop,) = batch.drops
        assert drop.reason == outcome
        assert (drop.raw is None) == (outcome == Reason.CATEGORY_NOT_ACCEPTED)  # benign


def test_salvaged_event_is_timed_by_the_record_and_says_so() -> None:
    batch = parse_documents([body(record(HEAD + '"requestObject":{"a":"x'))])
    event = batch.events[1]
    assert event.timestamp_ns == 1_704_067_205_000_000_000  # the record's time
    annotations = orjson.loads(event.data)["annotations"]
    assert annotations[TRUNCATED_ANNOTATION] == "true"
    assert annotations["k8saudit-aks/timestamp-from"] == "record.time"
    assert batch.counts[SALVAGED] == 1


def test_document_nested_beyond_the_json_limit_is_too_deep() -> None:
    batch = parse_documents([b"[" * 2000 + b"]" * 2000, body()])
    check_invariants(batch)
    assert batch.counts[Reason.TOO_DEEP] == 1
    assert [e.audit_id for e in batch.events] == ["before", "after"]


# --- properties --------------------------------------------------------------------------







@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(documents=st.lists(DOCUMENTS, max_size=4))
def test_parser_never_raises_and_counts_add_up(documents: list[bytes]) -> None:
    check_invariants(parse_documents(documents))


@settings(max_examples=100, deadline=None)
@given(documents=st.lists(DOCUMENTS, max_size=4))
def test_parsing_is_deterministic_and_idempotent_on_its_output(documents: list[bytes]) -> None:
    """Delivered events parse again to themselves: the queue reader sees what was sent."""
    first = parse_documents(documents)
    assert parse_documents(documents).counts == first.counts
    again = parse_documents([e.data for e in first.events])
    assert Counter(e.audit_id for e in again.events) <= Counter(
        e.audit_id for e in first.events)


def test_an_event_over_the_size_bound_is_dropped_with_its_data() -> None:
    """One bound for every path (the policy chain of the function and every source)."""
    big = record(HEAD + '"requestObject":{"x":"' + "y" * 500 + '"},' + TIME + "}")
    batch = Chain(max_event_bytes=400).admit(parse_documents([body(big)]))
    check_invariants(batch)
    assert [e.audit_id for e in batch.events] == ["before", "after"]
    (drop,) = batch.drops
    assert drop.reason == Reason.TOO_LARGE
    assert drop.detail.endswith("bytes, over the 400-byte limit")
    assert orjson.loads(drop.raw or b"")["auditID"] == "h"


# --- a hostile envelope makes the body invalid JSON: the record boundary still holds -----

def _raw_body(hostile: str) -> bytes:
    """A body whose middle record holds `hostile` (JSON text) in properties.pod."""
    rec = orjson.dumps(record(HEAD + TIME + "}")).decode()
    bad = rec.replace('"properties":{', '"properties":{"pod":' + hostile + ",", 1)
    return ('{"records":[' + ",".join([orjson.dumps(good("before")).decode(), bad,
                                       orjson.dumps(good("after")).decode()]) + "]}").encode()


@pytest.mark.parametrize(("hostile", "reason"), [
    ('"\\ud800"', Reason.NOT_JSON),
    ("NaN", Reason.NOT_JSON),
    ("[" * 1100 + "]" * 1100, Reason.TOO_DEEP),
    ('"x\\"],{}"', None),  # brackets and commas inside a string do not split
])
def test_a_hostile_envelope_costs_only_its_record(hostile: str, reason: Reason | None) -> None:
    data = _raw_body(hostile)
    batch = parse_documents([data])
    check_invariants(batch)
    ids = [e.audit_id for e in batch.events]
    if reason is None:
        assert ids == ["before", "h", "after"]
        return
    assert ids == ["before", "after"]
    (drop,) = batch.drops
    assert drop.reason == reason
    assert drop.raw is not None and hostile.encode() in drop.raw  # the record, not the body
    assert b"before" not in drop.raw


def test_a_body_cut_short_delivers_its_whole_records() -> None:
    data = _raw_body('"pod-1"')
    batch = parse_documents([data[: data.index(b"after") + 20]])
    check_invariants(batch)
    assert [e.audit_id for e in batch.events] == ["before", "h"]
    assert [d.reason for d in batch.drops] == [Reason.NOT_JSON]


@given(st.binary(max_size=300))
def test_any_bytes_after_a_records_opening_keep_the_invariants(tail: bytes) -> None:
    check_invariants(parse_documents([b'{"records":[' + tail]))


# --- reasons and the dedupe window --------------------------------------------------------

def test_a_cut_log_whose_audit_id_is_not_a_string_is_missing_audit_id() -> None:
    """The member is there, with a value that cannot identify the event: the same fault as
    in a whole log, not an unrecoverable cut (docs/failure-modes.md)."""
    cut = HEAD.replace('"auditID":"h"', '"auditID":NaN') + '"x":"cu'
    batch = parse_documents([orjson.dumps({"records": [record(cut)]})])
    assert [d.reason for d in batch.drops] == [Reason.MISSING_AUDIT_ID]
    cut = HEAD.replace('"auditID":"h",', "") + '"x":"cu'
    batch = parse_documents([orjson.dumps({"records": [record(cut)]})])
    assert [d.reason for d in batch.drops] == [Reason.TRUNCATED_UNRECOVERABLE]


def test_copies_of_an_event_that_was_not_delivered_are_not_duplicates() -> None:
    """Three copies of an event whose auditID cannot be encoded: three dead letters, no
    duplicate: a key enters the window only with a delivered event."""
    cut = HEAD.replace('"auditID":"h"', '"auditID":"\\ud800"') + TIME + ',"x":"cu'
    hostile = record(cut)
    batch = parse_documents([orjson.dumps({"records": [hostile, hostile, hostile]})])
    assert [d.reason for d in batch.drops] == [Reason.MISSING_AUDIT_ID] * 3
    big = record(HEAD.replace('"h"', '"big"') + '"requestObject":{"x":"' + "y" * 500 + '"},'
                 + TIME + "}")
    too_large = Chain(max_event_bytes=500).admit(parse_documents([body(big, big)]))
    assert [e.audit_id for e in too_large.events] == ["before", "after"]
    assert [d.reason for d in too_large.drops] == [Reason.TOO_LARGE] * 2
