"""Shape helpers that reproduce how the Go `k8saudit` plugin reads an audit event.

Upstream walks a fastjson tree; these helpers walk the same event parsed into plain Python
values (dict/list/str/int/float/bool/None) and keep its rules: a missing value is "nil"
(`MISSING` here), JSON `null` is a real value, every non-string value is rendered as JSON
text. Helpers are named after their upstream counterparts so both can be read side by side.
"""

from __future__ import annotations

import json.encoder
import re
from collections.abc import Callable
from decimal import Decimal
from json.encoder import encode_basestring
from typing import Any

c_make_encoder = json.encoder.c_make_encoder  # type: ignore[attr-defined]  # C; not in typeshed

MISSING: object = type("Missing", (), {"__repr__": lambda _self: "MISSING"})()
"""A value that is not in the event: fastjson's nil `*Value`."""


class KeyPaths:
    """fastjson's `Value.Get(path...)` on the event, as Python source: the one key-path
    walk. Each path becomes a local holding its value or `MISSING`; paths sharing a prefix
    share its lookups (`objectRef` is read once for all its fields). Generated rather than
    looped because most fields rules use are one key path: the loop would cost a third of
    their extraction. `lines` read the event through a local `get` (its `dict.get`)."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self._names: dict[tuple[str, ...], str] = {}

    def value(self, path: tuple[str, ...]) -> str:
        """The local holding `path`'s value, its lookups added to `lines` once."""
        if not path or not all(path):
            raise ValueError(f"a key path needs keys: {path!r}")
        if path not in self._names:
            up = self.value(path[:-1]) if len(path) > 1 else None
            name = self._names[path] = f"t{len(self._names)}"
            self.lines.append(f"    {name} = get({path[0]!r}, MISSING)" if up is None else
                              f"    {name} = {up}.get({path[-1]!r}, MISSING) "
                              f"if {up}.__class__ is dict else MISSING")
        return self._names[path]


def single_value(local: str) -> str:
    """Source of upstream's single-valued `extractFromKeys` result from a `KeyPaths` local:
    a string as it is, no value as None, anything else as its JSON text."""
    return (f"[{local}] if {local}.__class__ is str else None if {local} is MISSING "
            f"else [marshal({local})]")


def compile_source(source: str, name: str, env: dict[str, Any]) -> Any:
    """`name` as defined by generated `source`, with `MISSING` and `marshal` in scope."""
    scope = {"MISSING": MISSING, "marshal": marshal, **env}
    exec(compile(source, f"<extractor.fields {name}>", "exec"), scope)
    return scope[name]


def lookup(path: tuple[str, ...]) -> Callable[[dict], object]:
    """The value at `path` in an event, or `MISSING`."""
    walk = KeyPaths()
    local = walk.value(path)
    return compile_source("\n".join(["def lookup(event):", "    get = event.get",
                                      *walk.lines, f"    return {local}"]), "lookup", {})


class ExtractError(Exception):
    """The field cannot be extracted: upstream returns SS_PLUGIN_FAILURE (rc 1)."""


def arg_index_filter(arg: int | str | None) -> int | None:
    """Upstream's `argIndexFilter`: any present argument filters arrays by its index.

    A key argument has index 0 in the plugin API, so key-taking fields that share this
    helper (`ka.req.volume.hostpath`) only look at the first element of every array.
    """
    if arg is None:
        return None
    return arg if isinstance(arg, int) else 0


def values_recursive(value: object, index: int | None, keys: tuple[str, ...]) -> list | None:
    """Upstream's `getValuesRecursive`: follow `keys`, fanning out over every array met.

    Returns None when the path is not available. Without an index, each array element
    contributes its own values, and `MISSING` when the rest of the path is absent under it;
    with an index, every array on the path is replaced by its index-th element. An empty
    key stands for "the value itself", which lets a path end by fanning out an array.
    """
    position = 0
    for key in keys:
        if value.__class__ is list:
            if index is None:
                return _fan_out(value, keys[position:])
            if index >= len(value):
                return None
            value = value[index]
        if key:
            if value.__class__ is not dict:
                return None
            value = value.get(key, MISSING)
            if value is MISSING:
                return None
        position += 1  # noqa: SIM113 - cheaper than enumerate() on this hot path
    return [value]


