"""Hypothesis strategies and builders for hostile input: AKS records and Event Hub bodies
as anyone able to shape an audit event could make them, and queue messages tampered with.
The parser's, the reader's, the function's and the queue source's tests all draw from them."""

from __future__ import annotations

import base64
import hashlib
import zlib
from typing import Any

import orjson
from hypothesis import strategies as st

from extractor.envelope.normalize import AuditEvent
from extractor.message.codec import Limits, pack

HEAD = ('{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Request","auditID":"h",'
        '"stage":"ResponseComplete","verb":"create","user":{"username":"mallory"},')


TIME = '"stageTimestamp":"2024-01-01T00:00:00Z"'


RID = "/SUBSCRIPTIONS/S/RESOURCEGROUPS/RG/PROVIDERS/MICROSOFT.CONTAINERSERVICE/MANAGEDCLUSTERS/C1"


def deep(levels: int) -> str:
    return '{"a":' * levels + "1" + "}" * levels


def record(log: Any, time: str | None = "2024-01-01T00:00:05Z") -> dict[str, Any]:
    rec: dict[str, Any] = {"category": "kube-audit", "resourceId": RID,
                           "properties": {"log": log}}
    if time is not None:
        rec["time"] = time
    return rec


JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats(allow_nan=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=12,
)


EVENT_DICTS = st.fixed_dictionaries(
    {"kind": st.sampled_from(["Event", "Pod"]), "auditID": st.text(max_size=8),
     "stage": st.sampled_from(["ResponseComplete", "RequestReceived"])},
    optional={"stageTimestamp": st.sampled_from(["2024-01-01T00:00:00Z", "junk", 5]),
              "requestReceivedTimestamp": st.sampled_from(["2024-01-01T00:00:00.5Z", ""]),
              "annotations": JSON, "requestObject": JSON, "user": JSON},
)


@st.composite
def logs(draw: st.DrawFn) -> Any:
    """A log as AKS could hand it over: whole, cut anywhere, salted with hostile text."""
    text = orjson.dumps(draw(EVENT_DICTS)).decode()
    salt = draw(st.sampled_from(["", deep(400), '"\\ud800"', "1" * 400, "NaN", "[" * 1100]))
    if salt:
        at = draw(st.integers(1, len(text) - 1))
        text = text[:at] + f'"z":{salt},' + text[at:]
    cut = draw(st.integers(0, len(text)))
    return draw(st.sampled_from([text, text[:cut], orjson.loads(text) if salt == "" else text,
                                 None, 7]))


RECORDS = st.one_of(
    st.builds(lambda log, category, rid, time: {"category": category, "resourceId": rid,
                                                "time": time, "properties": {"log": log}},
              logs(), st.sampled_from(["kube-audit", "kube-audit-admin", "guard", 3]),
              st.sampled_from([RID, "", 5, None]), st.sampled_from(["2024-01-01T00:00:00Z",
                                                                      "", None, []])),
    EVENT_DICTS, JSON,
)


DOCUMENTS = st.one_of(
    st.lists(RECORDS, max_size=5).map(lambda rs: orjson.dumps({"records": rs})),
    st.lists(RECORDS, max_size=3).map(orjson.dumps),
    RECORDS.map(orjson.dumps),
    st.binary(max_size=64),
)


# --- queue messages ----------------------------------------------------------------------

def frame(header: dict[str, Any], body: bytes = b"") -> str:
    raw = orjson.dumps(header) + (b"\n" + body if body else b"")
    return base64.b64encode(raw).decode()


def header_for(payload: bytes, **changes: Any) -> dict[str, Any]:
    header = {"v": 1, "id": "x", "n": 1, "sha256": hashlib.sha256(payload).hexdigest()}
    return {**header, **changes}


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


AUDIT_EVENTS = st.builds(
    AuditEvent,
    data=st.dictionaries(st.text(), JSON_VALUES, max_size=4).map(orjson.dumps),
    timestamp_ns=st.integers(0, 2**63 - 1),
    audit_id=st.text(),
    stage=st.text(),
    cluster=st.none() | st.text(),
)


@st.composite
def tampered(draw: st.DrawFn) -> str:
    """A real message with bytes of its frame, its header or its payload changed."""
    events = draw(st.lists(AUDIT_EVENTS, min_size=1, max_size=5))
    (message, *_) = pack(events, limits=Limits(max_message_chars=65536))
    frame_bytes = bytearray(base64.b64decode(message.text))
    how = draw(st.sampled_from(["flip", "cut", "header", "payload"]))
    if how == "flip":
        for _ in range(draw(st.integers(1, 4))):
            at = draw(st.integers(0, len(frame_bytes) - 1))
            frame_bytes[at] ^= draw(st.integers(1, 255))
    elif how == "cut":
        del frame_bytes[draw(st.integers(0, len(frame_bytes) - 1)):]
    elif how == "header":
        header = draw(st.dictionaries(st.sampled_from(["v", "id", "n", "sha256", "blob"]),
                                      JSON_VALUES, max_size=5))
        frame_bytes = bytearray(orjson.dumps(header) + b"\n" + bytes(frame_bytes).partition(
            b"\n")[2])
    else:  # a consistent frame around a payload of any bytes: only the lines can be wrong
        payload = draw(st.binary(max_size=200)) + b"\n"
        n = max(1, payload.count(b"\n"))
        return frame(header_for(payload, n=n, id="a" * 32), zlib.compress(payload))
    return base64.b64encode(bytes(frame_bytes)).decode()
