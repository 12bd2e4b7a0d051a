"""Run build/falco_host (harness/falco_host.c: a non-Python process that loads a plugin like
libsinsp)."""

from __future__ import annotations

import json
import subprocess
import tempfile
from collections.abc import Iterable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HOST = ROOT / "build" / "falco_host"
LIB = ROOT / "build" / "libk8saudit-aks.so"


def parse_key(key: str) -> tuple[str, str | None]:
    """"ka.uri.param[watch]" -> ("ka.uri.param", "watch")."""
    if key.endswith("]") and "[" in key:
        name, _, arg = key[:-1].partition("[")
        return name, arg
    return key, None


def request_lines(fields: list[dict], keys: Iterable[str]) -> str:
    """falco_host's request file: field id, key, and the argument as Falco would pass it."""
    ids = {f["name"]: (i, f.get("arg") or {}) for i, f in enumerate(fields)}
    lines = []
    for key in keys:
        name, arg = parse_key(key)
        fid, spec = ids[name]
        if arg is None:
            kind = "-"
        elif spec.get("isIndex"):
            kind = f"i:{arg}"
        else:
            kind = f"k:{arg}"
        lines.append(f"{fid}\t{key}\t{kind}")
    return "\n".join(lines) + "\n"


def run_raw(lib: Path, *args: str, timeout: float = 300, cwd: Path | None = None
            ) -> subprocess.CompletedProcess[str]:
    """falco_host run to completion (stdout rows, stderr the plugin's log). The environment
    is empty, as nothing may depend on one."""
    proc = subprocess.run(
        [str(HOST), str(lib), *args], capture_output=True, text=True, timeout=timeout, env={},
        cwd=cwd,
    )
    if proc.returncode != 0:
        raise AssertionError(f"falco_host failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return proc


def run(lib: Path, *args: str, timeout: float = 300, cwd: Path | None = None) -> list[dict]:
    """falco_host's output rows."""
    proc = run_raw(lib, *args, timeout=timeout, cwd=cwd)
    # split("\n"): str.splitlines also splits at U+2028, U+0085, ... inside values
    return [json.loads(line) for line in proc.stdout.split("\n") if line.strip()]


def info(lib: Path, framework: str = "3.0.0") -> dict:
    return run(lib, "info", framework)[0]


def _requests_file(lib: Path, keys: Iterable[str]) -> str:
    with tempfile.NamedTemporaryFile("w", suffix=".req", delete=False) as tmp:
        tmp.write(request_lines(info(lib)["fields"], keys))
    return tmp.name


def extract(lib: Path, events: Path, keys: Iterable[str], config: str = "",
            multi: bool = False) -> list[dict]:
    args = ["extract", config, str(events), _requests_file(lib, keys)]
    return run(lib, *args, *(["multi"] if multi else []))


def capture(lib: Path, params: str, keys: Iterable[str] = (), config: str = "",
            max_events: int = -1, max_timeouts: int = 1000, timeout: float = 300,
            cwd: Path | None = None) -> list[dict]:
    args = ["capture", config, params, _requests_file(lib, keys), str(max_events),
            str(max_timeouts)]
    return run(lib, *args, timeout=timeout, cwd=cwd)
