"""Queue wire format v1: round trips, size limits, claim checks and poison messages."""

from __future__ import annotations

import base64
import contextlib
import os
import random
import tracemalloc
import zlib
from collections import Counter
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from extractor.envelope.documents import split
from extractor.envelope.normalize import AuditEvent, parse_documents
from extractor.message.codec import (
    DEFAULT_LIMITS,
    BlobRef,
    Limits,
    PoisonMessage,
    PoisonReason,
    pack,
    unpack,
    unpack_blob,
)
from extractor.policy.chain import Chain
from tests import FIXTURES
from tests.support.strategies import AUDIT_EVENTS, frame, header_for, tampered

GENERATED = FIXTURES / "audit-events" / "generated.jsonl"


@pytest.fixture(scope="module")
def generated() -> list[AuditEvent]:
    documents = split(GENERATED.read_bytes())
    return Chain(fallback_cluster="gen").admit(parse_documents(documents)).events


def read_all(messages: list[Any], limits: Limits = DEFAULT_LIMITS) -> list[AuditEvent]:
    """What a reader delivers: inline events, or the claim-check blob's."""
    events: list[AuditEvent] = []
    for message in messages:
        unpacked = unpack(message.text, limits=limits)
        assert unpacked.message_id == message.message_id
        assert unpacked.count == message.count
        if unpacked.blob is None:
            assert unpacked.events is not None
            events += unpacked.events
        else:
            assert message.blob is not None and message.blob[0] == unpacked.blob.name
            events += unpack_blob(unpacked.blob, message.blob[1], limits=limits)
    return events


def event(data: bytes = b'{"kind":"Event"}', audit_id: str = "a") -> AuditEvent:
    return AuditEvent(data, 1, audit_id, "ResponseComplete", "c")


def incompressible(size: int) -> AuditEvent:
    return event(orjson.dumps({"kind": "Event", "blob": os.urandom(size).hex()}))


# --- round trips and density ----------------------------------------------------------------

@pytest.mark.parametrize(
    "limits",
    [DEFAULT_LIMITS, Limits(max_message_chars=4096), Limits(max_inflated=64 * 1024)],
    ids=["default", "4 KiB messages", "64 KiB inflated"],
)
def test_generated_round_trip_within_limits(generated: list[AuditEvent], limits: Limits) -> None:
    messages = pack(generated, limits=limits)
    assert all(len(m.text) <= limits.max_message_chars for m in messages)
    back = read_all(messages, limits)
    assert Counter(back) == Counter(generated)
    assert back == generated  # order is kept too


def test_generated_packs_at_least_50_events_per_message(generated: list[AuditEvent]) -> None:
    messages = pack(generated)
    assert len(generated) / len(messages) >= 50
    assert all(m.blob is None for m in messages)


def test_pack_nothing() -> None:
    assert pack([]) == []


# --- claim check ----------------------------------------------------------------------------

def test_event_too_big_for_a_message_goes_to_a_blob() -> None:
    small, big = event(audit_id="s"), incompressible(60_000)
    messages = pack([small, big, small])
    assert [(m.count, m.blob is not None) for m in messages] == [(1, False), (1, True), (1, False)]
    claim = messages[1]
    assert claim.blob is not None
    name, data = claim.blob
    assert name == f"v1/{claim.message_id}.zlib"
    unpacked = unpack(claim.text)
    assert unpacked.events is None
    assert unpacked.blob == BlobRef(name, unpacked.blob.sha256, 1)  # type: ignore[union-attr]
    assert unpack_blob(unpacked.blob, data) == [big]  # type: ignore[arg-type]


def test_events_around_claim_checks_still_share_messages() -> None:
    """A big event must not roll its message back to the first line packed before it."""
    smalls = [event(audit_id=f"s{i}") for i in range(49)]
    events = [incompressible(60_000), *smalls, incompressible(60_000), *smalls]
    messages = pack(events)
    assert [(m.count, m.blob is not None) for m in messages] == [
        (1, True), (49, False), (1, True), (49, False)]
    assert read_all(messages) == events


def test_tampered_blob_is_poison() -> None:
    (claim,) = pack([incompressible(60_000)])
    ref = unpack(claim.text).blob
    assert ref is not None
    other = zlib.compress(b"[1,\"a\",\"b\",null]\t{}\n")
    with pytest.raises(PoisonMessage) as caught:
        unpack_blob(ref, other)
    assert caught.value.reason is PoisonReason.DIGEST_MISMATCH


