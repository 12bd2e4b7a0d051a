"""The Event Hub source: real checkpoint store on Azurite, fake AMQP receiver
(`tests.support.eventhub`: the narrowest network boundary of `EventHubConsumerClient`,
as no Event Hubs emulator runs here), publishing fixtures/aks/eventhub-bodies.jsonl.

The C ABI tests need no fake: the hub is an unreachable loopback port.
"""

from __future__ import annotations

import json
import logging
import resource
import subprocess
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import orjson
import pytest
from azure.eventhub import EventHubConsumerClient
from azure.storage.blob import ContainerClient

from extractor.envelope.normalize import TRUNCATED_ANNOTATION, Reason, parse_documents
from extractor.policy.chain import Chain
from harness import host
from plugin.k8saudit_aks.sources import eventhub
from plugin.sdk import Event, Timeout
from tests import FIXTURES
from tests.support.aks_fixture import expected_rows
from tests.support.eventhub import SECRET, FakeHub, batches, config, open_instance, speed_up, take

UNREACHABLE_HUB = f"Endpoint=sb://127.0.0.1:1/;SharedAccessKeyName=x;SharedAccessKey={SECRET};EntityPath=hub"
AKS = FIXTURES / "aks"
BODIES = (AKS / "eventhub-bodies.jsonl").read_bytes().splitlines()


# -- the fake AMQP boundary --------------------------------------------------------------





# -- helpers -------------------------------------------------------------------------------

@pytest.fixture(autouse=True)
def fast(monkeypatch: pytest.MonkeyPatch) -> None:
    speed_up(monkeypatch)










def wait_for(predicate: Callable[[], bool], timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.02)


def checkpoints(azurite: Any, container: str) -> dict[str, dict[str, str]]:
    """Checkpoint blobs as the store wrote them: partition -> metadata."""
    blobs = ContainerClient.from_connection_string(azurite.connection_string, container)
    return {b.name.rsplit("/", 1)[1]: b.metadata
            for b in blobs.list_blobs(include=["metadata"]) if "/checkpoint/" in b.name}


def annotations(event: Event) -> dict[str, Any]:
    value = orjson.loads(event.data).get("annotations")
    return value if isinstance(value, dict) else {}


def key(event: Event) -> tuple[str, str]:
    """(auditID, stage): unique in the fixtures. (The cluster annotation is not compared:
    some fixture events carry their own `cluster_name`, which is kept.)"""
    doc = orjson.loads(event.data)
    return doc["auditID"], doc["stage"]


def keys_of(bodies: list[bytes]) -> list[tuple[str, str]]:
    batch = Chain(dedupe_window=100_000, fallback_cluster="my-cluster").admit(
        parse_documents(bodies))
    return [(e.audit_id, e.stage) for e in batch.events]


def per_message_counts(bodies: list[bytes]) -> list[int]:
    """Audit events each body yields when parsed in order with one dedupe window."""
    chain = Chain(dedupe_window=100_000, fallback_cluster="my-cluster")
    return [len(chain.admit(parse_documents([b])).events) for b in bodies]


def handed_through(counts: list[int], n_events: int) -> int:
    """Index of the last message whose events all lie in the first `n_events` (or -1)."""
    total, last = 0, -1
    for i, c in enumerate(counts):
        total += c
        if total > n_events:
            break
        last = i
    return last


# -- tests -----------------------------------------------------------------------------------

