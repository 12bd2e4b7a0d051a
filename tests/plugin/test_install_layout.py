"""The documented install layout works on its own: `make dist` output, copied away from this
checkout as it is installed (rooted at /), loaded by a non-Python host with an empty
environment (docs/install.md); the AKS rules file beside it."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from harness import host
from tests import FIXTURES


def test_dist_runs_outside_the_checkout(tmp_path: Path) -> None:
    subprocess.run(["make", "-s", "dist"], cwd=host.ROOT, check=True, capture_output=True)
    shutil.copytree(host.ROOT / "build" / "dist", tmp_path, dirs_exist_ok=True)
    plugins = tmp_path / "usr" / "share" / "falco" / "plugins"
    assert (tmp_path / "usr" / "share" / "falco" / "rules" / "aks_audit_rules.yaml").read_text() \
        == (host.ROOT / "rules" / "aks_audit_rules.yaml").read_text()
    lib = plugins / "libk8saudit-aks.so"
    traces = tmp_path / "traces.jsonl"
    shutil.copy(FIXTURES / "audit-events" / "falco-traces.jsonl", traces)
    rows = host.run(lib, "capture", "", str(traces), str(_empty(tmp_path)), cwd=tmp_path)
    *events, end = rows
    assert end["rc"] == 2 and len(events) == 48  # 50 events, 2 duplicated across traces


def _empty(tmp_path: Path) -> Path:
    requests = tmp_path / "none.req"
    requests.write_text("")
    return requests
