"""Run build/falco_host (harness/falco_host.c: a non-Python process that loads a plugin like
libsinsp)."""

from __future__ import annotations

import atexit
import functools
import hashlib
import json
import shutil
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


def requests_file(keys: Iterable[str], lib: Path = LIB) -> str:
    """The path of falco_host's REQUESTS file for `keys`: one file per distinct request,
    kept for the process (hosts run many times with the same keys) and removed at exit."""
    keys = list(keys)
    text = request_lines(_fields(lib, lib.stat().st_mtime_ns), keys) if keys else ""
    path = _requests_dir() / f"{hashlib.sha256(text.encode()).hexdigest()[:16]}.req"
    if not path.exists():
        path.write_text(text)
    return str(path)


@functools.cache
def _fields(lib: Path, _mtime_ns: int) -> list[dict]:
    return info(lib)["fields"]


@functools.cache
def _requests_dir() -> Path:
    path = Path(tempfile.mkdtemp(prefix="falco-host-requests-"))
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


def extract(lib: Path, events: Path, keys: Iterable[str], config: str = "",
            multi: bool = False) -> list[dict]:
    args = ["extract", config, str(events), requests_file(keys, lib)]
    return run(lib, *args, *(["multi"] if multi else []))


def capture(lib: Path, params: str, keys: Iterable[str] = (), config: str = "",
            max_events: int = -1, max_timeouts: int = 1000, timeout: float = 300,
            cwd: Path | None = None) -> list[dict]:
    args = ["capture", config, params, requests_file(keys, lib), str(max_events),
            str(max_timeouts)]
    return run(lib, *args, timeout=timeout, cwd=cwd)