def test_fixture_delivered_completely_at_default_rate(azurite: Any, names: dict) -> None:
    """113 bodies over two partitions: every expected audit event exactly once (truncated
    ones when salvageable), at most 100/s after a burst of 200, nothing dropped."""
    hub = FakeHub()
    for i, body in enumerate(BODIES):
        hub.publish(body, str(i % 2))
    expected = expected_rows()
    whole = Counter((e["auditID"], e["stage"]) for e in expected if not e["truncated"])
    truncated = {(e["auditID"], e["stage"]) for e in expected if e["truncated"]}

    instance = open_instance(azurite, names["checkpoints"], hub)
    try:
        started = time.monotonic()
        events = take(instance, 670)
        elapsed = time.monotonic() - started
        with pytest.raises(Timeout):
            instance.next_batch()
    finally:
        instance.close()

    salvaged = Counter(key(e) for e in events if annotations(e).get(TRUNCATED_ANNOTATION))
    assert set(salvaged) == truncated  # every truncated event kept auditID and stage
    assert Counter(key(e) for e in events) == whole + salvaged
    assert elapsed >= (len(events) - 200) / 100 - 0.5   # the rate limit held
    counts = instance.stats.counts
    assert counts["messages"] == len(BODIES)
    assert counts["delivered"] == len(events)
    assert counts["received"] == counts["delivered"] + counts["deduplicated"]
    reference = Chain(dedupe_window=100_000).admit(parse_documents(BODIES)).counts  # sums
    assert counts["deduplicated"] == reference[Reason.DUPLICATE] > 0
    assert counts[f"skipped.{Reason.CATEGORY_NOT_ACCEPTED}"] == reference[
        Reason.CATEGORY_NOT_ACCEPTED] > 0
    assert reference[Reason.TRUNCATED_UNRECOVERABLE] == 0
    assert set(checkpoints(azurite, names["checkpoints"])) == {"0", "1"}


def test_checkpoint_only_after_delivery_and_resume(azurite: Any, names: dict) -> None:
    """A checkpoint covers only messages whose events went out in a batch Falco consumed
    (it called next_batch again); close keeps the last batch unconfirmed; a restart resumes
    right after the checkpoint."""
    bodies = BODIES[:20]
    counts = per_message_counts(bodies)
    hub = FakeHub(("0",))
    for body in bodies:
        hub.publish(body)
    container = names["checkpoints"]
    instance = open_instance(azurite, container, hub,
                             rate_limit_events_per_second=200, rate_limit_burst=50)
    try:
        wait_for(lambda: instance.stats.counts["messages"] == len(bodies))
        first = next(batches(instance))
        assert len(first) == 50
        time.sleep(0.5)  # several housekeeper rounds
        assert instance.flush_checkpoints() == 0
        assert checkpoints(azurite, container) == {}   # batch 1 not consumed yet

        second = next(batches(instance))                # Falco consumed batch 1
        instance.flush_checkpoints()
        through = handed_through(counts, len(first))
        assert checkpoints(azurite, container)["0"] == {
            "offset": hub.logs["0"][through].offset, "sequencenumber": str(through)}

        delivered, last = first + second, second
        while len(delivered) < sum(counts):
            last = next(batches(instance))
            delivered += last
    finally:
        instance.close()
    assert len(delivered) == sum(counts)
    # close: the last batch may not have been consumed, so it is not checkpointed
    through = handed_through(counts, len(delivered) - len(last))
    assert through < len(bodies) - 1
    assert checkpoints(azurite, container)["0"]["sequencenumber"] == str(through)
    assert instance.stats.counts["checkpoints"] >= 2

    again = open_instance(azurite, container, hub)
    try:
        rest = bodies[through + 1:]
        replayed = take(again, sum(per_message_counts(rest)))
    finally:
        again.close()
    assert [key(e) for e in replayed] == keys_of(rest)


