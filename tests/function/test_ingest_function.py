"""The ingest function invoked through its own entry point with real EventHubEvents, against a
real Azurite: what lands in the queue, the dead-letter queue and the claim-check container,
and the counters that account for every record."""

from __future__ import annotations

import base64
import json
import os
import threading
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from azure.core.exceptions import AzureError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import function_app
from extractor.envelope.normalize import TRUNCATED_ANNOTATION, AuditEvent, Reason
from extractor.message import deadletter
from harness.azurite import Azurite
from harness.function import audit_event, hub_body, hub_events, ingest_function, record
from ingest import ingestor as ing
from ingest import report as rep
from ingest.settings import IngestSettings, RatePolicy
from tests import FIXTURES
from tests.support.aks_fixture import Key, expected_keys
from tests.support.ingest_app import App, check_fixture_delivery
from tests.support.strategies import DOCUMENTS

AKS = FIXTURES / "aks"
BODIES = AKS / "eventhub-bodies.jsonl"



# --- inputs -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def bodies() -> list[bytes]:
    return [line.rstrip(b"\n") for line in BODIES.read_bytes().splitlines() if line.strip()]


@pytest.fixture(scope="module")
def expected() -> tuple[Counter[Key], set[Key]]:
    return expected_keys()


def batches(items: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


# --- the function under test ----------------------------------------------------------------


@pytest.fixture
def app(azurite: Azurite, names: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[App]:
    yield App(azurite, names, monkeypatch)
    function_app.ingestor.cache_clear()


def keys(events: list[AuditEvent]) -> Counter[Key]:
    return Counter((e.audit_id, e.stage, e.cluster) for e in events)


def annotations(event: AuditEvent) -> dict[str, Any]:
    value = orjson.loads(event.data).get("annotations")
    return value if isinstance(value, dict) else {}


def record_count(bodies: list[bytes]) -> int:
    return sum(len(orjson.loads(body)["records"]) for body in bodies)




# --- tests ----------------------------------------------------------------------------------

def test_function_is_declared_as_the_host_needs_it() -> None:
    function = ingest_function()
    (trigger,) = json.loads(function.get_function_json())["bindings"]
    assert trigger == {
        "direction": "IN", "type": "eventHubTrigger", "name": "events",
        "dataType": "BINARY", "cardinality": "MANY", "connection": "EVENTHUB",
        "eventHubName": "%EVENTHUB_NAME%", "consumerGroup": "%EVENTHUB_CONSUMER_GROUP%",
    }
    retry = function.get_settings_dict("retry_policy")
    assert retry["strategy"] == "exponential_backoff"
    assert retry["max_retry_count"] == "-1"  # forever: never checkpoint past a lost batch


def test_fixture_comes_out_as_expected(app: App, bodies: list[bytes], expected: Any) -> None:
    sequence = 0
    for batch in batches(bodies, 16):
        app(hub_events(batch, sequence))
        sequence += len(batch)

    events, _ = app.drain()
    delivered = keys(events)
    salvaged = {(e.audit_id, e.stage, e.cluster) for e in events
                if annotations(e).get(TRUNCATED_ANNOTATION) == "true"}
    letters = app.dead_letters()
    check_fixture_delivery(delivered, salvaged, letters, expected)
    assert all(e.cluster for e in events)  # from each record's resourceId

    totals = app.totals
    assert totals[rep.BODIES] == len(bodies)
    assert totals["delivered"] == totals[rep.SENT] == len(events) == 670
    # Every truncated event kept auditID and stage: all are delivered.
    assert totals["salvaged"] == len(salvaged) == 21
    assert totals[Reason.DUPLICATE] == 191  # kube-audit-admin copies of kube-audit events
    # klog categories (kube-apiserver, guard, cluster-autoscaler): a benign filter, counted
    # and never dead-lettered.
    assert totals[Reason.CATEGORY_NOT_ACCEPTED] == 144
    assert totals[Reason.TRUNCATED_UNRECOVERABLE] == totals[rep.DEAD_LETTERED] == len(letters)
    assert len(letters) == 0
    assert totals[rep.SHED] == totals[rep.DEFERRED] == totals[rep.FAILED] == 0
    # Every record is accounted for: delivered, or dropped with a reason.
    dropped = sum(totals[reason] for reason in Reason)
    assert totals["delivered"] + dropped == record_count(bodies)
    # Many events per message: few messages.
    assert totals[rep.MESSAGES] < len(events) / 20


def test_one_body_per_invocation_still_dedupes_categories(
    app: App, bodies: list[bytes], expected: Any
) -> None:
    for i, body in enumerate(bodies):
        app(hub_events([body], i))
    events, _ = app.drain()
    intact, _truncated = expected
    assert Counter({k: n for k, n in keys(events).items() if k in intact}) == intact
    assert app.totals[Reason.DUPLICATE] == 191
    assert app.totals[rep.MESSAGES] <= len(bodies)  # at most one per invocation


def test_klog_is_skipped_but_invalid_json_in_an_audit_category_is_dead_lettered(
    app: App,
) -> None:
    klog = "I1118 00:56:24.719830   1 controller.go:42] syncing"
    good = record("kube-audit", audit_event("a-1"))
    noise = record("kube-apiserver", klog)
    broken = record("kube-audit", klog)
    not_json = b"{\"records\": [ this is not JSON"  # a body cut short: its one record
    app(hub_events([hub_body(good, noise, broken), not_json]))

    events, _ = app.drain()
    assert [e.audit_id for e in events] == ["a-1"]
    letters = app.dead_letters()
    assert sorted(letter["reason"] for letter, _ in letters) == [Reason.NOT_JSON] * 2
    raws = [raw for _, raw in letters]
    assert b"this is not JSON" in raws
    assert any(orjson.loads(raw) == broken for raw in raws if raw != b"this is not JSON")
    totals = app.totals
    assert totals[Reason.CATEGORY_NOT_ACCEPTED] == 1
    assert totals[Reason.NOT_JSON] == totals[rep.DEAD_LETTERED] == 2


def test_oversized_events_and_dead_letters_go_through_claim_check_blobs(app: App) -> None:
    # Incompressible: 150 KB of random base64 in the request object.
    noise = base64.b64encode(os.urandom(110_000)).decode()
    big = record("kube-audit", audit_event("big-1", requestObject={"data": noise}))
    small = record("kube-audit", audit_event("small-1"))
    huge_garbage = b"not json " + noise.encode()
    app(hub_events([hub_body(small, big), huge_garbage]))

    report = app.last
    assert report is not None
    assert report.counts[rep.CLAIM_CHECKS] == 1
    assert report.counts[rep.DEAD_LETTER_CLAIM_CHECKS] == 1
    events, _ = app.drain()
    assert sorted(e.audit_id for e in events) == ["big-1", "small-1"]
    (big_event,) = [e for e in events if e.audit_id == "big-1"]
    assert orjson.loads(big_event.data)["requestObject"]["data"] == noise
    blob_names = [b.name for b in app.ingestor.claims.list_blobs()]
    assert any(name.startswith(deadletter.BLOB_PREFIX) for name in blob_names)
    assert any(not name.startswith(deadletter.BLOB_PREFIX) for name in blob_names)
    ((letter, raw),) = app.dead_letters()
    assert raw == huge_garbage and "raw" not in letter
    for message in app.ingestor.queue.peek_messages(max_messages=32):
        assert len(message.content) <= 64 * 1024


def test_storage_outage_raises_and_the_retry_delivers_everything(
    app: App, bodies: list[bytes], expected: Any
) -> None:
    app.settings(rate_limit_events_per_second="0", STORAGE_RETRY_TOTAL="0")
    events = hub_events(bodies)
    queue = app.ingestor.queue
    real_send = queue.send_message
    calls = 0
    lock = threading.Lock()

    def outage_after_two_sends(*args: Any, **kwargs: Any) -> Any:
        """Two messages reach Azurite, then it goes down (sends run on several threads:
        the lock orders them)."""
        nonlocal calls
        with lock:
            calls += 1
            if calls == 3:
                app.azurite.stop()
            return real_send(*args, **kwargs)

    queue.send_message = outage_after_two_sends  # type: ignore[method-assign]
    try:
        with pytest.raises(AzureError):
            app(events)
        with pytest.raises(AzureError):  # a host retry during the outage fails too
            app(events)
    finally:
        app.azurite.start()
    queue.send_message = real_send  # type: ignore[method-assign]
    app(events)  # the host's next retry, storage back

    got, ids = app.drain()
    assert len(ids) == len(set(ids))
    delivered = keys(got)
    assert sum(delivered.values()) > 656  # at-least-once: the first 2 messages twice
    deduped = Counter(dict.fromkeys(delivered, 1))
    salvaged = {(e.audit_id, e.stage, e.cluster) for e in got
                if annotations(e).get(TRUNCATED_ANNOTATION) == "true"}
    letters = app.dead_letters()
    check_fixture_delivery(deduped, salvaged, letters, expected)
    totals = app.totals
    assert totals[rep.FAILED] == 2
    assert totals[rep.MESSAGES] == len(ids)


def test_defer_policy_delays_visibility_and_loses_nothing(
    app: App, bodies: list[bytes], expected: Any
) -> None:
    # slow enough that a loaded CI machine refills less per batch than the batch adds
    app.settings(rate_limit_events_per_second="100", rate_limit_burst="10",
                 RATE_LIMIT_POLICY="defer")
    delays: list[int] = []
    for i, batch in enumerate(batches(bodies, 16)):
        app(hub_events(batch, i * 16))
        assert app.last is not None
        delays += app.last.delays
    assert delays == sorted(delays)
    assert delays[0] >= 1 and delays[-1] > delays[0]
    # Nothing visible yet: even the first message waits for its tokens.
    assert app.ingestor.queue.peek_messages(max_messages=32) == []

    time.sleep(max(delays) + 1.5)
    events, ids = app.drain()
    assert len(ids) == len(delays)
    intact, _ = expected
    assert Counter({k: n for k, n in keys(events).items() if k in intact}) == intact
    totals = app.totals
    assert totals[rep.DEFERRED] == totals[rep.SENT] == len(events)
    assert totals[rep.SHED] == 0


class FakeQueue:
    """A queue client that is down while `down` is set; records what it accepted."""

    def __init__(self) -> None:
        self.down = False
        self.sent: list[dict[str, Any]] = []

    def send_message(self, text: str, **kwargs: Any) -> None:
        if self.down:
            raise AzureError("storage down")
        self.sent.append(kwargs)


class FakeContainer:
    def upload_blob(self, name: str, data: bytes, **kwargs: Any) -> None:
        return None


@pytest.mark.parametrize("policy", [RatePolicy.DEFER, RatePolicy.SHED])
def test_failed_invocations_give_their_tokens_back(bodies: list[bytes],
                                                    policy: RatePolicy) -> None:
    """An outage's failed attempts must not leave debt (defer: longer delays for everything
    after; shed: more shed on the retry): repeated failures then a success end exactly as a
    single success would (a frozen clock: no refill in between)."""
    settings = IngestSettings(queue_connection_string="UseDevelopmentStorage=true",
                              rate_limit_events_per_second=10, rate_limit_burst=50,
                              rate_limit_policy=policy)

    def run(failures: int) -> tuple[list[int], Counter[str]]:
        queue = FakeQueue()
        ingestor = ing.Ingestor(settings, queue=queue, deadletter=FakeQueue(),  # type: ignore[arg-type]
                                claims=FakeContainer(), clock=lambda: 0.0)  # type: ignore[arg-type]
        queue.down = True
        for _ in range(failures):
            with pytest.raises(AzureError):
                ingestor.ingest(bodies)
        queue.down = False
        report = ingestor.ingest(bodies)
        later = hub_body(*(record("kube-audit", audit_event(f"later-{i}")) for i in range(20)))
        second = ingestor.ingest([later])  # what comes after pays the same debt
        return report.delays + second.delays, report.counts + second.counts

    once_delays, once_counts = run(failures=0)
    after_delays, after_counts = run(failures=5)
    assert after_delays == once_delays
    assert after_counts[rep.SHED] == once_counts[rep.SHED]
    assert after_counts[rep.SENT] == once_counts[rep.SENT]
    # the limit bites, so the comparison means something
    assert max(once_delays) >= 1 if policy is RatePolicy.DEFER else once_counts[rep.SHED] > 0


def test_shed_policy_counts_what_it_drops(app: App, bodies: list[bytes]) -> None:
    app.settings(rate_limit_events_per_second="0.001", rate_limit_burst="100",
                 RATE_LIMIT_POLICY="shed")
    app(hub_events(bodies))
    events, _ = app.drain()
    totals = app.totals
    assert len(events) == totals[rep.SENT] == 100
    assert totals[rep.SHED] == totals["delivered"] - 100 == 570
    assert totals[rep.DEFERRED] == 0


def test_settings_from_app_settings() -> None:
    settings = IngestSettings.from_env({"QUEUE_ACCOUNT_URL": "https://a.queue.core.windows.net"})
    assert settings.queue_name == "k8saudit"
    assert settings.deadletter_queue_name == "k8saudit-deadletter"
    assert settings.claimcheck_container == "k8saudit-claims"
    assert set(settings.categories) == {"kube-audit", "kube-audit-admin"}
    assert settings.rate_limit_policy is RatePolicy.DEFER
    settings = IngestSettings.from_env({
        "QUEUE_CONNECTION_STRING": "UseDevelopmentStorage=true",
        "AUDIT_CATEGORIES": " kube-audit , ", "RATE_LIMIT_POLICY": "SHED",
        "rate_limit_events_per_second": "2.5", "rate_limit_burst": "7",
    })
    assert settings.categories == ("kube-audit",)
    assert settings.rate_limit_policy is RatePolicy.SHED
    assert (settings.rate_limit_events_per_second, settings.rate_limit_burst) == (2.5, 7)
    with pytest.raises(ValueError, match="QUEUE_CONNECTION_STRING or QUEUE_ACCOUNT_URL"):
        IngestSettings.from_env({})
    with pytest.raises(ValueError, match="RATE_LIMIT_POLICY"):
        IngestSettings.from_env({"QUEUE_ACCOUNT_URL": "https://x", "RATE_LIMIT_POLICY": "drop"})


# --- hostile input ---------------------------------------------------------------------------

DEEP = '{"a":' * 1025 + "1" + "}" * 1025
HOSTILE_LOGS = {
    # auditID -> a hostile log, which costs only its own record
    "deep-1025": json.dumps(audit_event("deep-1025"))[:-1] + ',"o":' + DEEP + "}",
    "deep-300": json.dumps(audit_event("deep-300", requestObject=json.loads(
        '{"a":' * 300 + "1" + "}" * 300))),
    "bigint": json.dumps(audit_event("bigint"))[:-1] + ',"n":' + "9" * 40 + ',"cut',
    "nan": json.dumps(audit_event("nan"))[:-1] + ',"n":NaN,"cut',
    "surrogate": json.dumps(audit_event("surrogate"))[:-1] + ',"s":"\\ud800","cut',
}


def test_a_hostile_record_costs_only_itself(app: App) -> None:
    """Each log above made the invocation raise, so the host retried the batch forever and
    its good events never reached the queue. Now the function returns, every good event is
    queued, and each hostile event is delivered without the member that could not be
    written (named in k8saudit-aks/omitted)."""
    good = [record("kube-audit", audit_event(f"good-{i}")) for i in range(3)]
    hostile = [record("kube-audit", log) for log in HOSTILE_LOGS.values()]
    app(hub_events([hub_body(good[0], *hostile, good[1]), hub_body(good[2])]))

    events, _ = app.drain()
    by_id = {e.audit_id: e for e in events}
    assert set(by_id) == {"good-0", "good-1", "good-2", *HOSTILE_LOGS}
    omitted = {audit_id: annotations(by_id[audit_id]).get("k8saudit-aks/omitted")
               for audit_id in HOSTILE_LOGS}
    assert omitted == {"deep-1025": "o", "deep-300": "requestObject", "bigint": None,
                       "nan": "n", "surrogate": "s"}
    assert b'"n":' + b"9" * 40 in by_id["bigint"].data  # carried exactly
    assert app.dead_letters() == []
    assert app.last.counts["omitted_members"] == 4  # type: ignore[union-attr]


def test_a_failure_that_is_neither_data_nor_storage_dead_letters_the_batch(
        app: App, monkeypatch: pytest.MonkeyPatch) -> None:
    """The last-resort boundary: an unexpected error (a bug) must not block the partition
    behind a batch that would fail on every retry. Its bodies go to the dead-letter queue
    and the invocation returns."""
    body = hub_body(record("kube-audit", audit_event("bug-1")))

    def broken_pack(events: Any) -> Any:
        raise RuntimeError("a bug in pack")

    monkeypatch.setattr(ing, "pack", broken_pack)
    app(hub_events([body]))

    ((letter, raw),) = app.dead_letters()
    assert letter["reason"] == Reason.INTERNAL_ERROR
    assert letter["detail"] == "RuntimeError: a bug in pack"
    assert raw == body
    assert app.last.counts[Reason.INTERNAL_ERROR] == 1  # type: ignore[union-attr]


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(bodies=st.lists(DOCUMENTS, min_size=1, max_size=4))
def test_the_function_never_raises_on_data_and_accounts_for_every_item(
        app: App, bodies: list[bytes]) -> None:
    """The fuzz invariant at the function entry point, on Azurite: whatever the bodies
    hold, the invocation returns; every item is queued, deduplicated, benignly skipped or
    dead-lettered, and the counters add up to what landed in the queues."""
    app(hub_events(bodies))
    report = app.last
    assert report is not None and report.counts[rep.FAILED] == 0
    counts = report.counts
    events, _ = app.drain()
    letters = app.dead_letters()
    assert len(events) == counts[rep.SENT] == counts["delivered"]
    assert len(letters) == counts[rep.DEAD_LETTERED]
    benign = counts[Reason.DUPLICATE] + counts[Reason.CATEGORY_NOT_ACCEPTED]
    dropped = sum(counts[reason] for reason in Reason)
    assert counts[rep.DEAD_LETTERED] == dropped - benign
    for letter, _ in letters:  # (a raw item may be empty: an empty body is one)
        assert letter["source"] == "ingest" and letter["reason"] in set(Reason)
