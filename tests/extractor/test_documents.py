"""The replay splitter (extractor/documents.py), with chunks of a few bytes so that every
boundary falls inside strings, escapes and brackets: each shape gives its documents, an
oversized one is skipped with its offset, and memory holds about one document."""

from __future__ import annotations

import io
import json

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from extractor.envelope import documents as docs
from extractor.envelope.documents import TooLarge, documents, split

EVENTS = [{"kind": "Event", "auditID": f"a{i}", "s": 'x"],{}\\', "n": [1, {"k": "v"}]}
          for i in range(3)]
LINES = b"\n".join(orjson.dumps(e) for e in EVENTS)


def ids(found: list) -> list:
    return [d if isinstance(d, TooLarge) else orjson.loads(d).get("auditID", d)
            for d in found]


@pytest.fixture(autouse=True)
def tiny_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(docs, "CHUNK", 7)


@pytest.mark.parametrize(("name", "data", "expected"), [
    ("json lines", LINES, ["a0", "a1", "a2"]),
    ("blank lines and CRLF", b"\r\n\n" + LINES.replace(b"\n", b"\r\n\n") + b"\n\n",
     ["a0", "a1", "a2"]),
    ("pretty array", json.dumps(EVENTS, indent=2).encode(), ["a0", "a1", "a2"]),
    ("pretty body", json.dumps({"records": EVENTS}, indent=1).encode(), ["a0", "a1", "a2"]),
    ("EventList", json.dumps({"kind": "EventList", "metadata": {"x": [1]},
                              "items": EVENTS[:2]}, indent=1).encode(), ["a0", "a1"]),
    ("one pretty event", json.dumps(EVENTS[0], indent=2).encode(), ["a0"]),
    ("one line: the document", orjson.dumps({"records": EVENTS}),
     [orjson.dumps({"records": EVENTS})]),
])
def test_each_shape_gives_its_documents(name: str, data: bytes, expected: list) -> None:
    assert ids(list(documents(io.BytesIO(data), 1000))) == expected


def test_an_oversized_line_is_skipped_with_its_offset() -> None:
    big = b'{"big":"' + b"z" * 5000 + b'"}'
    data = orjson.dumps(EVENTS[0]) + b"\n" + big + b"\n" + orjson.dumps(EVENTS[2])
    found = list(documents(io.BytesIO(data), 1000))
    assert ids(found) == ["a0", TooLarge(data.index(big)), "a2"]


def test_an_oversized_element_is_skipped_even_inside_a_long_string() -> None:
    data = json.dumps([EVENTS[0], {"big": "y\\\\" * 3000}, EVENTS[2]], indent=1).encode()
    found = list(documents(io.BytesIO(data), 1000))
    assert ids(found)[0] == "a0" and ids(found)[2] == "a2"
    assert isinstance(found[1], TooLarge)
    assert data[found[1].offset:].lstrip().startswith(b'{\n  "big"')


def test_a_value_cut_short_ends_with_its_broken_remainder() -> None:
    data = json.dumps(EVENTS, indent=2).encode()
    found = split(data[: len(data) * 2 // 3])
    assert ids(found[:-1]) == ["a0"] and found[-1].startswith(b"{")


@given(st.binary(max_size=200))
def test_any_bytes_split_without_raising(data: bytes) -> None:
    assert all(isinstance(d, bytes) and d.strip() for d in split(data))
