"""Remove Azure secrets from any text before it is logged or returned to Falco.

The SDK installs `redact` as a filter on every log handler when the plugin loads, so every
line (the Azure SDKs' too, tracebacks included) goes through it; errors returned to Falco
go through it as well.
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
