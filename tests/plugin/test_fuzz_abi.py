"""No JSON input crashes or hangs the host, or fails extraction of a well-formed event.

Property-based: arbitrary JSON shapes, and the fixture events with subtrees swapped for
arbitrary JSON, through the built .so (every field, every argument the golden files use,
all in one extract call, and again one field per call).
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness import host
from tests import FIXTURES
from tests.plugin.ctypes_abi import Plugin
from tests.support.golden import golden_keys

AUDIT_KEYS = ["kind", "auditID", "stage", "verb", "user", "username", "groups", "objectRef",
              "requestObject", "responseObject", "spec", "containers", "securityContext",
              "volumes", "hostPath", "path", "annotations", "sourceIPs", "requestURI",
              "responseStatus", "code", "subjects", "rules", "ports", "image", "name",
              "namespace", "impersonatedUser", "privileged", "hostNetwork", "data"]

scalars = (st.none() | st.booleans() | st.integers(-(2**70), 2**70)
           | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20))
json_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=5)
    | st.dictionaries(st.sampled_from(AUDIT_KEYS) | st.text(max_size=8), children, max_size=6),
    max_leaves=40,
)


@pytest.fixture(scope="module")
def plugin() -> Iterator[Plugin]:
    p = Plugin(host.LIB)
    yield p
    p.close()


@pytest.fixture(scope="module")
def keys() -> list[str]:
    return golden_keys("generated")


def fixture_events() -> list[dict]:
    lines = (FIXTURES / "audit-events" / "generated.jsonl").read_bytes().splitlines()
    return [orjson.loads(line) for line in lines[:400]]  # the first 400 are well-formed


def swap(value: object, rng: random.Random, replacement: object) -> object:
    """`value` with one random subtree replaced."""
    if isinstance(value, dict) and value and rng.random() < 0.8:
        key = rng.choice(list(value))
        return {**value, key: swap(value[key], rng, replacement)}
    if isinstance(value, list) and value and rng.random() < 0.8:
        i = rng.randrange(len(value))
        return [*value[:i], swap(value[i], rng, replacement), *value[i + 1:]]
    return replacement


FUZZ = settings(max_examples=300, deadline=2000, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(doc=json_values)
def test_arbitrary_json(plugin: Plugin, keys: list[str], doc: object) -> None:
    rc, _ = plugin.extract(json.dumps(doc).encode(), plugin.requests(keys))
    assert rc in (0, 1)


@FUZZ
@given(seed=st.integers(0, 2**32), replacement=json_values)
def test_fixture_events_with_swapped_types(plugin: Plugin, keys: list[str], seed: int,
                                           replacement: object) -> None:
    rng = random.Random(seed)
    event = swap(rng.choice(fixture_events()), rng, replacement)
    data = json.dumps(event).encode()
    requests = plugin.requests(keys)
    rc, together = plugin.extract(data, requests)
    assert rc in (0, 1)
    one_by_one = [plugin.extract(data, plugin.requests([k]))[1][0] for k in keys[:40]]
    assert rc == 1 or one_by_one == together[:40]


@pytest.mark.parametrize("data", [
    b"", b"null", b"[]", b"{}", b"\xff\xfe", b"{" * 5000 + b"}" * 5000,
    b'{"kind":"Event","requestObject":' + b"[" * 3000 + b"]" * 3000 + b"}",
    b'{"auditID":"\\u0000x","user":{"username":"a\\u0000b"}}',
])
def test_hostile_payloads(plugin: Plugin, keys: list[str], data: bytes) -> None:
    rc, _ = plugin.extract(data, plugin.requests(keys))
    assert rc in (0, 1)


def test_well_formed_events_never_fail(plugin: Plugin, keys: list[str]) -> None:
    requests = plugin.requests(keys)
    for line in (FIXTURES / "audit-events" / "falco-traces.jsonl").read_bytes().splitlines():
        try:
            orjson.loads(line)
        except orjson.JSONDecodeError:
            continue
        rc, _ = plugin.extract(line, requests)
        assert rc == 0
