"""The records of an Event Hub body that is not valid JSON as a whole, each on its own.

One hostile value in a record's envelope (a lone surrogate escape, a NaN, nesting beyond the
parser's limit) makes the whole body invalid JSON, though every other record in it is fine.
This split finds the elements of the body's ``records`` array by their brackets alone, so
each can be parsed, delivered or dead-lettered by itself.
"""

from __future__ import annotations

import re

_BODY = re.compile(rb'\A\s*\{\s*"records"\s*:\s*\[')
# A string (escapes included) is skipped whole; brackets and commas outside strings count.
_TOKEN = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[\]{},]', re.DOTALL)


def split_records(body: bytes) -> list[bytes] | None:
    """The raw elements of ``{"records": [...]}``, in order; the last one unfinished when
    the body ends inside it. None when the body does not start as such an object."""
    opening = _BODY.match(body)
    if opening is None:
        return None
    records: list[bytes] = []
    start = opening.end()
    depth = 0
    for token in _TOKEN.finditer(body, start):
        char = token.group()
        if char in (b"[", b"{"):
            depth += 1
        elif char in (b"]", b"}"):
            if depth == 0:  # the end of the records array
                _add(records, body[start:token.start()])
                return records
            depth -= 1
        elif char == b"," and depth == 0:
            _add(records, body[start:token.start()])
            start = token.end()
    _add(records, body[start:])  # cut short: what is left is one (broken) record
    return records


def _add(records: list[bytes], element: bytes) -> None:
    if element.strip():
        records.append(element.strip())
