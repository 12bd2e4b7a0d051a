"""Small readers for pycep-parser's JSON form of a Bicep template.

pycep gives identifiers and string literals alike as plain strings, expressions as
{"operator": ...} / {"function": ...} trees, and wraps looped or conditional bodies in
{"loop_type"/"condition", "config"}.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any


def body(resource_or_module: dict[str, Any]) -> dict[str, Any]:
    """The declaration's object body, unwrapped from any loop or condition."""
    config = resource_or_module["config"]
    while isinstance(config, dict) and "config" in config and (
        "loop_type" in config or "condition" in config
    ):
        config = config["config"]
    return config


def condition(resource: dict[str, Any]) -> Any:
    return resource["config"].get("condition")


def ref(expr: Any) -> Any:
    """`a.b.c` / `a::b` accessor trees as one dotted string; anything else unchanged."""
    if isinstance(expr, dict) and "operator" in expr:
        op = expr["operator"]
        sep = {"property_accessor": ".", "nested_resource_accessor": "::"}.get(op["type"])
        if sep:
            return f"{ref(op['operands']['operand_1'])}{sep}{ref(op['operands']['operand_2'])}"
    return expr


def walk(node: Any) -> Iterator[Any]:
    """Every dict, list and scalar below node."""
    yield node
    if isinstance(node, dict):
        for value in node.values():
            yield from walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from walk(value)


def decorator(declaration: dict[str, Any], kind: str) -> Any:
    for d in declaration.get("decorators", []):
        if d["type"] == kind:
            return d["argument"]
    return None


def app_settings(site: dict[str, Any]) -> dict[str, Any]:
    settings = body(site)["properties"]["siteConfig"]["appSettings"]
    return {s["name"]: s["value"] for s in settings}