def test_malformed_messages_are_dead_lettered_and_the_partition_goes_on(
        azurite: Any, names: dict) -> None:
    """Each bad record costs itself: counted, written as a dead-letter blob beside the
    checkpoints (raw kept), and the partition goes on: each item costs only itself."""
    raw_event = (b'{"kind":"Event","apiVersion":"audit.k8s.io/v1","auditID":"raw-1",'
                 b'"stage":"ResponseComplete","stageTimestamp":"2026-01-01T00:00:00Z"}')
    cut = {"records": [{"category": "kube-audit", "resourceId": "/x/managedClusters/c1",
                        "properties": {"log": '{"kind": "Ev'}}]}
    deep = {"records": [{"category": "kube-audit", "resourceId": "/x/managedClusters/c1",
                         "properties": {"log": raw_event.decode()[:-1].replace(
                             "raw-1", "deep-1") + ',"o":' + '{"a":' * 1025 + "1"
                             + "}" * 1025 + "}"}}]}
    bodies = [BODIES[0], b"not json at all", b'{"records": "nope"}', orjson.dumps(cut),
              b"[1, 2", raw_event, orjson.dumps(deep), BODIES[1]]
    hub = FakeHub(("0",))
    for body in bodies:
        hub.publish(body)
    container = names["checkpoints"]
    instance = open_instance(azurite, container, hub)
    try:
        n = sum(per_message_counts(bodies))
        events = take(instance, n)
        with pytest.raises(Timeout):
            instance.next_batch()                       # confirms the last batch
        instance.flush_checkpoints()
        assert checkpoints(azurite, container)["0"]["sequencenumber"] == str(len(bodies) - 1)
    finally:
        instance.close()
    assert [key(e) for e in events] == keys_of(bodies)          # BODIES[1] came after
    raw = next(e for e in events if key(e)[0] == "raw-1")
    assert annotations(raw)["cluster_name"] == "my-cluster"     # open params: fallback
    counts = instance.stats.counts
    assert counts["skipped.not_json"] == 2
    assert counts["skipped.not_audit_event"] >= 1
    assert counts["skipped.truncated_unrecoverable"] == 1
    assert counts["messages"] == len(bodies)
    deep_event = next(e for e in events if key(e)[0] == "deep-1")
    assert annotations(deep_event)["k8saudit-aks/omitted"] == "o"
    blobs = ContainerClient.from_connection_string(azurite.connection_string, container)
    letters = [orjson.loads(blobs.download_blob(name).readall())
               for name in blobs.list_blob_names(name_starts_with="deadletter/")]
    reasons = Counter(letter["reason"] for letter in letters)
    assert reasons == {"not_json": 2, "not_audit_event": counts["skipped.not_audit_event"],
                       "truncated_unrecoverable": 1}
    assert all(letter["source"] == "plugin" and letter["raw"] for letter in letters)
    assert sum(v for k, v in counts.items() if k.startswith("dead_lettered.")) == len(letters)


def test_connection_loss_and_recovery(azurite: Any, names: dict,
                                      caplog: pytest.LogCaptureFixture) -> None:
    """The link fails for a while: next_batch keeps answering Timeout, retries back off,
    error lines repeat (secret-free), and after recovery nothing is lost or repeated."""
    caplog.set_level(logging.INFO, logger="k8saudit-aks.eventhub")
    bodies = BODIES[:20]
    counts = per_message_counts(bodies)
    hub = FakeHub(("0",))
    for body in bodies[:10]:
        hub.publish(body)
    instance = open_instance(azurite, names["checkpoints"], hub,
                             rate_limit_events_per_second=10_000, rate_limit_burst=10_000)
    try:
        events = take(instance, sum(counts[:10]))
        hub.down.set()
        for body in bodies[10:]:
            hub.publish(body)
        outage_end = time.monotonic() + 3
        while time.monotonic() < outage_end:
            with pytest.raises(Timeout):
                instance.next_batch()
        hub.down.clear()
        events += take(instance, sum(counts[10:]))
        with pytest.raises(Timeout):
            instance.next_batch()
    finally:
        instance.close()

    assert [key(e) for e in events] == keys_of(bodies)
    gaps = [b - a for a, b in zip(hub.attempts, hub.attempts[1:], strict=False)]
    assert len(gaps) >= 2 and gaps[-1] > gaps[0]               # backoff grows
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) >= 3 and all("unreachable" in e for e in errors)
    assert all("s since last receive" in e for e in errors)
    assert any("reachable again" in r.getMessage() for r in caplog.records)
    assert SECRET not in caplog.text
    assert instance.stats.counts["errors"] >= len(hub.attempts)


