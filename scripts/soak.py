"""`make soak`: a bounded chaos soak of the whole pipeline on this machine.

Good audit events of three clusters (each in `kube-audit`, about half again in
`kube-audit-admin`) and about 1% hostile records go through the ingest function's own entry
point in Event Hub batches (real `EventHubEvent` objects; a failed invocation is retried, as
the Functions host retries it) into Azurite; hostile queue messages are put beside them.
Real Falco drains the queue with the plugin and a rule that fires on every audit event.
Meanwhile Falco is SIGKILLed and restarted, and storage goes down (Azurite stopped
gracefully: an outage that loses nothing, as in Azure) and comes back.

At the end it prints lost and duplicated events, every hostile item by where it ended, dead
letters by reason and Falco's RSS over time, and exits 1 on any loss, any good event
dead-lettered, or any hostile item that ended elsewhere than docs/failure-modes.md says.
`tests/e2e/test_soak.py` runs a short one in `make test`.
"""

from __future__ import annotations

import argparse
import base64
import json
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from azure.storage.queue import QueueClient

from harness import falco as runner
from harness.azurite import Azurite
from harness.function import Entry, entry, hub_events
from harness.memory import status_kib

NAMES = {"QUEUE_NAME": "soak", "DEADLETTER_QUEUE_NAME": "soak-deadletter",
         "CLAIMCHECK_CONTAINER": "soak-claims"}
CLUSTERS = ["aks-soak-a", "aks-soak-b", "aks-soak-c"]
EVERY_EVENT_RULE = """
- rule: Soak every audit event
  desc: one alert per audit event Falco reads, to count them
  condition: ka.auditid != ""
  output: "%ka.auditid %ka.stage %ka.cluster.name"
  priority: INFORMATIONAL
  source: k8s_audit
"""
BODY_RECORDS = 40  # records per Event Hub body at most
BATCH_BODIES = 16  # bodies per function invocation
HOSTILE_EVERY = 100  # one hostile record per this many good events
MARK = "soak-hostile-"  # in every hostile item, to find its dead letter


@dataclass
class Plan:
    events: int = 100_000
    kills: int = 4
    outages: int = 2
    outage_s: tuple[float, float] = (15.0, 25.0)
    hostile_messages: int = 33
    rate: float = 400.0  # good events a second fed (0: as fast as the function takes them)
    visibility_s: int = 60  # the plugin's: a killed Falco's messages reappear after this
    seconds: float = 600.0  # the whole run at most


@dataclass
class Result:
    good: int = 0
    lost: int = 0
    duplicates: int = 0
    unknown_delivered: int = 0
    hostile: Counter[str] = field(default_factory=Counter)  # "kind -> where it ended"
    misplaced: list[str] = field(default_factory=list)
    letters: Counter[str] = field(default_factory=Counter)
    good_dead_lettered: int = 0
    rss_mb: list[tuple[float, float]] = field(default_factory=list)
    seconds: float = 0.0
    kills: int = 0
    outages: int = 0

    @property
    def ok(self) -> bool:
        return not (self.lost or self.misplaced or self.good_dead_lettered
                    or self.unknown_delivered)


# --- input ---------------------------------------------------------------------------------

def resource_id(cluster: str) -> str:
    return ("/SUBSCRIPTIONS/00000000-0000-0000-0000-000000000000/RESOURCEGROUPS/RG-SOAK/"
            f"PROVIDERS/MICROSOFT.CONTAINERSERVICE/MANAGEDCLUSTERS/{cluster.upper()}")


def audit_log(audit_id: str, i: int, extra: str = "") -> str:
    return ('{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Request",'
            f'"auditID":"{audit_id}","stage":"ResponseComplete","verb":"update",'
            f'"requestURI":"/api/v1/namespaces/soak/configmaps/c{i}",'
            '"user":{"username":"system:serviceaccount:soak:writer"},'
            f'"objectRef":{{"resource":"configmaps","namespace":"soak","name":"c{i}"}},'
            f'{extra}"stageTimestamp":"2026-12-03T10:00:00.{i % 1_000_000:06d}Z"}}')


