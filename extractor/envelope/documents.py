"""The documents of a replay file, read in bounded chunks, so memory does not grow with the
file and the first event is out before the file is read to its end.

A file holds JSON lines (raw audit events, Event Hub bodies, a storage archive's
`PT1H.json`), or one JSON value spread over lines: an array of events or records, an Event
Hub body `{"records": [...]}`, an `EventList` `{"items": [...]}`, or a single pretty-printed
event. The elements of such an array are yielded one by one; any other value whole. A
document larger than `max_bytes` is not held: it is yielded as a :class:`TooLarge`.

The same split serves bytes already in memory (`split`): the envelope walker splits an
Event Hub body that is not JSON as a whole with it, so one hostile record costs itself.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

import orjson

# Read size. Below glibc's mmap threshold (128 KiB): a larger buffer, once freed, raises that
# threshold, and the heap the next ones then come from grows with the file (measured by
# falco_host: +2.7 MiB from 5,000 to 50,000 events at 1 MiB, flat at 64 KiB).
CHUNK = 64 * 1024
# A whole string, a string the buffer cuts short (more data is needed), or a character
# that structures the value; anything else (numbers, literals, blanks) lies between them.
_TOKEN = re.compile(rb'(?P<string>"(?:[^"\\]|\\.)*")'
                    rb'|(?P<cut>"(?:[^"\\]|\\.)*(?P<escape>\\)?\Z)'
                    rb"|(?P<char>[\[\]{}:,])", re.DOTALL)
_ARRAY_KEYS = (b'"records"', b'"items"')


@dataclass(frozen=True, slots=True)
class TooLarge:
    """A document over the bound, skipped unread: where it starts in the file."""

    offset: int

    def __str__(self) -> str:
        return f"a document at byte {self.offset}"


Document = bytes | TooLarge


class Readable(Protocol):
    def read(self, size: int, /) -> bytes: ...


def documents(stream: Readable, max_bytes: int) -> Iterator[Document]:
    """Every document of `stream`, holding about `max_bytes` and a chunk at most."""
    head = stream.read(CHUNK)
    while (b"\n" not in head.lstrip() and len(head) <= max_bytes
           and (more := stream.read(CHUNK))):
        head += more  # the whole first line, to tell the shapes apart
    first_line = head.lstrip().split(b"\n", 1)[0]
    if first_line[:1] in (b"[", b"{") and not _is_json(first_line):
        return _Value(stream, head, max_bytes).documents()
    return _lines(stream, head, max_bytes)


def split(data: bytes) -> list[bytes]:
    """The documents of bytes held in memory, as `documents` finds them in a file."""
    return [d for d in documents(io.BytesIO(data), len(data) + 1) if isinstance(d, bytes)]


def _is_json(data: bytes) -> bool:
    try:
        orjson.loads(data)
    except orjson.JSONDecodeError:
        return False
    return True


def _lines(stream: Readable, data: bytes, max_bytes: int) -> Iterator[Document]:
    offset = 0  # of data[0] in the stream
    skipping = False  # inside a line over the bound, since its TooLarge was yielded
    while data:
        more = stream.read(CHUNK)
        end = len(data) if not more else data.rfind(b"\n") + 1
        for line in data[:end].splitlines(keepends=True):
            if skipping:
                skipping = not line.endswith(b"\n")
            elif line.strip():
                yield line.rstrip(b"\r\n")
        rest = data[end:]
        if not skipping and len(rest) > max_bytes:  # a line longer than any document
            yield TooLarge(offset + end)
            skipping, rest = True, b""
        elif skipping:
            rest = b""
        offset += len(data) - len(rest)
        data = rest + more


class _Value:
    """A tokenizer over a sliding buffer: each element of the value's array (or the whole
    value) becomes a document once its end is read."""

    def __init__(self, stream: Readable, head: bytes, max_bytes: int) -> None:
        self.stream, self.data, self.max_bytes = stream, head, max_bytes
        self.base = 0  # stream offset of data[0]
        self.start: int | None = None  # of the document being read, in data
        self.too_large: TooLarge | None = None  # the document being read is over the bound

    def documents(self) -> Iterator[Document]:
        depth = 0
        target: int | None = None  # the depth of the array whose elements are documents
        key, colon = b"", False  # the last member name at depth 1, and ":" after it
        pos = 0
        while True:
            match = _TOKEN.search(self.data, pos)
            if match is None or match.lastgroup == "cut":
                pos = self._more(pos, match)
                if pos < 0:
                    break
                continue
            pos = match.end()
            if match.lastgroup == "string":
                key, colon = (match.group(), False) if depth == 1 else (key, False)
                continue
            char = match.group()
            if char in b"[{":
                depth += 1
                if depth == 1:
                    self.start = None if char == b"[" else match.start()
                    target = 1 if char == b"[" else None
                elif depth == 2 and char == b"[" and colon and key in _ARRAY_KEYS:
                    target, self.start = 2, None
                if target is not None and depth == target:
                    self.start = pos  # the first element begins after "["
            elif char in b"]}":
                if target is not None and depth == target:  # the documents' array ends
                    yield from self._emit(match.start())
                    target = None
                depth -= 1
                if depth == 0:
                    if self.start is not None:  # a value without such an array: whole
                        yield from self._emit(pos)
                    return
            elif char == b"," and target is not None and depth == target:
                yield from self._emit(match.start())
                self.start = pos
            colon = char == b":" and depth == 1
        if self.start is not None and self.data[self.start:].strip():
            yield from self._emit(len(self.data))  # cut short: the parser will say so

    def _emit(self, end: int) -> Iterator[Document]:
        if self.too_large is not None:
            yield self.too_large
        elif self.start is not None and (document := self.data[self.start:end].strip()):
            yield document
        self.start, self.too_large = None, None

    def _more(self, pos: int, cut: re.Match[bytes] | None) -> int:
        """Read on, keeping only what the document being read needs (nothing of one over
        the bound); the new `pos`, or -1 at the end of the stream."""
        more = self.stream.read(CHUNK)
        if not more:
            return -1
        if self.start is not None and self.too_large is None and (
                len(self.data) - self.start > self.max_bytes):
            self.too_large = TooLarge(self.base + self.start)
        if self.too_large is None:
            keep = pos if self.start is None else self.start
            self.base += keep
            if self.start is not None:
                self.start -= keep
            self.data = self.data[keep:] + more
            return pos - keep
        # Over the bound: drop everything read, but stay inside a string cut short.
        carry = b""
        if cut is not None:
            carry = b'"\\' if cut.group("escape") else b'"'
        self.base += len(self.data) - len(carry)
        self.data, self.start = carry + more, 0
        return 0
