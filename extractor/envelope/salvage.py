"""Recover the top-level members of a JSON object that AKS cut short, whatever it holds.

AKS cuts ``properties.log`` at a byte limit, leaving invalid JSON. The members before the
cut are still worth delivering: ``auditID``, ``stage``, ``user``, ``verb`` and
``objectRef`` come first in a Kubernetes audit event. The input is attacker-shaped (any user
who can create an object chooses its nesting and strings), so nothing here recurses on the
input's depth: a member whose value the decoder refuses (nested beyond Python's recursion
limit) is stepped over by a flat scanner and named in ``omitted`` instead of ending the
scan. Numbers go through `extractor.envelope.numbers`, so none changes on the way.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from extractor.envelope.numbers import Numbers

_WHITESPACE = re.compile(r"[ \t\n\r]*")
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BRACKET_OR_QUOTE = re.compile(r'[\[\]{}"]')
_SCALAR = re.compile(r'[^\s,\]}"\[{]+')


def _reject(name: str) -> Any:
    """NaN and Infinity are not JSON: no serializer downstream would write them back."""
    raise ValueError(f"{name} is not JSON")


@dataclass(slots=True)
class Salvaged:
    """The complete leading members, the keys of complete members left out, and whether
    the object ended (nothing was cut)."""

    members: dict[str, Any] = field(default_factory=dict)
    omitted: list[str] = field(default_factory=list)
    complete: bool = False


def salvage(text: str, numbers: Numbers) -> Salvaged:
    """Leading top-level members of a JSON object cut short (or whole), each complete, its
    numbers read through `numbers` so none changes.

    A member counts only when followed by ``,`` or ``}``, so a number or literal cut mid-way
    (``"code":20`` of ``200``) is not kept.
    """
    decoder = json.JSONDecoder(parse_constant=_reject, parse_int=numbers.parse_int,
                               parse_float=numbers.parse_float)
    found = Salvaged()
    pos = _skip(text, 0)
    if not text.startswith("{", pos):
        return found
    pos += 1
    while True:
        key_match = _STRING.match(text, _skip(text, pos))
        if key_match is None:
            return found
        try:
            key = json.loads(key_match.group())
        except ValueError:
            return found
        pos = _skip(text, key_match.end())
        if not text.startswith(":", pos):
            return found
        start = _skip(text, pos + 1)
        value: Any = _OMITTED
        try:
            value, pos = decoder.raw_decode(text, start)
        except (ValueError, RecursionError):
            end = value_end(text, start)
            if end is None:
                return found  # the cut fell inside this value
            pos = end
        pos = _skip(text, pos)
        if not text.startswith((",", "}"), pos):
            return found
        if value is _OMITTED:
            found.omitted.append(key)
        else:
            found.members[key] = value
        if text.startswith("}", pos):
            found.complete = True
            return found
        pos += 1


_OMITTED = object()


def _skip(text: str, pos: int) -> int:
    """Past the JSON whitespace at `pos`."""
    match = _WHITESPACE.match(text, pos)
    return match.end() if match else pos


def value_end(text: str, pos: int) -> int | None:
    """End of the JSON value at ``pos`` by bracket counting (no recursion), or None when
    the text ends first. Lenient: it only has to find where a value stops."""
    if text.startswith('"', pos):
        match = _STRING.match(text, pos)
        return match.end() if match else None
    if not text.startswith(("{", "["), pos):
        match = _SCALAR.match(text, pos)
        return match.end() if match and match.end() < len(text) else None
    depth = 0
    while (match := _BRACKET_OR_QUOTE.search(text, pos)) is not None:
        char = match.group()
        if char == '"':
            string = _STRING.match(text, match.start())
            if string is None:
                return None
            pos = string.end()
            continue
        depth += 1 if char in "[{" else -1
        pos = match.end()
        if depth == 0:
            return pos
    return None
