"""`make run`: the whole pipeline on this machine, on Azurite.

AKS Event Hub capture (samples/: normal traffic and an attack story over two clusters) ->
the ingest function's own entry point, called with real `azure.functions.EventHubEvent`
objects -> Storage Queue on Azurite -> real Falco with the built plugin, the json plugin,
the official rules and the AKS rules (`rule_matching: all`, as the Helm values load them),
printing its alerts as a table, when Falco is found (`FALCO_BIN`,
else `falco` on PATH; `FALCO=0` declines it). Without Falco, the built plugin is driven
through its C ABI as Falco drives it (build/falco_host) and every event is printed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import sys
from pathlib import Path

from azure.storage.queue import QueueClient

import tests
from harness import falco, host
from harness.azurite import Azurite
from harness.function import entry, hub_events

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = [ROOT / "samples" / "eventhub-bodies.jsonl", ROOT / "samples" / "attack-story.jsonl"]
NAMES = {"QUEUE_NAME": "k8saudit", "DEADLETTER_QUEUE_NAME": "k8saudit-deadletter",
         "CLAIMCHECK_CONTAINER": "k8saudit-claims"}
# Where falcoctl installs the official rules, else the copy the tests use (k8saudit 0.18.0).
OFFICIAL_RULES = [falco.INSTALLED_RULES, tests.OFFICIAL_RULES]
FALCO_SECONDS = 60  # at most; the run stops once the queue is drained
SHOWN = ["ka.cluster.name", "ka.verb", "ka.user.name", "ka.target.resource",
         "ka.target.namespace", "ka.target.name", "ka.response.code"]


def ingest(azurite: Azurite, samples: list[Path]) -> None:
    bodies = [body for path in samples for body in path.read_bytes().splitlines()
              if body.strip()]
    entry(azurite.connection_string, NAMES)(hub_events(bodies))


def plugin_config(azurite: Azurite) -> str:
    return json.dumps({
        "queue_connection_string": azurite.connection_string,
        "queue_name": NAMES["QUEUE_NAME"],
        "deadletter_queue_name": NAMES["DEADLETTER_QUEUE_NAME"],
        "claimcheck_container": NAMES["CLAIMCHECK_CONTAINER"],
    })


def drain_with_host(config: str) -> None:
    rows = host.capture(host.LIB, "", SHOWN, config=config, max_timeouts=40)
    print(f"{'time (stageTimestamp)':32} {'cluster':14} {'verb':8} {'user':40} target")
    for row in rows:
        if "values" not in row:
            if "error" in row:
                sys.exit(f"plugin error: {row}")
            continue
        v = {k: (x[0] if isinstance(x, list) and x else "") for k, x in row["values"].items()}
        ts = dt.datetime.fromtimestamp(row["ts"] / 1e9, dt.UTC).isoformat(timespec="microseconds")
        target = "/".join(p for p in (v["ka.target.resource"], v["ka.target.namespace"],
                                      v["ka.target.name"]) if p)
        print(f"{ts:32} {v['ka.cluster.name'][:14]:14} {v['ka.verb']:8} "
              f"{v['ka.user.name'][:40]:40} {target} {v['ka.response.code']}")
    print(f"\n{sum(1 for r in rows if 'values' in r)} audit events reached the plugin.")


def run_falco(binary: Path, azurite: Azurite, config: str, rules: list[Path]) -> None:
    """Real Falco with this plugin (queue mode), the json plugin and the rules, until the
    queue is drained; then its alerts as a table."""
    queue = QueueClient.from_connection_string(azurite.connection_string, NAMES["QUEUE_NAME"])

    def drained(_: falco.FalcoRun) -> bool:
        return queue.get_queue_properties().approximate_message_count == 0

    print(f"Falco {binary} with {host.LIB.name} and {', '.join(map(str, rules))}")
    result = falco.run(binary, falco.PluginSpec(init_config=json.loads(config)), rules,
                       seconds=FALCO_SECONDS, until=drained, extra=falco.WITH_AKS_RULES)
    if result.returncode not in (0, None):
        sys.exit(f"falco failed ({result.returncode}):\n{result.stderr[-3000:]}")
    print(alerts_table(result.alerts))
    print(f"\n{len(result.alerts)} alerts from real Falco in {result.seconds:.1f} s.")


def alerts_table(alerts: list[dict]) -> str:
    rows = [("time", "priority", "rule", "cluster", "user", "target")]
    for alert in alerts:
        fields = alert.get("output_fields", {})
        target = "/".join(str(fields[k]) for k in ("ka.target.resource", "ka.target.namespace",
                                                  "ka.target.name") if fields.get(k))
        rows.append((alert["time"][11:19], alert["priority"], alert["rule"],
                     str(fields.get("ka.cluster.name", "")), str(fields.get("ka.user.name", "")),
                     target))
    widths = [min(max(len(r[i]) for r in rows), cap) for i, cap in
              enumerate((8, 13, 48, 14, 40, 60))]
    return "\n".join("  ".join(cell[:w].ljust(w) for cell, w in zip(row, widths, strict=True))
                     for row in rows)


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    logging.getLogger("azure").setLevel(logging.WARNING)
    logging.getLogger().handlers[0].addFilter(lambda r: "Auth level" not in r.getMessage())
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sample", type=Path, action="append",
                        help="Event Hub bodies, one a line (default: samples/*.jsonl)")
    parser.add_argument("--rules", type=Path,
                        default=next((p for p in OFFICIAL_RULES if p.is_file()), None),
                        help="k8s_audit_rules.yaml for real Falco")
    args = parser.parse_args()
    binary = falco.find_falco() if os.environ.get("FALCO") != "0" else None
    azurite = Azurite()
    print(f"Azurite on 127.0.0.1 (blob :{azurite.blob_port}, queue :{azurite.queue_port})")
    azurite.start()
    try:
        ingest(azurite, args.sample or SAMPLES)
        config = plugin_config(azurite)
        if binary is not None and args.rules is not None:
            run_falco(binary, azurite, config, [args.rules, falco.AKS_RULES])
        else:
            drain_with_host(config)
            print("No Falco found: the C host above drove the plugin as Falco would. For "
                  "alerts, set FALCO_BIN (../shared/tools/falco/setup.sh DIR unpacks one) "
                  "or install Falco (docs/install.md).")
    finally:
        azurite.close()


if __name__ == "__main__":
    main()