def _fan_out(array: list, keys: tuple[str, ...]) -> list:
    found: list = []
    try:
        for element in array:
            sub = values_recursive(element, None, keys)
            if sub is None:
                found.append(MISSING)
            else:
                found += sub
    except RecursionError:
        raise ExtractError("JSON nested too deeply") from None
    return found


def to_string(value: object) -> str:
    """Upstream's `jsonValueAsString`: strings as they are, anything else as JSON text."""
    if value.__class__ is str:
        return value
    return marshal(value)


def strings_skip_nil(values: list) -> list[str]:
    """Upstream's `arrayAsStringsSkipNil`."""
    return [v if v.__class__ is str else marshal(v) for v in values if v is not MISSING]


def strings_strict(values: list) -> list[str]:
    """Upstream's `arrayAsStrings`: a nil value is a wrong-type failure."""
    if MISSING in values:
        raise ExtractError("wrong type conversion")
    return [v if v.__class__ is str else marshal(v) for v in values]


# --- JSON text -------------------------------------------------------------------------
# fastjson re-emits the event's own bytes for objects, arrays and numbers. Audit events
# are written by the API server with Go's encoding/json, so rendering parsed values the way
# encoding/json writes them reproduces those bytes: compact, keys in document order,
# non-ASCII left as is, HTML-sensitive characters and U+2028/U+2029 as \u escapes.

_HTML_SAFE = str.maketrans(
    {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}
)


def _html_safe(text: str) -> str:
    """Go's extra escapes, applied to JSON text (the characters only occur in strings)."""
    if (
        "<" in text
        or ">" in text
        or "&" in text
        or (not text.isascii() and ("\u2028" in text or "\u2029" in text))
    ):
        return text.translate(_HTML_SAFE)
    return text


def quote(text: str) -> str:
    """A JSON string literal as Go's encoding/json writes it (\\b, \\f as Go >= 1.22)."""
    return _html_safe(encode_basestring(text))


def go_float(number: float) -> str:
    """A float as encoding/json writes it: shortest digits, exponent only outside [1e-6, 1e21)."""
    text = repr(number)
    magnitude = abs(number)
    if magnitude and (magnitude < 1e-6 or magnitude >= 1e21):
        mantissa, exponent = text.split("e")
        if exponent.startswith("-0"):
            exponent = "-" + exponent[2:]
        return f"{mantissa}e{exponent}"
    text = format(Decimal(text), "f")
    return text[:-2] if text.endswith(".0") else text


def _not_json(value: object) -> object:
    raise ExtractError(f"not a JSON value: {type(value).__name__}")


# Compact C encoder (no circular check: parsed JSON has no cycles). It writes floats with
# repr(), which differs from Go only for an exponent or a trailing ".0": JSON text where
# such a pattern shows (even inside a string) is redone by the Python renderer. The plain
# substring tests keep the (slow) regular expressions off the usual text.
_encode_compact = c_make_encoder(None, _not_json, encode_basestring, None, ":", ",", 0, 0, 1)
_TRAILING_ZERO = re.compile(r"\.0(?:[,\]}]|$)")
_EXPONENT = re.compile(r"e[-+]\d")


def _repr_may_differ(text: str) -> bool:
    return bool(
        (".0" in text and _TRAILING_ZERO.search(text))
        or (("e-" in text or "e+" in text) and _EXPONENT.search(text))
    )


def _marshal_python(value: object) -> str:
    cls = value.__class__
    if cls is str:
        return quote(value)  # type: ignore[arg-type]  # __class__-checked
    if cls is dict:
        items = value.items()  # type: ignore[attr-defined]  # __class__-checked
        return "{" + ",".join([quote(k) + ":" + _marshal_python(v) for k, v in items]) + "}"
    if cls is list:
        parts = [_marshal_python(v) for v in value]  # type: ignore[attr-defined]  # __class__-checked
        return "[" + ",".join(parts) + "]"
    if cls is float:
        return go_float(value)  # type: ignore[arg-type]  # __class__-checked
    return marshal(value)


