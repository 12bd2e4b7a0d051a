"""Real Falco, the official rules, the same events: this plugin against upstream k8saudit.

Replays the same distinct audit events (a file of one event per line) through Falco twice,
with the upstream Go k8saudit 0.18.0 (open params: the path) and with this plugin (file
replay), and prints each run's wall time (process start to exit, rules loading included),
the ratio, and both alert counts. Needs a Falco with the upstream plugin beside it
(`../shared/tools/falco/setup.sh DIR`, then FALCO_BIN=DIR/bin/falco); skipped otherwise.
"""

from __future__ import annotations

import sys

from harness import falco
from tests import FIXTURES, OFFICIAL_RULES

RULES = [OFFICIAL_RULES]
INPUTS = [FIXTURES / "audit-events" / "falco-traces", FIXTURES / "audit-events" /
          "generated.jsonl"]


def main() -> None:
    binary = falco.find_falco()
    upstream = binary.resolve().parent.parent / "plugins" / "libk8saudit.so" if binary else None
    if binary is None or upstream is None or not upstream.is_file():
        print("bench_falco: skipped (needs FALCO_BIN with plugins/libk8saudit.so beside it)")
        return
    for path in INPUTS:
        theirs = falco.run(binary, falco.PluginSpec("k8saudit", upstream, "", str(path)), RULES,
                           seconds=600)
        ours = falco.run(binary, falco.PluginSpec(open_params=f"file://{path}"), RULES,
                         seconds=600)
        for name, run in (("k8saudit", theirs), ("k8saudit-aks", ours)):
            if run.returncode != 0:
                sys.exit(f"{name} on {path.name} failed: {run.stderr[-1000:]}")
        print(f"{path.name}: upstream k8saudit {theirs.seconds:.2f} s, {len(theirs.rules())} "
              f"alerts; k8saudit-aks {ours.seconds:.2f} s, {len(ours.rules())} alerts; "
              f"wall-time ratio aks/upstream {ours.seconds / theirs.seconds:.2f}")


if __name__ == "__main__":
    main()
