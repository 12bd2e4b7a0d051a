"""The documented install works on its own: the release tarball that `make dist` writes in
the image's build stage (tests/support/image_build.py), checked against its checksum and
unpacked away from this checkout as docs/install.md says, loaded by a non-Python host with
an empty environment; the AKS rules file beside it."""

from __future__ import annotations

import hashlib
import shutil
import tarfile
from pathlib import Path

from harness import host
from plugin.k8saudit_aks import __version__
from tests import FIXTURES


def test_the_release_tarball_installs_and_runs(image_dist: Path, tmp_path: Path) -> None:
    (tarball,) = image_dist.glob("k8saudit-aks-*.tar.gz")
    assert tarball.name.startswith(f"k8saudit-aks-{__version__}-linux-")
    digest, name = (image_dist / f"{tarball.name}.sha256").read_text().split()
    assert name == tarball.name
    assert digest == hashlib.sha256(tarball.read_bytes()).hexdigest()
    root = tmp_path / "root"
    with tarfile.open(tarball) as archive:
        assert all(m.name.startswith("usr/share/falco/") or m.name in ("usr", "usr/share",
                   "usr/share/falco") for m in archive.getmembers())
        assert all(m.uid == 0 and m.gid == 0 for m in archive.getmembers())
        archive.extractall(root, filter="tar")
    assert (root / "usr" / "share" / "falco" / "rules" / "aks_audit_rules.yaml").read_text() \
        == (host.ROOT / "rules" / "aks_audit_rules.yaml").read_text()
    plugins = root / "usr" / "share" / "falco" / "plugins"
    assert (plugins / "k8saudit-aks" / "LICENSE").read_text() == (host.ROOT / "LICENSE").read_text()
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
