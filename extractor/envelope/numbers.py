"""JSON numbers that a double would change, carried through exactly.

orjson reads a number into an int64, a uint64 or a double, so a longer integer or a decimal
with more digits than a double holds comes back changed
(``123456789012345678901234567890`` -> ``1.2345678901234568e+29``). The API server logs
request bodies as they came, so such numbers reach audit events. A log that may hold one
(`suspect`) is read with :class:`Numbers` as its number hooks: every literal a double or a
64-bit integer would change becomes a placeholder string, and `restore` writes the literal
back, verbatim, into the encoded event. Only a number no reader downstream can parse (beyond
a double's range) is refused, so its member is left out and named.
"""

from __future__ import annotations

import math
import re
import secrets
from decimal import Decimal

# `suspect` runs on every log, so it looks at a translated copy (C speed): digits and "."
# become "0", "e"/"E" "e", the delimiters before a value (":", ",", "[") ":", signs and
# whitespace go, anything else "x". A number token orjson may change then reads ":" and 16
# or more "0" (16+ digits: beyond what a double holds for every value, near the 64-bit
# integer limits) or ":0...e" (an exponent). Strings that look alike only cost the exact
# path.
_SHAPES = str.maketrans({**{chr(c): "x" for c in range(128)},
                         **dict.fromkeys("0123456789.", "0"), "e": "e", "E": "e",
                         **dict.fromkeys(":,[", ":"), **dict.fromkeys(" \t\n\r-+")})
_SUSPECT = re.compile(r":0(?:0{15}|0*e)")
INT64_MIN, UINT64_MAX = -(2**63), 2**64 - 1


# Only these members of an audit event hold what the API server did not type itself (the
# request and response bodies); every other member is a string, an int or a structure of
# them. The scan starts at the first mention of either (a mention inside an earlier string
# only makes it start sooner).
_UNTYPED = ('"requestObject"', '"responseObject"')


def suspect(text: str) -> bool:
    """Whether orjson might change a number of the audit event `text`."""
    starts = [i for i in (text.find(name) for name in _UNTYPED) if i >= 0]
    if not starts:
        return False
    return _SUSPECT.search(text[min(starts):].translate(_SHAPES)) is not None


class Numbers:
    """Number hooks for the json module that keep inexact literals as placeholders."""

    __slots__ = ("_marker", "literals")

    def __init__(self) -> None:
        # Random per event: input cannot forge a placeholder it does not know.
        self._marker = secrets.token_hex(8)
        self.literals: list[str] = []

    def _keep(self, literal: str) -> str:
        self.literals.append(literal)
        return f"\x00{self._marker}:{len(self.literals) - 1}\x00"

    def parse_int(self, literal: str) -> int | str:
        value = int(literal)  # ValueError past 4,300 digits: not carried (see parse_float)
        if INT64_MIN <= value <= UINT64_MAX:
            return value
        try:
            float(value)  # what every reader downstream turns it into
        except OverflowError:
            raise ValueError(f"{literal[:40]}... overflows a double") from None
        return self._keep(literal)

    def parse_float(self, literal: str) -> float | str:
        """A double when it is exact; the literal when it is not. A number beyond a double's
        range raises: every reader downstream (the plugin, Falco's json plugin) parses
        events into doubles, so such a member cannot be carried and is left out, named."""
        value = float(literal)
        if math.isinf(value):
            raise ValueError(f"{literal[:40]} overflows a double")
        exact = Decimal(repr(value)) == Decimal(literal)  # what a writer prints, read back
        return value if exact else self._keep(literal)

    def kept(self, value: object) -> bool:
        """Whether `value` is one of this event's placeholders (a number, not a string)."""
        return isinstance(value, str) and value.startswith(f"\x00{self._marker}:")

    def restore(self, data: bytes) -> bytes:
        """`data` (orjson output) with each placeholder replaced by its literal."""
        if not self.literals:
            return data
        pattern = re.compile(rb'"\\u0000' + self._marker.encode() + rb':(\d+)\\u0000"')
        return pattern.sub(lambda m: self.literals[int(m.group(1))].encode(), data)
