"""`make run`, the README's local main job, prints every audit event of the sample."""

from __future__ import annotations

import subprocess
import sys

from harness import host


def test_run_local_prints_the_replayed_events() -> None:
    proc = subprocess.run([sys.executable, "-m", "scripts.run_local"], cwd=host.ROOT,
                          capture_output=True, text=True, timeout=240, check=True)
    lines = proc.stdout.splitlines()
    assert lines[-1] == "81 audit events reached the plugin."
    assert sum(line.startswith("2026-") for line in lines) == 81
    assert "aks-prod-weu" in proc.stdout and "aks-dev-01" in proc.stdout
