"""Event files the benchmarks replay: the generated audit events, made as many as asked."""

from __future__ import annotations

import json
from pathlib import Path


def distinct_copies(path: Path, copies: int) -> bytes:
    """`copies` copies of a file of audit events, each event's auditID suffixed by its copy."""
    lines = [line for line in path.read_bytes().splitlines() if line.strip()]
    out = []
    for copy in range(copies):
        for line in lines:
            try:
                event = json.loads(line)
            except ValueError:
                out.append(line)
                continue
            if isinstance(event, dict) and isinstance(event.get("auditID"), str):
                event["auditID"] = f"{event['auditID']}-{copy}"
            out.append(json.dumps(event).encode())
    return b"\n".join(out) + b"\n"
