"""`make run`, the README's local main job: every audit event of the samples through the
C host without Falco; real Falco's alerts (official and AKS rules), the attack story's among
them, with it."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from harness import falco, host


def run_local(**env: str) -> str:
    proc = subprocess.run([sys.executable, "-m", "scripts.run_local"], cwd=host.ROOT,
                          capture_output=True, text=True, timeout=240, check=True,
                          env={**os.environ, **env})
    return proc.stdout


def test_without_falco_every_event_is_printed() -> None:
    lines = run_local(FALCO="0").splitlines()
    assert "93 audit events reached the plugin." in lines
    assert sum(line.startswith("2026-") for line in lines) == 93
    assert any("No Falco found" in line for line in lines)


def test_with_falco_the_alerts_are_printed() -> None:
    binary = falco.find_falco()
    if binary is None:
        pytest.skip("no Falco: set FALCO_BIN or put falco on PATH")
    out = run_local(FALCO_BIN=str(binary))
    assert "57 alerts from real Falco" in out
    for rule in ("Anonymous Request Allowed", "Attach/Exec Pod", "Create Privileged Pod",
                 "Attach to cluster-admin Role", "K8s Secret Get Successfully",
                 "Create/Modify Configmap With Private Credentials", "AKS Local Account Used",
                 "AKS Run Command Used", "AKS Workload Identity Token Requested",
                 "AKS Audit Event Truncated"):
        assert rule in out
    assert "aks-prod-weu" in out and "aks-dev-01" in out