def record(category: str, cluster: str, log: str, pod: str = '"kube-apiserver-0"') -> str:
    """One AKS diagnostic record as JSON text (`pod` is raw JSON: hostile ones are not)."""
    return ('{"operationName":"Microsoft.ContainerService/managedClusters/diagnosticLogs/Read",'
            f'"category":"{category}","resourceId":"{resource_id(cluster)}",'
            f'"time":"2026-12-03T10:00:00Z","properties":{{"log":{json.dumps(log)},'
            f'"pod":{pod},"stream":"stdout"}}}}')


# Hostile records: (kind, record maker, where it must end). Docs: docs/failure-modes.md.
def _hostile(kind: str, n: int, cluster: str) -> tuple[str, str]:
    mark = f"{MARK}{n:06d}"
    good_log = audit_log(mark, n)
    return {
        "envelope surrogate": (record("kube-audit", cluster, good_log, f'"\\ud800{mark}"'),
                               "dead letter: not_json"),
        "envelope NaN": (record("kube-audit", cluster, good_log.replace(mark, mark + "-x"),
                                "NaN").replace('"stream"', f'"m":"{mark}","stream"'),
                         "dead letter: not_json"),
        "cut log without auditID": (record("kube-audit", cluster, good_log.replace(
            f'"auditID":"{mark}",', "")[:120] + f'"{mark}'),
            "dead letter: truncated_unrecoverable"),
        "log not JSON": (record("kube-audit", cluster, f"I1203 klog line {mark}"),
                         "dead letter: not_json"),
        "auditID a number": (record("kube-audit", cluster, good_log.replace(
            f'"auditID":"{mark}"', f'"auditID":{n},"m":"{mark}"')),
            "dead letter: missing_audit_id"),
        "integer beyond 64 bits": (record("kube-audit", cluster, audit_log(
            mark, n, '"requestObject":{"n":123456789012345678901234567890},')), "delivered"),
        "log nested 1,100 deep": (record("kube-audit", cluster, audit_log(
            mark, n, '"requestObject":' + "[" * 1100 + "]" * 1100 + ",")), "delivered"),
    }[kind]


HOSTILE_KINDS = ["envelope surrogate", "envelope NaN", "cut log without auditID",
                 "log not JSON", "auditID a number", "integer beyond 64 bits",
                 "log nested 1,100 deep"]


def bodies(plan: Plan) -> tuple[list[bytes], set[str], dict[str, str]]:
    """Event Hub bodies; the auditIDs Falco must see; hostile mark -> where it must end."""
    records: list[str] = []
    good: set[str] = set()
    hostile: dict[str, str] = {}
    for i in range(plan.events):
        cluster = CLUSTERS[i % len(CLUSTERS)]
        audit_id = f"soak-{i:07d}"
        log = audit_log(audit_id, i)
        records.append(record("kube-audit", cluster, log))
        if i % 2:
            records.append(record("kube-audit-admin", cluster, log))
        good.add(audit_id)
        if i % HOSTILE_EVERY == HOSTILE_EVERY - 1:
            n = len(hostile)
            kind = HOSTILE_KINDS[n % len(HOSTILE_KINDS)]
            text, where = _hostile(kind, n, cluster)
            records.append(text)
            hostile[f"{MARK}{n:06d}"] = f"{kind} -> {where}"
            if where == "delivered":
                good.add(f"{MARK}{n:06d}")
    out = []
    for start in range(0, len(records), BODY_RECORDS):
        chunk = records[start:start + BODY_RECORDS]
        out.append(('{"records":[' + ",".join(chunk) + "]}").encode())
    return out, good, hostile


