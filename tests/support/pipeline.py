"""What the end-to-end queue tests share: a test's queues on Azurite, a writer that sends
audit events in the queue wire format, and the C host run as the Falco process."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from azure.core.exceptions import ResourceExistsError
from azure.storage.blob import ContainerClient
from azure.storage.queue import QueueClient

from extractor.envelope.normalize import AuditEvent
from extractor.message.codec import OutgoingMessage, pack
from harness.azurite import Azurite
from harness.host import HOST, LIB, requests_file

STAGE = "ResponseComplete"


def audit_events(n: int, *, prefix: str = "ev", cluster: str | None = "aks-e2e",
                 pad: int = 64, big_every: int = 0, big_size: int = 200_000) -> list[AuditEvent]:
    """n distinct audit events; every `big_every`-th carries `big_size` incompressible bytes
    (too large for a queue message: a claim check)."""
    events = []
    for i in range(n):
        big = big_every and i % big_every == big_every - 1
        filler = os.urandom(big_size // 2).hex() if big else f"{i:x}" * (pad // 8)
        audit_id = f"{prefix}-{i:06d}"
        doc = {"kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": "Metadata",
               "auditID": audit_id, "stage": STAGE, "verb": "get",
               "requestURI": f"/api/v1/namespaces/default/pods/p{i}",
               "user": {"username": "system:serviceaccount:default:e2e"},
               "stageTimestamp": "2026-11-18T00:56:24.719830Z",
               "annotations": {"cluster_name": cluster, "filler": filler}}
        events.append(AuditEvent(orjson.dumps(doc), 1_763_427_384_719_830_000 + i, audit_id,
                                 STAGE, cluster))
    return events


def data_multiset(items: Iterable[bytes]) -> Counter[bytes]:
    return Counter(items)


@dataclass
class Pipeline:
    """One test's queue, dead-letter queue and claim-check container on the shared Azurite."""

    azurite: Azurite
    names: dict[str, str]
    queue: QueueClient = field(init=False)
    deadletter: QueueClient = field(init=False)
    claims: ContainerClient = field(init=False)

    def __post_init__(self) -> None:
        conn = self.azurite.connection_string
        self.queue = QueueClient.from_connection_string(conn, self.names["queue"])
        self.deadletter = QueueClient.from_connection_string(conn, self.names["deadletter"])
        self.claims = ContainerClient.from_connection_string(conn, self.names["claims"])
        for create in (self.queue.create_queue, self.deadletter.create_queue,
                       self.claims.create_container):
            with contextlib.suppress(ResourceExistsError):
                create()

    def config(self, **overrides: Any) -> str:
        """init_config for the plugin's queue mode; fast by default (no rate limiting)."""
        values = {
            "queue_name": self.names["queue"],
            "queue_connection_string": self.azurite.connection_string,
            "deadletter_queue_name": self.names["deadletter"],
            "claimcheck_container": self.names["claims"],
            "rate_limit_events_per_second": 1_000_000,
            "rate_limit_burst": 1_000_000,
            **overrides,
        }
        return json.dumps(values)

    def send(self, events: Sequence[AuditEvent]) -> list[OutgoingMessage]:
        """Write as the ingest function does: claim-check blob first, then the message."""
        messages = pack(events)
        for message in messages:
            if message.blob is not None:
                self.claims.upload_blob(*message.blob, overwrite=True)
            self.queue.send_message(message.text)
        return messages

    def send_text(self, text: str) -> None:
        self.queue.send_message(text)

    def messages_left(self) -> int:
        """Messages in the queue, visible or not (a deleted one is gone)."""
        return self.queue.get_queue_properties().approximate_message_count

    def blob_names(self, prefix: str | None = None) -> list[str]:
        return list(self.claims.list_blob_names(name_starts_with=prefix))

    def dead_letters(self) -> list[dict[str, Any]]:
        return [json.loads(m.content) for m in self.deadletter.receive_messages(
            messages_per_page=32, visibility_timeout=600)]


# --- the Falco process ------------------------------------------------------------------

STATS_LINE = re.compile(r"stats source=queue:\S+ (.*)")


GAUGES = {"queue_backlog_messages", "queue_oldest_message_age", "seconds_since_last_receive"}


def stats_of(stderr: str) -> Counter[str]:
    """Counters of the last stats line (close() logs one); gauges (seconds, lengths) are
    not counters and are left out."""
    lines = STATS_LINE.findall(stderr)
    if not lines:
        return Counter()
    return Counter({k: int(v) for k, v in (p.split("=") for p in lines[-1].split())
                    if k not in GAUGES})


@dataclass
class Run:
    """Rows the host printed: events (data, ts, values), the end row, and the log."""

    rows: list[dict[str, Any]]
    stderr: str
    elapsed_s: float
    returncode: int | None

    @property
    def events(self) -> list[dict[str, Any]]:
        return [r for r in self.rows if "data" in r]

    @property
    def datas(self) -> list[bytes]:
        return [r["data"].encode() for r in self.events]

    @property
    def end(self) -> dict[str, Any] | None:
        return next((r for r in self.rows if r.get("end")), None)

    @property
    def stats(self) -> Counter[str]:
        return stats_of(self.stderr)


class Host:
    """build/falco_host `capture` as a child process: the Falco process a test can kill.

    Its stdout goes to a file the test tails, so what a killed host printed is all there.
    After `max_events` it calls next_batch `then` more times before close: by default once,
    as Falco asks for more after processing a batch (the plugin then acknowledges it);
    `then=0` closes right after the last batch, as Falco does on SIGTERM."""

    def __init__(self, config: str, *, params: str = "", keys: Sequence[str] = (),
                 max_events: int = -1, max_timeouts: int = 200, then: int = 1) -> None:
        self._stdout = tempfile.NamedTemporaryFile("w+b", suffix=".jsonl")  # noqa: SIM115
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            [str(HOST), str(LIB), "capture", config, params, requests_file(keys),
             str(max_events), str(max_timeouts), str(then)],
            stdout=self._stdout, stderr=self._stderr)

    def rows(self) -> list[dict[str, Any]]:
        """Every complete line printed so far."""
        text = Path(self._stdout.name).read_bytes()
        lines = text.split(b"\n")[:-1]  # the last one may be incomplete
        return [json.loads(line) for line in lines if line.strip()]

    def read_events(self, n: int, timeout_s: float = 30) -> list[dict[str, Any]]:
        """Wait until the host printed at least `n` event rows (or ended)."""
        deadline = time.monotonic() + timeout_s
        while True:
            rows = self.rows()
            if sum("data" in r for r in rows) >= n or self.proc.poll() is not None:
                return rows
            assert time.monotonic() < deadline, f"fewer than {n} events in {timeout_s} s"
            time.sleep(0.02)

    def kill(self) -> Run:
        """SIGKILL: no close(), nothing printed beyond what the host already flushed."""
        self.proc.send_signal(signal.SIGKILL)
        return self.wait()

    def wait(self, timeout_s: float = 120) -> Run:
        self.proc.wait(timeout=timeout_s)
        self._stderr.seek(0)
        stderr = self._stderr.read().decode("utf-8", "replace")
        return Run(self.rows(), stderr, time.monotonic() - self.started, self.proc.returncode)


def capture(config: str, **kwargs: Any) -> Run:
    run = Host(config, **kwargs).wait()
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.end is not None, run.stderr[-3000:]
    return run
