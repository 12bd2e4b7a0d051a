"""Bicep declarations read from source text, with their decorators.

pycep-parser keeps one decorator per kind, so what it returns cannot show a repeated one;
this reader keeps every decorator as written, multi-line arguments included.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

DECLARATION = re.compile(r"^(param|var|resource|module|output|type|func|metadata)\s+(\w+)")
DECORATOR = re.compile(r"^@(?:sys\.)?(\w+)")


@dataclass
class Declaration:
    kind: str
    name: str
    line: int
    decorators: list[str] = field(default_factory=list)  # their names, in order


def _depth(text: str) -> int:
    """Open brackets minus closed ones outside '...' strings."""
    depth, quoted, escaped = 0, False, False
    for char in text:
        if quoted:
            quoted = escaped or char != "'"
            escaped = char == "\\" and not escaped
            continue
        if char == "'":
            quoted = True
        elif char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
    return depth


def declarations(text: str) -> list[Declaration]:
    found: list[Declaration] = []
    pending: list[str] = []
    depth = 0
    for number, line in enumerate(text.splitlines(), 1):
        if depth > 0:  # inside a decorator's arguments
            depth += _depth(line)
            continue
        stripped = line.strip()
        decorator = DECORATOR.match(stripped)
        if decorator and not line[0].isspace():
            pending.append(decorator.group(1))
            depth = _depth(stripped)
            continue
        declaration = DECLARATION.match(line)
        if declaration:
            found.append(Declaration(declaration.group(1), declaration.group(2), number, pending))
            pending = []
        elif stripped and not stripped.startswith("//"):
            pending = []
    return found


def file_declarations(path: Path) -> list[Declaration]:
    return declarations(path.read_text())
