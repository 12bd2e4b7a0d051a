"""Text that leaves the process (log lines, dead letters, errors Falco shows): no Azure
secret in it, and valid in JSON.

The SDK installs `redact` as a filter on every log handler when the plugin loads, so every
line (the Azure SDKs' too, tracebacks included) goes through it; errors returned to Falco,
exception descriptions and dead-letter details go through it as well.
"""

from __future__ import annotations

import re

_KEYS = (r"AccountKey|SharedAccessKey|SharedAccessSignature|sig|signature|password|"
         r"client_secret|clientSecret|access_token|refresh_token")
# `Key=value` in connection strings and SAS query strings, `"Key": "value"` in JSON,
# `sig%3Dvalue` in URL-encoded text (after `%26`, so no word boundary is required).
_ASSIGNED = re.compile(
    rf"(?i)(?<![a-z])({_KEYS})([\"']?\s*(?:[=:]|%3D)\s*[\"']?)([^;&\s\"',}}]+)")
# `Authorization: SharedKey account:signature`, `Bearer <token>`.
_SCHEME = re.compile(r"(?i)\b(Bearer|SharedKey|SharedKeyLite|SharedAccessSignature)(\s+)"
                     r"([^\s\"',;]+)")


def redact(text: str) -> str:
    """`AccountKey=abc;` -> `AccountKey=***;`, likewise SAS signatures, passwords, client
    secrets and tokens, whether in connection strings, JSON, URLs or HTTP headers."""
    text = _SCHEME.sub(lambda m: m.group(1) + m.group(2) + "***", text)
    return _ASSIGNED.sub(lambda m: m.group(1) + m.group(2) + "***", text)


def describe_redacted(exc: BaseException, limit: int = 300) -> str:
    """One line for a log, a dead letter's detail or an error Falco shows: the exception's
    type (with an HTTP status and service error code when it has them) and the first line
    of its message, secrets redacted: Azure's errors can quote connection strings and
    tokens, and dead letters are read by people."""
    lines = str(exc).strip().splitlines()
    kind = " ".join(str(part) for part in (type(exc).__name__, getattr(exc, "status_code", None),
                                           getattr(exc, "error_code", None)) if part)
    return redact(f"{kind}: {lines[0] if lines else ''}".rstrip(": "))[:limit]

def json_safe(value: str) -> str:
    """Text that quotes hostile input may hold lone surrogates, which JSON cannot carry:
    escaped."""
    return value.encode("utf-8", "backslashreplace").decode("utf-8")