def marshal(value: object) -> str:
    """Compact JSON text of a parsed value (fastjson's `MarshalTo` over Go-written input)."""
    cls = value.__class__
    if cls is str:
        return quote(value)  # type: ignore[arg-type]  # __class__-checked
    if cls is int:
        return str(value)
    if cls is dict or cls is list:
        try:
            text = "".join(_encode_compact(value, 0))
            if _repr_may_differ(text):
                text = _marshal_python(value)
        except RecursionError:
            raise ExtractError("JSON nested too deeply") from None
        return _html_safe(text)
    if cls is float:
        return go_float(value)  # type: ignore[arg-type]  # __class__-checked
    if cls is bool:
        return "true" if value else "false"
    if value is None:
        return "null"
    return _not_json(value)  # type: ignore[return-value]  # __class__-checked


# --- ka.uri.param ------------------------------------------------------------------------
# Upstream runs Go's url.Parse on the request URI, then url.ParseQuery on its raw query,
# and fails the field on any error either returns. These helpers keep the checks of those
# two functions that an HTTP request target can trip.

_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")
_SCHEME_FIRST = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
_SCHEME_REST = _SCHEME_FIRST | frozenset("0123456789+-.")


def _has_control(text: str) -> bool:
    return not text.isprintable() and any(c < " " or c == "\x7f" for c in text)


def _unescape(text: str, plus_is_space: bool) -> str:
    """Go's `unescape`: %XX decoding, failing on a malformed escape."""
    if "%" not in text:
        return text.replace("+", " ") if plus_is_space else text
    if _BAD_ESCAPE.search(text):
        raise ExtractError(f"invalid URL escape in {text!r}")
    raw = text.encode()
    if plus_is_space:
        raw = raw.replace(b"+", b" ")
    out = bytearray()
    parts = raw.split(b"%")
    out += parts[0]
    for part in parts[1:]:
        out.append(int(part[:2], 16))
        out += part[2:]
    return out.decode("utf-8", "replace")


def _raw_query(uri: str) -> str:
    """The raw query of `uri` as Go's url.Parse finds it; raises where Parse fails."""
    uri, has_fragment, fragment = uri.partition("#")
    if has_fragment and "%" in fragment:
        _unescape(fragment, plus_is_space=False)
    if _has_control(uri):
        raise ExtractError("invalid control character in URL")
    if uri == "*":
        return ""
    rest, scheme = uri, False
    if uri[:1] in _SCHEME_FIRST:
        for i, char in enumerate(uri):
            if char == ":":
                rest, scheme = uri[i + 1 :], True
                break
            if char not in _SCHEME_REST:
                break
    elif uri[:1] == ":":
        raise ExtractError("missing protocol scheme")
    rest, _, query = rest.partition("?")
    if not rest.startswith("/"):
        if scheme:
            return query  # opaque URL: the rest is not checked
        if ":" in rest.partition("/")[0]:
            raise ExtractError("first path segment in URL cannot contain colon")
    if rest.startswith("//") and (scheme or not rest.startswith("///")):
        rest = rest[2:].partition("/")[2]  # authority: not checked (never in a request URI)
    if "%" in rest:
        _unescape(rest, plus_is_space=False)
    return query


def query_param(uri: str, name: str) -> str | None:
    """First value of query parameter `name` in `uri` (Go url.Parse + url.ParseQuery)."""
    if (
        uri[:1] == "/"
        and "%" not in uri
        and ";" not in uri
        and "#" not in uri
        and uri.isprintable()
    ):
        # the usual request URI: nothing either Go function could reject or unescape
        query = uri.partition("?")[2]
        if "+" in query:
            query = query.replace("+", " ")
        if name not in query:
            return None
        for pair in query.split("&"):
            key, _, value = pair.partition("=")
            if key == name and pair:
                return value
        return None
    query = _raw_query(uri)
    if ";" in query:
        raise ExtractError("invalid semicolon separator in query")
    found = None
    for pair in query.split("&"):
        if not pair:
            continue
        key, _, value = pair.partition("=")
        key = _unescape(key, plus_is_space=True)
        value = _unescape(value, plus_is_space=True)
        if found is None and key == name:
            found = value
    return found
