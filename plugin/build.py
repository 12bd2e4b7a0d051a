"""Build the plugin library: `python -m plugin.build [OUTPUT] [--standalone]`.

The library finds its Python packages relative to itself: `k8saudit-aks/` beside it (the
install layout, docs/install.md), and, unless built `--standalone` for installing, this
checkout and its `.venv` (so build/libk8saudit-aks.so runs straight from the checkout).
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


def search_path(output: Path, standalone: bool) -> list[str]:
    if standalone:
        return [INSTALL_DIR]
    here = output.resolve().parent
    paths = [INSTALL_DIR, os.path.relpath(ROOT, here)]
    paths += [os.path.relpath(p, here) for p in site.getsitepackages() if Path(p).is_dir()]
    return paths


def main() -> None:
    args = [a for a in sys.argv[1:] if a != "--standalone"]
    output = Path(args[0] if args else ROOT / "build" / "libk8saudit-aks.so")
    print(build(PLUGIN, output, search_path(output, "--standalone" in sys.argv)))


if __name__ == "__main__":
    main()