def hostile_messages(count: int) -> dict[str, str]:
    """Queue message text -> where it must end (the plugin's dead letter)."""
    def frame(header: dict[str, Any], body: bytes = b"") -> str:
        head = json.dumps(header).encode()
        return base64.b64encode(head + b"\n" + body if body else head).decode()

    out = {}
    for n in range(count):
        mark = f"{MARK}m{n:06d}"
        kind = n % 4
        if kind == 0:
            out[f"<{mark}> not base64"] = "dead letter: bad_base64"
        elif kind == 1:
            out[frame({"v": 2, "id": mark, "n": 1, "sha256": "0" * 64})] = (
                "dead letter: unsupported_version")
        elif kind == 2:
            out[frame({"v": 1, "id": f"{n:032x}", "n": 1, "sha256": "0" * 64,
                       "blob": f"v1/{n:032x}.zlib", "m": mark})] = "dead letter: claimcheck_missing"
        else:
            out[frame({"v": 1, "id": mark, "n": 1, "sha256": "0" * 64,
                       "blob": "../other/x.zlib"})] = "dead letter: claimcheck_invalid"
    return out


# --- the moving parts ------------------------------------------------------------------

class Falco:
    """Real Falco draining the queue; killed and restarted at will; every alert counted."""

    def __init__(self, binary: Path, azurite: Azurite, workdir: Path, visibility_s: int
                 ) -> None:
        rules = workdir / "every_event.yaml"
        rules.write_text(EVERY_EVENT_RULE)
        init = {"queue_connection_string": azurite.connection_string,
                "queue_name": NAMES["QUEUE_NAME"],
                "deadletter_queue_name": NAMES["DEADLETTER_QUEUE_NAME"],
                "claimcheck_container": NAMES["CLAIMCHECK_CONTAINER"],
                "visibility_timeout_seconds": visibility_s, "stats_interval_seconds": 10}
        settings = runner.config(binary, runner.PluginSpec(init_config=init), [rules])
        self.config = workdir / "falco.yaml"
        self.config.write_text(json.dumps(settings))
        self.binary = binary
        self.seen: Counter[str] = Counter()
        self.last_alert = time.monotonic()
        self.rss: list[tuple[float, float]] = []
        self.proc: subprocess.Popen[str] | None = None
        self.lock = threading.Lock()
        self.log = workdir / "falco.log"

    def start(self) -> None:
        with self.log.open("a") as log:
            self.proc = subprocess.Popen(
                runner.command(self.binary, self.config),
                stdout=subprocess.PIPE, stderr=log, text=True)
        threading.Thread(target=self._read, args=(self.proc,), daemon=True).start()

    def _read(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None  # stdout=PIPE
        for line in proc.stdout:
            if not line.startswith("{"):
                continue
            fields = json.loads(line).get("output_fields", {})
            if "ka.auditid" in fields:
                with self.lock:
                    self.seen[fields["ka.auditid"]] += 1
                    self.last_alert = time.monotonic()

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()

    def sample_rss(self, started: float) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        kib = status_kib(self.proc.pid, "VmRSS")
        if kib is not None:
            self.rss.append((time.monotonic() - started, kib / 1024))


def feed(function: Entry, batch: list[bytes], first: int) -> None:
    """One Event Hub batch through the function; retried while storage fails, as the
    Functions host's retry-forever policy does (a retried batch is sent again whole)."""
    events = hub_events(batch, first)
    while True:
        try:
            function(events)
            return
        except Exception:  # storage down: the host retries the invocation
            time.sleep(1.0)


def dead_letters(azurite: Azurite) -> list[dict[str, Any]]:
    client = QueueClient.from_connection_string(azurite.connection_string,
                                                NAMES["DEADLETTER_QUEUE_NAME"])
    letters: list[dict[str, Any]] = []
    while True:
        page = list(client.receive_messages(messages_per_page=32, visibility_timeout=600))
        if not page:
            return letters
        letters += [json.loads(m.content) for m in page]


def raw_text(letter: dict[str, Any]) -> str:
    raw = base64.b64decode(letter.get("raw", ""))
    text = raw.decode("utf-8", "replace")
    return text + _decoded(text)  # a plugin letter holds the message text, maybe base64


# --- the run -------------------------------------------------------------------------------

def run(plan: Plan, binary: Path, say: Callable[[str], None] = print) -> Result:
    started = time.monotonic()
    deadline = started + plan.seconds
    result = Result()
    all_bodies, good, hostile = bodies(plan)
    messages = hostile_messages(plan.hostile_messages)
    result.good = len(good)
    azurite = Azurite()
    azurite.start()
    with tempfile.TemporaryDirectory(prefix="soak-") as tmp:
        try:
            function = entry(azurite.connection_string, {
                **NAMES, "STORAGE_RETRY_TOTAL": "0", "rate_limit_events_per_second": "0"})
            falco = Falco(binary, azurite, Path(tmp), plan.visibility_s)
            falco.start()
            queue = QueueClient.from_connection_string(azurite.connection_string,
                                                       NAMES["QUEUE_NAME"])
            batches = [all_bodies[i:i + BATCH_BODIES]
                       for i in range(0, len(all_bodies), BATCH_BODIES)]
            kill_at = {len(batches) * (k + 1) // (plan.kills + 1) for k in range(plan.kills)}
            outage_at = {len(batches) * (2 * k + 1) // (2 * plan.outages)
                         for k in range(plan.outages)}
            hostile_at = {len(batches) * k // max(1, plan.hostile_messages)
                          for k in range(plan.hostile_messages)}
            texts = iter(messages)
            events_per_body = plan.events / len(all_bodies)
            say(f"soak: {plan.events} good events in {len(all_bodies)} bodies, "
                f"{len(hostile)} hostile records, {len(messages)} hostile messages, "
                f"{plan.kills} Falco SIGKILLs, {plan.outages} storage outages")
            for n, batch in enumerate(batches):
                if time.monotonic() > deadline:
                    raise TimeoutError("soak: out of time while feeding")
                if n in kill_at:
                    falco.kill()
                    result.kills += 1
                    say(f"  {time.monotonic() - started:6.1f} s  SIGKILL Falco")
                    falco.start()
                if n in outage_at:
                    _outage(azurite, plan, function, batch, n, started, say)
                    result.outages += 1
                else:
                    feed(function, batch, n * BATCH_BODIES)
                for _ in range(sum(1 for k in hostile_at if k == n)):
                    text = next(texts, None)
                    if text is not None:
                        queue.send_message(text)
                falco.sample_rss(started)
                if plan.rate:  # a steady stream, as clusters send
                    due = started + (n + 1) * BATCH_BODIES * events_per_body / plan.rate
                    time.sleep(max(0.0, due - time.monotonic()))
            say(f"  {time.monotonic() - started:6.1f} s  fed; draining")
            while time.monotonic() < deadline:
                falco.sample_rss(started)
                quiet = time.monotonic() - falco.last_alert > 15
                if queue.get_queue_properties().approximate_message_count == 0 and quiet:
                    break
                time.sleep(1)
            falco.stop()
            letters = dead_letters(azurite)
        finally:
            azurite.close()
    result.seconds = time.monotonic() - started
    result.rss_mb = falco.rss
    _tally(result, falco.seen, good, hostile, messages, letters)
    return result


def _outage(azurite: Azurite, plan: Plan, function: Entry,
            batch: list[bytes], n: int, started: float, say: Callable[[str], None]) -> None:
    """Storage goes down for a while; the batch in hand is retried until it is back."""
    low, high = plan.outage_s
    length = low + (high - low) * ((n * 7919) % 100) / 100
    say(f"  {time.monotonic() - started:6.1f} s  storage down for {length:.0f} s")
    azurite.stop()
    back = threading.Timer(length, azurite.start)
    back.start()
    feed(function, batch, n * BATCH_BODIES)
    back.join()


def _tally(result: Result, seen: Counter[str], good: set[str], hostile: dict[str, str],
           messages: dict[str, str], letters: list[dict[str, Any]]) -> None:
    result.lost = len(good - set(seen))
    result.duplicates = sum(n - 1 for n in seen.values() if n > 1)
    result.unknown_delivered = len(set(seen) - good)
    result.letters = Counter(f"{letter['source']}: {letter['reason']}" for letter in letters)
    ended: dict[str, list[str]] = {}
    for letter in letters:
        text = raw_text(letter)
        marks = [m for m in (*hostile, *(_mark(t) for t in messages)) if m and m in text]
        if not marks:
            result.good_dead_lettered += 1
        for mark in marks:
            ended.setdefault(mark, []).append(f"dead letter: {letter['reason']}")
    for mark, expected in hostile.items():
        kind, where = expected.split(" -> ")
        got = ended.get(mark, ["delivered"] if seen.get(mark) else ["nowhere"])
        result.hostile[f"{kind} -> {', '.join(got)}"] += 1
        if got != [where]:
            result.misplaced.append(f"{mark} ({kind}): {got}, not {where}")
    for text, where in messages.items():
        got = ended.get(_mark(text), ["nowhere"])
        result.hostile[f"queue message -> {', '.join(got)}"] += 1
        if got != [where]:
            result.misplaced.append(f"message {_mark(text)}: {got}, not {where}")


def _mark(text: str) -> str:
    """The mark a hostile message carries, in its text or its base64 frame."""
    for candidate in (text, _decoded(text)):
        start = candidate.find(MARK)
        if start >= 0:
            end = start + len(MARK)
            while end < len(candidate) and candidate[end].isalnum():
                end += 1
            return candidate[start:end]
    return ""


def _decoded(text: str) -> str:
    try:
        return base64.b64decode(text, validate=True).decode("utf-8", "replace")
    except ValueError:
        return ""


def report(result: Result) -> str:
    lines = [
        f"good events {result.good}: lost {result.lost}, duplicates {result.duplicates} "
        f"({100 * result.duplicates / max(1, result.good):.2f}%), unknown delivered "
        f"{result.unknown_delivered}; {result.kills} Falco SIGKILLs, {result.outages} "
        f"storage outages, {result.seconds:.0f} s",
        "hostile items by where they ended:",
        *(f"  {n:5d}  {what}" for what, n in sorted(result.hostile.items())),
        "dead letters by reason:",
        *(f"  {n:5d}  {what}" for what, n in sorted(result.letters.items())),
        f"good events dead-lettered: {result.good_dead_lettered}",
    ]
    if result.rss_mb:
        step = max(1, len(result.rss_mb) // 10)
        samples = result.rss_mb[::step]
        lines.append("Falco RSS (s: MB): " + ", ".join(f"{t:.0f}: {mb:.0f}" for t, mb in samples)
                     + f"; max {max(mb for _, mb in result.rss_mb):.0f} MB")
    lines += [f"MISPLACED {m}" for m in result.misplaced]
    lines.append("OK" if result.ok else "FAILED")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=Plan.events)
    parser.add_argument("--kills", type=int, default=Plan.kills)
    parser.add_argument("--outages", type=int, default=Plan.outages)
    parser.add_argument("--rate", type=float, default=Plan.rate,
                        help="good events fed a second (0: as fast as possible)")
    parser.add_argument("--seconds", type=float, default=Plan.seconds)
    args = parser.parse_args()
    binary = runner.find_falco()
    if binary is None:
        sys.exit("soak: no Falco (FALCO_BIN, falco on PATH, or make falco)")
    plan = Plan(events=args.events, kills=args.kills, outages=args.outages, rate=args.rate,
                hostile_messages=max(1, args.events // 3000), seconds=args.seconds)
    result = run(plan, binary)
    print(report(result))
    sys.exit(0 if result.ok else 1)


if __name__ == "__main__":
    main()
