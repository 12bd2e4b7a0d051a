"""`make run`: the whole pipeline on this machine, on Azurite.

AKS Event Hub capture (samples/) -> the ingest function's own entry point, called with real
`azure.functions.EventHubEvent` objects -> Storage Queue on Azurite -> the built plugin,
loaded and driven through its C ABI as Falco drives it (build/falco_host), or real Falco
when a `falco` binary is on PATH (`FALCO=0` keeps the C host). Prints what Falco sees.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import azure.functions as func

from harness import host
from harness.azurite import Azurite

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "samples" / "eventhub-bodies.jsonl"
NAMES = {"QUEUE_NAME": "k8saudit", "DEADLETTER_QUEUE_NAME": "k8saudit-deadletter",
         "CLAIMCHECK_CONTAINER": "k8saudit-claims"}
DEFAULT_RULES = Path("/etc/falco/k8s_audit_rules.yaml")  # where falcoctl installs them
SHOWN = ["ka.cluster.name", "ka.verb", "ka.user.name", "ka.target.resource",
         "ka.target.namespace", "ka.target.name", "ka.response.code"]


def event_hub_events(path: Path) -> list[func.EventHubEvent]:
    now = dt.datetime.now(dt.UTC)
    return [
        func.EventHubEvent(body=body, enqueued_time=now, partition_key=None,
                           sequence_number=i, offset=str(i), iothub_metadata=None)
        for i, body in enumerate(path.read_bytes().splitlines())
        if body.strip()
    ]


def ingest(azurite: Azurite, sample: Path) -> None:
    os.environ.update({"QUEUE_CONNECTION_STRING": azurite.connection_string, **NAMES})
    import function_app  # reads its app settings on first use, as the Functions host would

    function_app.ingestor().ensure_resources()
    (function,) = [f for f in function_app.app.get_functions()
                   if f.get_function_name() == "ingest_audit"]
    function.get_user_function()(event_hub_events(sample))


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


def run_falco(config: str, rules: Path | None) -> None:
    """Real Falco with this plugin and the json plugin, until it has drained the queue."""
    with tempfile.TemporaryDirectory() as tmp:
        cfg = Path(tmp) / "falco.yaml"
        cfg.write_text(json.dumps({
            "plugins": [
                {"name": "k8saudit-aks", "library_path": str(host.LIB),
                 "init_config": json.loads(config), "open_params": ""},
                {"name": "json", "library_path": "libjson.so", "init_config": ""},
            ],
            "load_plugins": ["k8saudit-aks", "json"],
            "rules_files": [str(rules)] if rules and rules.exists() else [],
            "stdout_output": {"enabled": True},
            "json_output": False,
        }))
        # -M: stop after that many seconds; the queue never ends by itself
        subprocess.run(["falco", "-c", str(cfg), "-M", "30"], timeout=120, check=False)


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    logging.getLogger("azure").setLevel(logging.WARNING)
    logging.getLogger().handlers[0].addFilter(lambda r: "Auth level" not in r.getMessage())
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sample", type=Path, default=SAMPLE)
    parser.add_argument("--rules", type=Path, default=DEFAULT_RULES,
                        help="k8s_audit_rules.yaml for real Falco")
    args = parser.parse_args()
    azurite = Azurite()
    print(f"Azurite on 127.0.0.1 (blob :{azurite.blob_port}, queue :{azurite.queue_port})")
    azurite.start()
    try:
        ingest(azurite, args.sample)
        config = plugin_config(azurite)
        if shutil.which("falco") and os.environ.get("FALCO") != "0":
            run_falco(config, args.rules)
        else:
            drain_with_host(config)
    finally:
        azurite.close()


if __name__ == "__main__":
    main()
