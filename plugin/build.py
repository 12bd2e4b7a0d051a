"""Build build/libk8saudit-aks.so: `python -m plugin.build [OUTPUT]`.

The library finds its Python packages relative to itself: `k8saudit-aks/` beside it (the
install layout, docs/install.md), else this checkout and its `.venv` when it sits in
`build/`.
"""

from __future__ import annotations

import os
import site
import sys
from pathlib import Path

from plugin.sdk.abi.builder import build

ROOT = Path(__file__).resolve().parent.parent
PLUGIN = "plugin.k8saudit_aks.plugin:K8sAuditAksPlugin"
INSTALL_DIR = "k8saudit-aks"


def search_path(output: Path) -> list[str]:
    here = output.resolve().parent
    paths = [INSTALL_DIR, os.path.relpath(ROOT, here)]
    paths += [os.path.relpath(p, here) for p in site.getsitepackages() if Path(p).is_dir()]
    return paths


def main() -> None:
    output = Path(sys.argv[1] if len(sys.argv) > 1 else ROOT / "build" / "libk8saudit-aks.so")
    print(build(PLUGIN, output, search_path(output)))


if __name__ == "__main__":
    main()
