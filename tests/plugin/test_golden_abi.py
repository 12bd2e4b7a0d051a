"""The built .so, driven through its C ABI by a non-Python host, against the golden values.

The same cases as tests/extractor/test_fields_golden.py (and the same named exceptions),
one field per plugin_extract_fields call as libsinsp's filterchecks do, and again with all
fields in one call.
"""

from __future__ import annotations

import json
from functools import cache

import orjson
import pytest

from harness import host
from plugin.k8saudit_aks import __version__
from tests import FIXTURES
from tests.support.golden import NAMED, SOURCES, expected, golden_keys, load

K8SAUDIT_INFO = FIXTURES / "golden" / "k8saudit-0.18.0.plugin-info.json"




@cache
def through_abi(source: str, multi: bool) -> list[dict]:
    events = FIXTURES / "audit-events" / f"{source}.jsonl"
    return host.extract(host.LIB, events, golden_keys(source), multi=multi)


def test_identity() -> None:
    info = host.info(host.LIB, "3.0.0")
    assert info["compatible"]
    assert (info["name"], info["version"], info["id"], info["event_source"]) == (
        "k8saudit-aks", __version__, 21, "k8s_audit")
    assert info["required_api_version"] == "3.0.0"
    assert info["schema_type"] == 1
    json.loads(info["init_schema"])


def test_fields_are_upstream_fields() -> None:
    upstream = json.loads(K8SAUDIT_INFO.read_text())["fields"]
    assert host.info(host.LIB)["fields"] == upstream


@pytest.mark.parametrize("source", SOURCES)
def test_one_field_per_call_matches_golden(source: str) -> None:
    rows = through_abi(source, multi=False)
    cases = load(source)
    assert len(rows) == len(cases)
    mismatches = []
    for row, (evtnum, line, values) in zip(rows, cases, strict=True):
        assert row["evtnum"] == evtnum
        try:
            event = orjson.loads(line)
        except orjson.JSONDecodeError:
            assert all(v == {"rc": 1} for v in row["values"].values())
            continue
        for key, golden in values.items():
            got, want = row["values"][key], expected(key, event, golden)
            if got != want and (source, evtnum, key) not in NAMED:
                mismatches.append((evtnum, key, want, got))
    assert mismatches == []


@pytest.mark.parametrize("source", SOURCES)
def test_many_fields_per_call_agree(source: str) -> None:
    assert through_abi(source, multi=True) == through_abi(source, multi=False)
