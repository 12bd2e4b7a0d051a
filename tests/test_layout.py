"""The layout the README shows is the layout the code has: its package import table is
computed here from the sources, has no cycle, and keeps `extractor/` pure."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OURS = ("extractor", "ingest", "transport", "plugin", "function_app")
MARKER = "<!-- LAYOUT-IMPORTS -->"


def unit(module: str) -> str:
    """The README's unit: a subpackage of extractor/ or plugin/, else the top package."""
    parts = module.split(".")
    return f"{parts[0]}/{parts[1]}" if parts[0] in ("extractor", "plugin") and len(parts) > 1 \
        else parts[0]


def imports() -> dict[str, set[str]]:
    """unit -> the units and third-party roots its modules import, at any depth."""
    graph: dict[str, set[str]] = defaultdict(set)
    sources = [ROOT / "function_app.py",
               *(p for top in OURS[:-1] for p in (ROOT / top).rglob("*.py"))]
    for path in sources:
        src = unit(".".join(path.relative_to(ROOT).with_suffix("").parts))
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                continue
            for name in names:
                graph[src].add(unit(name) if name.split(".")[0] in OURS else name.split(".")[0])
    return graph


def readme_table() -> dict[str, set[str]]:
    text = (ROOT / "README.md").read_text()
    block = text.split(MARKER, 1)[1].split("```")[1]
    table = {}
    for line in block.strip().splitlines():
        src, _, dsts = line.partition("->")
        table[src.strip()] = {d.strip() for d in dsts.split(",")}
    return table


def ours(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    out = {}
    for src, dsts in graph.items():
        kept = {d for d in dsts if d.split("/")[0] in OURS and d != src}
        kept |= {"Azure SDKs"} if "azure" in dsts else set()
        if kept:
            out[src] = kept
    return out


def test_the_readme_shows_the_imports_the_code_has() -> None:
    assert ours(imports()) == readme_table()


def test_no_package_imports_in_a_cycle() -> None:
    graph = ours(imports())

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        return any(d == goal or (d not in seen and reaches(d, goal, seen | {d}))
                   for d in graph.get(start, ()))

    assert [u for u in graph if reaches(u, u, set())] == []


def test_extractor_is_pure() -> None:
    """No Azure, no Falco, no network, no files: the pure core runs anywhere."""
    io = {"azure", "plugin", "ingest", "transport", "function_app", "cffi", "socket",
          "http", "urllib", "requests", "subprocess"}
    for src, dsts in imports().items():
        if src.startswith("extractor"):
            assert {d.split("/")[0] for d in dsts} & io == set(), src
