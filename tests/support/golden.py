"""What the Go k8saudit 0.18.0 plugin extracted from the fixture events (`golden/`), and
what we return instead where we differ on purpose: the expectations of every field test,
in process or through the .so."""

from __future__ import annotations

import json
from functools import cache

from extractor.fields.access import to_string
from extractor.fields.table import FIELDS
from tests import FIXTURES

GOLDEN = FIXTURES / "golden"


SOURCES = ("falco-traces", "generated")


FIELD_IDS = {f.name: i for i, f in enumerate(FIELDS)}


_ESCAPED_SOURCE = (
    "the event text escapes a non-ASCII character (\\u00fc); upstream echoes the source "
    "bytes of objects, a parsed value no longer tells how its text was escaped, and we "
    "render non-ASCII as Go's encoding/json (the API server) writes it: unescaped"
)


NAMED: dict[tuple[str, int, str], str] = {
    ("generated", 199, "ka.req.binding.subjects"): _ESCAPED_SOURCE,
    ("generated", 345, "ka.req.binding.subjects"): _ESCAPED_SOURCE,
    ("generated", 686, "ka.req.binding.subjects"): _ESCAPED_SOURCE,
    ("generated", 766, "ka.req.binding.subjects"): _ESCAPED_SOURCE,
}


def parse_key(key: str) -> tuple[int, int | str | None]:
    """`name` or `name[arg]` -> (field id, arg): digits are an index, anything else a key."""
    name, bracket, arg = key.partition("[")
    if not bracket:
        return FIELD_IDS[name], None
    arg = arg[:-1]
    return FIELD_IDS[name], int(arg) if arg.isdigit() else arg


def load(source: str) -> list[tuple[int, bytes, dict]]:
    lines = (FIXTURES / "audit-events" / f"{source}.jsonl").read_bytes().split(b"\n")
    events = [line for line in lines if line.strip()]
    golden = (GOLDEN / f"{source}.k8saudit-0.18.0.jsonl").read_text().splitlines()
    return [
        (record["evtnum"], events[record["evtnum"] - 1], record["values"])
        for record in map(json.loads, golden)
    ]


def expected(key: str, event: object, golden: object) -> object:
    if key.startswith("ka.sourceips"):
        return expected_source_ips(parse_key(key)[1], event)
    if isinstance(golden, dict) and golden.get("crash"):
        return None
    return golden


def expected_source_ips(index: int | None, event: dict) -> list[str] | None:
    """Our deliberate `ka.sourceips`: the top-level `sourceIPs` array, elements as JSON text."""
    ips = event.get("sourceIPs")
    if not isinstance(ips, list):
        return None
    texts = [ip if isinstance(ip, str) else to_string(ip) for ip in ips]
    if index is not None:
        texts = texts[index : index + 1]
    return texts or None


@cache
def golden_keys(source: str) -> list[str]:
    keys: dict[str, None] = {}
    for _, _, values in load(source):
        keys.update(dict.fromkeys(values))
    return list(keys)