def test_no_partition_claimed_does_not_spin(azurite: Any, names: dict) -> None:
    """Hub unreachable from the start: the SDK's receive loop has no partition to serve;
    it must not burn a core next to Falco's thread."""
    hub = FakeHub()
    hub.down.set()
    instance = open_instance(azurite, names["checkpoints"], hub)
    try:
        time.sleep(0.5)
        before, started = resource.getrusage(resource.RUSAGE_SELF), time.monotonic()
        time.sleep(2)
        after, wall = resource.getrusage(resource.RUSAGE_SELF), time.monotonic() - started
        with pytest.raises(Timeout):
            instance.next_batch()
    finally:
        instance.close()
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    assert cpu < 0.3 * wall


# -- through the C ABI, as Falco loads it --------------------------------------------------

needs_lib = pytest.mark.skipif(not (host.LIB.exists() and host.HOST.exists()),
                               reason="make build/libk8saudit-aks.so build/falco_host")


def run_host(config_json: str, params: str, max_timeouts: int) -> subprocess.CompletedProcess:
    """falco_host capture, keeping stderr (Python's log lines) for inspection."""
    return subprocess.run(
        [str(host.HOST), str(host.LIB), "capture", config_json, params,
         host.requests_file([]), "-1", str(max_timeouts)],
        capture_output=True, text=True, timeout=60, check=True,
    )


@needs_lib
def test_seed_config_opens_through_c_abi_with_hub_unreachable(azurite: Any,
                                                              names: dict) -> None:
    """The Go plugin's falco.yaml block, unchanged but for test endpoints: init and open
    succeed, next_batch answers timeouts, an error line says the hub is unreachable, and
    the key never shows in stdout, stderr or a last error."""
    seed = config(azurite, names["checkpoints"],
                  event_hub_namespace_connection_string=UNREACHABLE_HUB, event_hub_name="hub")
    proc = run_host(json.dumps(seed), "my-cluster", max_timeouts=240)
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    assert rows == [{"end": True, "rc": -1, "events": 0, "timeouts": 240,
                     "progress_pct": 0, "progress": None}]
    assert "unreachable" in proc.stderr and "since last receive" in proc.stderr
    assert "stats source=eventhub:hub" in proc.stderr
    assert SECRET not in proc.stdout + proc.stderr


@needs_lib
def test_malformed_connection_string_fails_init_without_the_secret(azurite: Any,
                                                                   names: dict) -> None:
    bad = config(azurite, names["checkpoints"],
                 event_hub_namespace_connection_string=f"Endpoint=;SharedAccessKey={SECRET}")
    proc = run_host(json.dumps(bad), "my-cluster", max_timeouts=1)
    row = json.loads(proc.stdout)
    assert row["init_rc"] == 1
    assert "init_config.event_hub_namespace_connection_string" in row["error"]
    assert SECRET not in proc.stdout + proc.stderr


def test_the_patched_sdk_internals_still_exist(azurite: Any, names: dict) -> None:
    """`_throttle_idle_loop` swaps `_NappingDict` in for a private attribute of
    azure-eventhub's sync EventProcessor; when an upgrade renames one of these, this fails
    (instead of the receive loop silently spinning a core again)."""
    import inspect

    from azure.eventhub._eventprocessor.event_processor import EventProcessor

    init = inspect.getsource(EventProcessor.__init__)
    assert "self._consumers" in init and "self._lock" in init
    assert "self._consumers" in inspect.getsource(EventProcessor.start)
    client_source = inspect.getsource(EventHubConsumerClient)
    assert "self._event_processors" in client_source
    hub = FakeHub(("0",))
    instance = open_instance(azurite, names["checkpoints"], hub)
    try:
        wait_for(lambda: any(type(getattr(p, "_consumers", None)) is eventhub._NappingDict
                             for p in instance.client._event_processors.values()))
    finally:
        instance.close()
