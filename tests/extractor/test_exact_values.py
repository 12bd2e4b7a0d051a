"""Values pass exactly: the event delivered for a record holds the numbers, strings and
nesting of its `properties.log`, compared value by value (numbers as exact decimals), on
generated events and on the cases a double or a 64-bit integer would change; what cannot
be carried is left out and named."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from extractor.envelope.normalize import (
    CLUSTER_ANNOTATION,
    OMITTED_ANNOTATION,
    TRUNCATED_ANNOTATION,
    parse_documents,
)
from extractor.envelope.numbers import Numbers, suspect

HEAD = ('{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"RequestResponse",'
        '"auditID":"a1","stage":"ResponseComplete",'
        '"stageTimestamp":"2026-11-18T00:56:24.719830Z","verb":"create","requestObject":')
RID = ("/subscriptions/s/resourceGroups/rg/providers/Microsoft.ContainerService/"
       "managedClusters/aks-1")


def exact(text: str | bytes) -> Any:
    return json.loads(text, parse_float=Decimal, parse_int=int)


def deliver(request_object: str) -> dict[str, Any]:
    record = {"category": "kube-audit", "resourceId": RID,
              "properties": {"log": HEAD + request_object + "}\n"}}
    batch = parse_documents([json.dumps({"records": [record]}).encode()])
    (event,) = batch.events
    assert isinstance(orjson.loads(event.data), dict)  # every reader downstream parses it
    delivered: dict[str, Any] = exact(event.data)
    return delivered


# --- generated events --------------------------------------------------------------------

@st.composite
def decimals(draw: st.DrawFn) -> str:
    """A JSON number with a fraction and/or an exponent, any number of digits, within a
    double's range."""
    whole = draw(st.from_regex(r"-?(0|[1-9][0-9]{0,30})", fullmatch=True))
    fraction = draw(st.from_regex(r"(\.[0-9]{1,30})?", fullmatch=True))
    digits = len(whole.lstrip("-"))
    exponent = draw(st.none() | st.integers(-320, 300 - digits))
    literal = whole + fraction + ("" if exponent is None else f"e{exponent:+d}")
    return literal if (fraction or exponent is not None) else literal + ".5"


SCALARS = st.one_of(
    st.integers(-(10**300), 10**300).map(str),
    decimals(),
    st.text().map(lambda s: json.dumps(s, ensure_ascii=False)),
    st.text().map(json.dumps),  # \uXXXX escapes
    st.sampled_from(["true", "false", "null"]),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4).map(lambda xs: "[" + ",".join(xs) + "]")
    | st.lists(st.tuples(st.text(max_size=8), inner), max_size=4).map(
        lambda kv: "{" + ",".join(json.dumps(k) + ":" + v for k, v in kv) + "}"),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(VALUES)
def test_generated_values_arrive_unchanged(value: str) -> None:
    delivered = deliver(value)
    assert delivered["requestObject"] == exact(value)
    assert delivered["annotations"] == {CLUSTER_ANNOTATION: "aks-1"}


# --- cases a double would change, and what cannot be carried -------------------------------

UNCHANGED = [
    "123456789012345678901234567890",  # beyond 64 bits: orjson made it 1.2345678901234568e+29
    "-9223372036854775809", "18446744073709551616",  # one past int64 / uint64
    "18446744073709551615", "-9223372036854775808",  # the limits themselves
    "1.0000000000000000001",  # more digits than a double holds
    "1e-400",  # below a double's range (a double would make it 0)
    "1E+2", "0.1", "-0.0", "2.5e-3",
    "9" * 308,  # the longest integer a double can hold
    '"\\u00fc \\ud83d\\ude00 \\" \\\\ \\/"',  # escapes of every kind
    '{"a":[1,{"b":[12345678901234567890123,0.30000000000000000001]}]}',
]


@pytest.mark.parametrize("value", UNCHANGED)
def test_numbers_orjson_would_change_arrive_unchanged(value: str) -> None:
    assert deliver(value)["requestObject"] == exact(value)


@pytest.mark.parametrize("value", ["1e400", "-1e400", "9" * 309, "9" * 5000,
                                   '"\\ud800"', '{"deep":' + "[" * 1100 + "]" * 1100 + "}"])
def test_what_cannot_be_carried_is_left_out_and_named(value: str) -> None:
    delivered = deliver(value)
    assert "requestObject" not in delivered
    assert delivered["annotations"][OMITTED_ANNOTATION] == "requestObject"
    assert TRUNCATED_ANNOTATION not in delivered["annotations"]  # the log was whole
    assert delivered["auditID"] == "a1"


def test_a_number_in_audit_id_is_not_an_id() -> None:
    record = {"category": "kube-audit", "resourceId": RID,
              "properties": {"log": HEAD.replace('"a1"', "12345678901234567890123") + "1}"}}
    batch = parse_documents([json.dumps({"records": [record]}).encode()])
    assert [d.reason for d in batch.drops] == ["missing_audit_id"]


@pytest.mark.parametrize(("text", "expected"), [
    ('{"a":1}', False), ('{"t":"2026-11-18T00:56:24.719830Z"}', False),
    ('{"n":1234567890123456}', True), ('{"n": 1e5}', True), ('[ 1.5E-3]', True),
    ('{"f":0.1234567890123456}', True), ('{"s":"x:1234567890123456,"}', True),
    ('{"f":-12.5e+3}', True), ('{"uid":"b02e-93db"}', False),
])
def test_suspect_finds_every_number_a_double_may_change(text: str, expected: bool) -> None:
    """A false alarm (a string that looks like a number) only costs the exact path."""
    assert suspect(HEAD + text + "}") is expected
    assert suspect(HEAD.replace("requestObject", "responseObject") + text + "}") is expected


def test_only_request_and_response_bodies_are_scanned() -> None:
    """Every other member of an audit event is typed by the API server (strings, ints)."""
    assert not suspect('{"kind":"Event","x":12345678901234567890123}')


def test_a_placeholder_cannot_be_forged() -> None:
    numbers = Numbers()
    kept = numbers.parse_int("1" * 30)
    forged = json.dumps({"x": "\x00" + "0" * 16 + ":0\x00", "n": kept})
    restored = numbers.restore(orjson.dumps(json.loads(forged)))
    assert json.loads(restored) == {"x": "\x00" + "0" * 16 + ":0\x00", "n": int("1" * 30)}
