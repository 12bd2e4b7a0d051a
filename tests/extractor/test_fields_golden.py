"""`extractor.fields.table` against what the Go k8saudit 0.18.0 plugin returned for the same events.

Every golden value is checked: None for "no value" (and for upstream crashes), the list of
strings, or `ExtractError` for upstream failures (rc 1). The only differences allowed are
`ka.sourceips` (fixed on purpose, checked against its own expectation) and `NAMED`.
"""

from __future__ import annotations

import json
import subprocess
import sys
from functools import cache
from pathlib import Path

import orjson
import pytest

from extractor.fields.compiled import compile_all
from extractor.fields.markdown import markdown_table
from extractor.fields.table import ExtractError, compile_field, fields_json
from tests.support.golden import FIELD_IDS, GOLDEN, NAMED, SOURCES, expected, load, parse_key

ROOT = Path(__file__).resolve().parents[2]






@cache
def extractor(key: str):
    return compile_field(*parse_key(key))




def run(key: str, event: object) -> object:
    """Our result in the golden file's notation."""
    try:
        return extractor(key)(event)
    except ExtractError:
        return {"rc": 1}






@pytest.mark.parametrize("source", SOURCES)
def test_matches_golden(source: str) -> None:
    mismatches, named_seen, checked = [], set(), 0
    for evtnum, line, values in load(source):
        try:
            event = orjson.loads(line)
        except orjson.JSONDecodeError:
            # not JSON: the caller's parser fails the call, as upstream does for every field
            assert all(v == {"rc": 1} for v in values.values())
            continue
        for key, golden in values.items():
            checked += 1
            got, want = run(key, event), expected(key, event, golden)
            if got == want:
                continue
            if (source, evtnum, key) in NAMED:
                named_seen.add((source, evtnum, key))
                continue
            mismatches.append((evtnum, key, want, got))
    assert checked > 10_000
    assert mismatches == []
    assert named_seen == {k for k in NAMED if k[0] == source}, "stale named exception"


def test_sourceips_reads_top_level_addresses() -> None:
    event = {"auditID": "a", "sourceIPs": ["10.0.0.1", "::1"], "requestObject": {}}
    ips = FIELD_IDS["ka.sourceips"]
    assert compile_field(ips, None)(event) == ["10.0.0.1", "::1"]
    assert compile_field(ips, 1)(event) == ["::1"]
    assert compile_field(ips, 2)(event) is None


def test_fields_json_is_upstream_field_list() -> None:
    info = json.loads((GOLDEN / "k8saudit-0.18.0.plugin-info.json").read_text())
    assert json.loads(fields_json()) == info["fields"]


def test_docs_table_is_up_to_date() -> None:
    docs = (ROOT / "docs" / "fields.md").read_text()
    assert markdown_table() in docs, \
        "run: python -m extractor.fields.markdown --markdown docs/fields.md"
    printed = subprocess.run(
        [sys.executable, "-m", "extractor.fields.markdown", "--markdown"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert printed == markdown_table()


@pytest.mark.parametrize("source", SOURCES)
def test_compile_all_equals_each_closure(source: str) -> None:
    """compile_all (inlined key paths, shared lookups) gives each closure's own result."""
    cases = load(source)
    keys = sorted({key for _, _, values in cases for key in values})
    keys.append("ka.verb[0]")  # an argument the field does not take: a failing pair
    requests = [parse_key(key) for key in keys]
    run_all = compile_all(requests)

    def each(key: str, event: object) -> object:
        try:
            return compile_field(*parse_key(key))(event)
        except ExtractError as exc:
            return ("failed", str(exc))

    for _, line, _ in cases:
        try:
            event = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue
        for doc in (event, [event], "text", 1):
            got = [("failed", str(r)) if isinstance(r, Exception) else r for r in run_all(doc)]
            assert got == [each(key, doc) for key in keys]


# Found by tests/plugin/test_differential_upstream.py against upstream 0.18.0, pinned here.
UPSTREAM_SHAPES = [
    ("ka.req.binding.subjects.user_names", {"requestObject": {"subjects": "/etc"}}, {"rc": 1}),
    ("ka.req.binding.subjects.user_names", {"requestObject": {"subjects": None}}, {"rc": 1}),
    ("ka.req.binding.subjects.group_names", {"requestObject": {"subjects": {"kind": "Group"}}},
     {"rc": 1}),
    ("ka.req.binding.subjects.user_names", {"requestObject": [{}, {"x": 1}]}, None),
    ("ka.req.binding.subjects.user_names",
     {"requestObject": {"subjects": [{"kind": "User", "name": "u"}]}}, ["u"]),
    ("ka.target.pod.name", {"objectRef": {"resource": "pods", "subresource": ""},
                            "responseObject": {"metadata": {"name": "x"}}}, ["x"]),
    ("ka.target.pod.name", {"objectRef": {"resource": "pods", "subresource": 5},
                            "responseObject": {"metadata": {"name": "x"}}}, ["x"]),
    ("ka.target.pod.name", {"objectRef": {"resource": "pods", "subresource": "exec"},
                            "responseObject": {"metadata": {"name": "x"}}}, None),
]


@pytest.mark.parametrize(("key", "event", "want"), UPSTREAM_SHAPES)
def test_shapes_upstream_answers_differently(key: str, event: dict, want: object) -> None:
    assert run(key, {"kind": "Event", "auditID": "a", **event}) == want
