"""Remove Azure secrets from any text before it is logged or returned to Falco."""

from __future__ import annotations

import re

_SECRET = re.compile(
    r"(?i)(AccountKey|SharedAccessKey|SharedAccessSignature|sig|password|client_secret)"
    r"(\s*[=:]\s*)([^;&\s\"',]+)"
)


def redact(text: str) -> str:
    """`AccountKey=abc;` -> `AccountKey=***;` (also SAS signatures and passwords)."""
    return _SECRET.sub(lambda m: m.group(1) + m.group(2) + "***", text)