@pytest.mark.parametrize(
    ("events", "limits", "match"),
    [
        ([event(b'{"a":\n1}')], DEFAULT_LIMITS, "newline"),
        ([incompressible(2000)], Limits(max_inflated=1000), "max_inflated"),
    ],
)
def test_pack_rejects_unframeable_events(
    events: list[AuditEvent], limits: Limits, match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        pack(events, limits=limits)


def test_limits_must_leave_room_for_a_header() -> None:
    with pytest.raises(ValueError, match="too small"):
        Limits(max_message_chars=200)


# --- poison ---------------------------------------------------------------------------------





ID = "a" * 32
PAYLOAD = b'[1,"a","ResponseComplete","c"]\t{"kind":"Event"}\n'
BODY = zlib.compress(PAYLOAD)
POISON = [
    ("not base64", "!!!not base64", PoisonReason.BAD_BASE64),
    ("not ascii", "é" * 8, PoisonReason.BAD_BASE64),
    ("header not json", base64.b64encode(b"{v:1}\n" + BODY).decode(), PoisonReason.BAD_HEADER),
    ("header not object", frame([1], BODY), PoisonReason.BAD_HEADER),  # type: ignore[arg-type]
    ("version 2", frame(header_for(PAYLOAD, v=2), BODY), PoisonReason.UNSUPPORTED_VERSION),
    ("version missing", frame({"n": 1}, BODY), PoisonReason.UNSUPPORTED_VERSION),
    ("count missing", frame(header_for(PAYLOAD, n=None), BODY), PoisonReason.BAD_HEADER),
    ("count zero", frame(header_for(PAYLOAD, n=0), BODY), PoisonReason.BAD_HEADER),
    ("count a bool", frame(header_for(PAYLOAD, n=True), BODY), PoisonReason.BAD_HEADER),
    ("blob not a string", frame(header_for(PAYLOAD, blob=3)), PoisonReason.BAD_HEADER),
    ("claim check with body", frame(header_for(PAYLOAD, blob="b"), BODY),
     PoisonReason.BAD_HEADER),
    ("count too high", frame(header_for(PAYLOAD, n=2), BODY), PoisonReason.COUNT_MISMATCH),
    ("digest tampered", frame(header_for(b"other"), BODY), PoisonReason.DIGEST_MISMATCH),
    ("no body", frame(header_for(PAYLOAD)), PoisonReason.BAD_COMPRESSION),
    ("body not zlib", frame(header_for(PAYLOAD), b"plain"), PoisonReason.BAD_COMPRESSION),
    ("body cut", frame(header_for(PAYLOAD), BODY[:-6]), PoisonReason.BAD_COMPRESSION),
    ("trailing data", frame(header_for(PAYLOAD), BODY + b"xx"), PoisonReason.BAD_COMPRESSION),
    ("line without tab", frame(header_for(b"{}\n"), zlib.compress(b"{}\n")),
     PoisonReason.BAD_INDEX),
    ("metadata not json", frame(header_for(b"[1,\t{}\n"), zlib.compress(b"[1,\t{}\n")),
     PoisonReason.BAD_INDEX),
    ("metadata splits", frame(header_for(b"1],[2\t{}\n"), zlib.compress(b"1],[2\t{}\n")),
     PoisonReason.BAD_INDEX),
    ("metadata short", frame(header_for(b"[1,\"a\"]\t{}\n"), zlib.compress(b"[1,\"a\"]\t{}\n")),
     PoisonReason.BAD_INDEX),
    ("metadata mistyped", frame(header_for(b"[1,2,3,4]\t{}\n"),
                                zlib.compress(b"[1,2,3,4]\t{}\n")), PoisonReason.BAD_INDEX),
    ("no final newline", frame(header_for(PAYLOAD[:-1]), zlib.compress(PAYLOAD[:-1])),
     PoisonReason.COUNT_MISMATCH),
    # Event data that is not an audit event object never reaches Falco.
    *[(f"event data {name}", frame(header_for(p := b'[1,"a","b",null]\t' + data + b"\n"),
                                   zlib.compress(p)), PoisonReason.BAD_EVENT)
      for name, data in [("not json", b"{nope"), ("an array", b"[1]"), ("empty", b""),
                         ("a string", b'"x"')]],
    # Claim checks name exactly v1/<own id>.zlib: nothing else can be read and deleted.
    *[(f"claim check {name}", frame(header_for(PAYLOAD, id=ID, blob=blob)),
       PoisonReason.CLAIMCHECK_INVALID)
      for name, blob in [("empty name", ""), ("other container", "../other/x.zlib"),
                         ("another message's blob", f"v1/{'b' * 32}.zlib"),
                         ("dot segments", f"v1/../v1/{ID}.zlib"),
                         ("absolute url", f"https://evil.blob.core.windows.net/c/v1/{ID}.zlib"),
                         ("deadletter prefix", f"deadletter/v1/{ID}")]],
    ("claim check of an id the writer never makes",
     frame(header_for(PAYLOAD, id="../x", blob="v1/../x.zlib")), PoisonReason.CLAIMCHECK_INVALID),
    ("claim check of several events", frame(header_for(PAYLOAD, id=ID, n=2,
                                                       blob=f"v1/{ID}.zlib")),
     PoisonReason.CLAIMCHECK_INVALID),
]


@pytest.mark.parametrize(("text", "reason"), [p[1:] for p in POISON], ids=[p[0] for p in POISON])
def test_poison_messages(text: str, reason: PoisonReason) -> None:
    with pytest.raises(PoisonMessage) as caught:
        unpack(text)
    assert caught.value.reason is reason


def test_handmade_frame_is_readable() -> None:
    """Guards the POISON table: the untampered frame it mutates must be valid."""
    assert unpack(frame(header_for(PAYLOAD), BODY)).events == [event()]


@pytest.mark.parametrize(
    ("inflated", "limit"),
    [(DEFAULT_LIMITS.max_inflated + 1, DEFAULT_LIMITS.max_inflated), (4097, 4096)],
)
def test_compression_bomb_stops_at_the_limit(inflated: int, limit: int) -> None:
    payload = b"\0" * inflated
    text = frame(header_for(payload), zlib.compress(payload, 9))
    assert len(text) < DEFAULT_LIMITS.max_message_chars
    with pytest.raises(PoisonMessage) as caught:
        unpack(text, limits=Limits(max_inflated=limit))
    assert caught.value.reason is PoisonReason.TOO_LARGE


def _peak(read: Any) -> int:
    """Bytes allocated at the peak of `read()` beyond what was allocated before it."""
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        with contextlib.suppress(PoisonMessage):
            read()
        return tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()


def test_decoding_holds_the_counted_events_and_one_line_in_flight() -> None:
    """A message costs its events' bytes plus about 0.7-0.8 KB an event (the Python
    objects: measured here at 2,000 and 1,459 events), where holding the payload whole,
    split and partitioned cost 4.9x the events' bytes; a 16 MiB line of zeros 16.9 MB (was
    33.6 MB); a 64 KiB message inflating to 800,000 lines its header does not count 0.4 MB
    (was 68 MB)."""
    for pad in (64, 1200):
        events = audit_events_for_memory(pad)
        (message, *_) = pack(events)
        need = sum(len(e.data) for e in events[:message.count])
        assert _peak(lambda m=message: unpack(m.text)) < need + 1024 * message.count + (256 << 10)
    zeros = b"\0" * (DEFAULT_LIMITS.max_inflated + 1)
    bomb = frame(header_for(zeros), zlib.compress(zeros, 9))
    assert _peak(lambda: unpack(bomb)) < DEFAULT_LIMITS.max_inflated + (1 << 20)
    lines = b'[1,"a","b",null]\t{}\n' * (DEFAULT_LIMITS.max_inflated // 20)
    uncounted = frame(header_for(lines, n=1), zlib.compress(lines, 9))
    assert len(uncounted) < DEFAULT_LIMITS.max_message_chars
    assert _peak(lambda: unpack(uncounted)) < 1 << 20


def audit_events_for_memory(pad: int) -> list[AuditEvent]:
    return [AuditEvent(orjson.dumps({"kind": "Event", "auditID": f"m-{i}", "stage": "x",
                                     "filler": f"{i:x}" * pad}), i, f"m-{i}", "x", "c")
            for i in range(2000)]


def test_claim_check_blob_over_the_download_bound_is_poison() -> None:
    """The reader downloads max_blob_bytes + 1 at most; that much is refused unread."""
    (claim,) = pack([incompressible(60_000)])
    ref = unpack(claim.text).blob
    assert ref is not None
    limits = Limits(max_inflated=4096)
    with pytest.raises(PoisonMessage) as caught:
        unpack_blob(ref, b"\0" * (limits.max_blob_bytes + 1), limits=limits)
    assert caught.value.reason is PoisonReason.TOO_LARGE


def test_blob_bound_holds_an_incompressible_claim_check() -> None:
    limits = Limits(max_inflated=1 << 20)
    data = random.Random(1).randbytes(limits.max_inflated)
    assert len(zlib.compress(data, 1)) <= limits.max_blob_bytes


def test_payload_of_exactly_the_limit_is_read() -> None:
    limits = Limits(max_inflated=len(PAYLOAD))
    assert unpack(frame(header_for(PAYLOAD), BODY), limits=limits).count == 1


# --- property -------------------------------------------------------------------------------



@settings(max_examples=200, deadline=None)
@given(events=st.lists(AUDIT_EVENTS, max_size=40), chars=st.sampled_from([1024, 2048, 65536]))
def test_round_trip_property(events: list[AuditEvent], chars: int) -> None:
    limits = Limits(max_message_chars=chars)
    messages = pack(events, limits=limits)
    assert all(len(m.text) <= chars for m in messages)
    assert read_all(messages, limits) == events




@settings(max_examples=400, deadline=None)
@given(text=tampered() | st.text(max_size=200))
def test_reader_never_raises_anything_but_poison(text: str) -> None:
    """Whatever a message holds, the reader returns audit event objects or raises
    PoisonMessage (which the queue source dead-letters); nothing else escapes."""
    try:
        unpacked = unpack(text)
    except PoisonMessage:
        return
    for event in unpacked.events or []:
        assert isinstance(orjson.loads(event.data), dict)
    if unpacked.blob is not None:
        assert unpacked.blob.name == f"v1/{unpacked.message_id}.zlib"
        with contextlib.suppress(PoisonMessage):
            unpack_blob(unpacked.blob, os.urandom(64))
