"""Real Falco, when one is installed: a plugin-only config and a bounded run.

Falco is found at `FALCO_BIN`, else as `falco` on PATH; the `json` plugin at
`FALCO_JSON_PLUGIN`, else beside Falco (`../plugins/libjson.so`, the layout of
`../shared/tools/falco/setup.sh`), else where the Falco packages install it. The config
selects the `nodriver` engine and the run disables the syscall source, so no kernel driver
is needed. Falco's `-M` counts event time, not wall time (a plugin that only times out never
reaches it, replayed events may reach it early), so a live run is bounded by the wall clock
here: SIGINT once the caller has what it waits for, or at the deadline.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.host import LIB, ROOT

INSTALLED_JSON_PLUGIN = Path("/usr/share/falco/plugins/libjson.so")
INSTALLED_RULES = Path("/etc/falco/k8s_audit_rules.yaml")
# Every k8s_audit alert names its cluster (Falco 0.40+ `append_output`): the official rules'
# outputs do not, and one Event Hub carries many clusters.
def with_fields(*fields: str) -> dict[str, Any]:
    """Falco settings that add these fields to every k8s_audit alert's output."""
    return {"append_output": [{"match": {"source": "k8s_audit"}, "extra_fields": list(fields)}]}


WITH_CLUSTER = with_fields("ka.cluster.name")
# The AKS rules this repository ships, and the setting they need (docs/aks-rules.md): every
# matching rule alerts, since the official "Disallowed K8s User" comes first and matches
# most events. The Helm values and `make run` use both.
AKS_RULES = ROOT / "rules" / "aks_audit_rules.yaml"
WITH_AKS_RULES: dict[str, Any] = {"rule_matching": "all", **WITH_CLUSTER}


def find_falco() -> Path | None:
    """The Falco binary to run, or None."""
    named = os.environ.get("FALCO_BIN")
    if named:
        return Path(named) if Path(named).is_file() else None
    found = shutil.which("falco")
    return Path(found) if found else None


def json_plugin(falco: Path) -> Path:
    named = os.environ.get("FALCO_JSON_PLUGIN")
    beside = falco.resolve().parent.parent / "plugins" / "libjson.so"
    for path in (Path(named) if named else None, beside, INSTALLED_JSON_PLUGIN):
        if path is not None and path.is_file():
            return path
    raise FileNotFoundError(f"no libjson.so for {falco} (set FALCO_JSON_PLUGIN)")


@dataclass(frozen=True)
class PluginSpec:
    """One source plugin as falco.yaml names it."""

    name: str = "k8saudit-aks"
    library: Path = LIB
    init_config: dict[str, Any] | str = ""
    open_params: str = ""


@dataclass
class FalcoRun:
    """What one Falco run printed: alerts (one JSON object each), the rest of stdout, and
    stderr (Falco's log and the plugin's)."""

    alerts: list[dict[str, Any]] = field(default_factory=list)
    other: list[str] = field(default_factory=list)
    stderr: str = ""
    returncode: int | None = None
    seconds: float = 0.0

    def rules(self) -> list[str]:
        return [a["rule"] for a in self.alerts if a.get("source") != "internal"]


def command(falco: Path, config_path: Path, *args: str) -> list[str]:
    """Falco with this config and no syscall source (no kernel driver here), plus `args`."""
    return [str(falco), "-c", str(config_path), "--disable-source=syscall", *args]


def config(falco: Path, plugin: PluginSpec, rules: Sequence[Path],
           extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """falco.yaml for a plugin-only Falco: this source plugin, the json plugin, the rules,
    one JSON alert per stdout line."""
    return {
        "engine": {"kind": "nodriver"},
        "load_plugins": [plugin.name, "json"],
        "plugins": [
            {"name": plugin.name, "library_path": str(plugin.library),
             "init_config": plugin.init_config, "open_params": plugin.open_params},
            {"name": "json", "library_path": str(json_plugin(falco)), "init_config": ""},
        ],
        "rules_files": [str(r) for r in rules],
        "json_output": True,
        "json_include_output_fields_property": True,
        "stdout_output": {"enabled": True},
        "watch_config_files": False,
        **(extra or {}),
    }


def run(falco: Path, plugin: PluginSpec, rules: Sequence[Path], *,
        seconds: float = 120, until: Callable[[FalcoRun], bool] | None = None,
        extra: dict[str, Any] | None = None, cwd: Path | None = None) -> FalcoRun:
    """Run Falco with `config(...)` until it ends by itself (file replay), `until(result so
    far)` holds, or `seconds` pass; then SIGINT, which makes Falco close the plugin and exit
    cleanly."""
    return run_config(falco, config(falco, plugin, rules, extra), seconds=seconds,
                      until=until, cwd=cwd)


def run_config(falco: Path, settings: dict[str, Any], *, seconds: float = 120,
               until: Callable[[FalcoRun], bool] | None = None,
               cwd: Path | None = None) -> FalcoRun:
    """`run` with a whole falco.yaml (as a dict) of the caller's."""
    result = FalcoRun()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "falco.yaml"
        path.write_text(json.dumps(settings))
        started = time.monotonic()
        proc = subprocess.Popen(
            command(falco, path),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=cwd)
        errors: list[str] = []
        stderr = proc.stderr
        assert stderr is not None  # stderr=PIPE
        drain = threading.Thread(target=lambda: errors.append(stderr.read()), daemon=True)
        drain.start()
        lines = _LineReader(proc)
        deadline = started + seconds
        stopped = False
        while True:
            line = lines.get(timeout=max(0.0, min(0.2, deadline - time.monotonic())))
            if line is _EOF:
                break
            if isinstance(line, str):
                _add(result, line)
            if not stopped and (time.monotonic() >= deadline or (until and until(result))):
                proc.send_signal(signal.SIGINT)
                stopped = True
                deadline = time.monotonic() + 30  # for the close
            elif stopped and time.monotonic() >= deadline:
                proc.kill()
        result.returncode = proc.wait()
        drain.join(5)
        result.stderr = "".join(errors)
        result.seconds = time.monotonic() - started
    return result


def validate(falco: Path, rules: Sequence[Path]) -> list[dict[str, Any]]:
    """Falco's own check of rules files, loaded in order with this plugin and the json
    plugin: one result per file (`successful`, `errors`, `warnings`, `schema_warnings`)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "falco.yaml"
        path.write_text(json.dumps(config(falco, PluginSpec(), rules)))
        args = command(falco, path)
        for rule_file in rules:
            args += ["-V", str(rule_file)]
        proc = subprocess.run(args, capture_output=True, text=True, timeout=120, check=False)
    line = next((x for x in proc.stdout.splitlines() if x.startswith("{")), None)
    if line is None:
        raise RuntimeError(f"falco -V printed no result ({proc.returncode}): {proc.stderr}")
    results: list[dict[str, Any]] = json.loads(line)["falco_load_results"]
    return results


_EOF = object()


class _LineReader:
    """Falco's stdout lines from a reader thread, so the caller can time out."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self._queue: queue.Queue[object] = queue.Queue()
        threading.Thread(target=self._read, args=(proc,), daemon=True).start()

    def _read(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None  # stdout=PIPE
        for line in proc.stdout:
            self._queue.put(line)
        self._queue.put(_EOF)

    def get(self, timeout: float) -> object:
        try:
            return self._queue.get(timeout=timeout)
        except queue.Empty:
            return None


def _add(result: FalcoRun, line: str) -> None:
    text = line.strip()
    if text.startswith("{"):
        try:
            result.alerts.append(json.loads(text))
            return
        except json.JSONDecodeError:
            pass
    if text:
        result.other.append(text)
