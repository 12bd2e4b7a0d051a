"""The queue source in process (QueueInstance driven as the ABI drives it), on Azurite.

What Falco sees end to end is in tests/e2e; these pin the timing rules that are easier to
observe from inside: when a delete happens, visibility while a batch is held, how long a
call may block during an outage, what close() deletes, and the backoff/log cadence.
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import logging
import os
import time
import uuid
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from extractor.envelope.normalize import AuditEvent
from extractor.message.codec import pack
from harness.azurite import Azurite
from plugin.k8saudit_aks.config import parse_config
from plugin.k8saudit_aks.sources import queue_worker
from plugin.k8saudit_aks.sources.backoff import Backoff
from plugin.k8saudit_aks.sources.queue import QueueInstance
from plugin.sdk import Event, Timeout
from tests.support.pipeline import Pipeline, audit_events
from tests.support.strategies import tampered


@pytest.fixture
def pipe(azurite: Azurite, names: dict[str, str]) -> Pipeline:
    return Pipeline(azurite, names)


@pytest.fixture
def open_source() -> Iterator[Any]:
    opened: list[QueueInstance] = []

    def open_(config: str, cluster: str | None = None) -> QueueInstance:
        settings = parse_config(config)
        instance = QueueInstance(settings.mode, settings.common, cluster)
        opened.append(instance)
        return instance

    yield open_
    for instance in opened:
        instance.close()


def next_events(source: QueueInstance, want: int, timeout_s: float = 10) -> list[Event]:
    """Call next_batch as Falco does until `want` events came (Timeout means call again)."""
    got: list[Event] = []
    deadline = time.monotonic() + timeout_s
    while len(got) < want:
        assert time.monotonic() < deadline, f"{len(got)} of {want} events"
        with contextlib.suppress(Timeout):
            got += source.next_batch()
    return got


def wait_until(condition: Any, timeout_s: float = 5) -> bool:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_a_message_is_deleted_on_the_call_after_its_events_were_handed_over(
        pipe: Pipeline, open_source: Any) -> None:
    events = audit_events(20, prefix="ack")
    pipe.send(events)
    source = open_source(pipe.config())

    got = next_events(source, len(events))
    assert [e.data for e in got] == [e.data for e in events]
    time.sleep(0.5)
    assert pipe.messages_left() == 1  # handed over, but Falco has not come back yet

    with pytest.raises(Timeout):
        source.next_batch()  # Falco consumed the batch
    assert wait_until(lambda: pipe.messages_left() == 0)
    assert source.stats.counts["deleted"] == 1


def test_a_held_batch_stays_invisible_past_its_visibility_timeout(
        pipe: Pipeline, open_source: Any) -> None:
    events = audit_events(10, prefix="hold")
    pipe.send(events)
    source = open_source(pipe.config(visibility_timeout_seconds=1))
    next_events(source, len(events))

    # Falco sits on the batch for 3.5 visibility timeouts; another reader sees nothing.
    deadline = time.monotonic() + 3.5
    while time.monotonic() < deadline:
        assert list(pipe.queue.receive_messages(visibility_timeout=1)) == []
        time.sleep(0.25)

    assert source.stats.counts["visibility_extended"] >= 3
    with pytest.raises(Timeout):
        source.next_batch()
    assert wait_until(lambda: pipe.messages_left() == 0)
    assert source.stats.counts["deduplicated"] == 0


def test_close_deletes_what_was_consumed_and_leaves_the_rest(
        pipe: Pipeline, open_source: Any) -> None:
    first, second = audit_events(5, prefix="c1"), audit_events(30, prefix="c2")
    pipe.send(first)
    pipe.send(second)
    source = open_source(pipe.config(rate_limit_events_per_second=0.01, rate_limit_burst=10))
    got = next_events(source, 10)  # the first message whole, 5 of the second
    assert {e.data for e in first} <= {e.data for e in got}
    with pytest.raises(Timeout):  # Falco comes back (throttled): it consumed that batch
        source.next_batch()

    source.close()

    assert pipe.messages_left() == 1  # the second reappears after its visibility timeout
    assert source.stats.counts["deleted"] == 1


def test_close_right_after_a_batch_deletes_nothing_of_it(
        pipe: Pipeline, open_source: Any) -> None:
    """Falco may stop mid-batch (SIGTERM, hot reload) or never get the batch (the SDK
    failed after next_batch returned): close must not count the last batch as consumed."""
    events = audit_events(5, prefix="last")
    pipe.send(events)
    source = open_source(pipe.config())
    assert [e.data for e in next_events(source, 5)] == [e.data for e in events]

    source.close()

    assert source.stats.counts["deleted"] == 0
    assert pipe.messages_left() == 1  # reappears after its visibility timeout


def test_an_outage_never_blocks_next_batch_and_is_logged_without_secrets(
        azurite: Azurite, names: dict[str, str], open_source: Any,
        caplog: pytest.LogCaptureFixture) -> None:
    unreachable = azurite.connection_string.replace(str(azurite.queue_port), "9")
    config = json.dumps({"queue_name": names["queue"], "queue_connection_string": unreachable})
    caplog.set_level(logging.INFO, "k8saudit-aks")
    source = open_source(config)

    slowest = 0.0
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:
        started = time.monotonic()
        with pytest.raises(Timeout):
            source.next_batch()
        slowest = max(slowest, time.monotonic() - started)

    assert slowest < 0.5
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert errors and "since last success" in errors[0] and "receive" in errors[0]
    key = azurite.connection_string.split("AccountKey=")[1].split(";")[0]
    assert all(key not in r.getMessage() for r in caplog.records)
    assert source.stats.counts["errors"] >= 2  # retried: 0.5 s, then 1 s


def test_the_open_params_cluster_marks_events_the_function_could_not_attribute(
        pipe: Pipeline, open_source: Any) -> None:
    known, unknown = audit_events(1, prefix="k")[0], audit_events(1, prefix="u")[0]
    doc = orjson.loads(unknown.data)
    del doc["annotations"]["cluster_name"]
    unknown = AuditEvent(orjson.dumps(doc), unknown.timestamp_ns, unknown.audit_id,
                         unknown.stage, None)
    pipe.send([known, unknown])
    source = open_source(pipe.config(), cluster="AKS-Fallback")

    got = next_events(source, 2)

    assert got[0].data == known.data
    annotations = orjson.loads(got[1].data)["annotations"]
    assert annotations == {"cluster_name": "aks-fallback", "filler": doc["annotations"]["filler"]}


def test_a_dead_letter_too_large_for_a_message_goes_to_a_blob(
        pipe: Pipeline, open_source: Any) -> None:
    text = "not base64! " * 4500  # 54 000 characters: its base64 would not fit a message
    pipe.send_text(text)
    source = open_source(pipe.config())

    assert wait_until(lambda: source.stats.counts["dead_lettered.bad_base64"] == 1)
    (message,) = pipe.deadletter.peek_messages()
    assert message.expires_on.year == 9999  # time_to_live -1: a dead letter never expires
    (letter,) = pipe.dead_letters()
    assert "raw" not in letter and letter["size"] == len(text)
    assert pipe.claims.download_blob(letter["blob"]).readall().decode() == text
    assert wait_until(lambda: pipe.messages_left() == 0)
    assert letter["source"] == "plugin" and letter["source_queue"] == pipe.names["queue"]


# --- backoff: pure, with a fake clock ---------------------------------------------------

class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_backoff_doubles_to_thirty_seconds_and_logs_at_least_every_ten(
        caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    backoff = Backoff(logging.getLogger("test.backoff"), clock=clock)
    caplog.set_level(logging.INFO, "test.backoff")
    delays = []
    for _ in range(9):
        delays.append(backoff.failed("receive", ConnectionError("refused")))
        clock.now += delays[-1]
        backoff.still_failing()
    assert delays == [0.5, 1, 2, 4, 8, 16, 30, 30, 30]

    seconds = [float(r.getMessage().split(" s since")[0].rsplit(" ", 1)[1])
               for r in caplog.records if r.levelno == logging.ERROR]
    assert seconds[0] == 0
    assert all(b - a <= 31 for a, b in itertools.pairwise(seconds))
    assert len(seconds) >= sum(delays) / 31

    backoff.succeeded()
    assert "reachable again" in caplog.records[-1].getMessage()
    assert backoff.failed("receive", ConnectionError("x")) == 0.5


def test_still_failing_logs_during_a_long_pause(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    backoff = Backoff(logging.getLogger("test.backoff2"), clock=clock)
    caplog.set_level(logging.INFO, "test.backoff2")
    backoff.failed("delete", ConnectionError("down"))
    for _ in range(60):  # a minute of one-second worker ticks without another attempt
        clock.now += 1
        backoff.still_failing()
    assert len(caplog.records) >= 6


def test_a_named_backoff_says_what_is_unreachable_with_context_and_jitter(
        caplog: pytest.LogCaptureFixture) -> None:
    """The Event Hub source's use: its name and "since last receive" on every line."""
    clock = Clock()
    backoff = Backoff(logging.getLogger("test.backoff3"), clock=clock, name="Event Hub h",
                      context=lambda: "7 s since last receive", jitter=0.2)
    caplog.set_level(logging.INFO, "test.backoff3")
    pauses = [backoff.failed("partition 0", ConnectionError("down")) for _ in range(3)]
    assert 0.4 <= pauses[0] <= 0.6 and 0.8 <= pauses[1] <= 1.2 and 1.6 <= pauses[2] <= 2.4
    (line,) = [r.getMessage() for r in caplog.records]
    assert line.startswith("Event Hub h unreachable: partition 0: ConnectionError: down; ")
    assert line.endswith("; 7 s since last receive")
    backoff.succeeded()
    assert caplog.records[-1].getMessage().startswith("Event Hub h reachable again after")


def _denied_claims(pipe: Pipeline) -> Any:
    """The claim-check container through a wrong account key: Azurite answers 403."""
    from azure.storage.blob import ContainerClient

    from harness.azurite import KEY

    wrong = pipe.azurite.connection_string.replace(KEY, base64.b64encode(b"0" * 64).decode())
    return ContainerClient.from_connection_string(wrong, pipe.names["claims"],
                                                  retry_total=0)


def test_a_message_that_keeps_failing_costs_only_itself(pipe: Pipeline) -> None:
    """A claim check the reader may not read (403) does not stall the queue. The message
    is released (it reappears after its visibility timeout), the good messages behind it
    are delivered at once, and once it has failed max_dequeue_count receives it is
    dead-lettered with its last error and deleted."""
    before, after = audit_events(5, prefix="before"), audit_events(500, prefix="after")
    big = AuditEvent(orjson.dumps({"kind": "Event", "auditID": "big", "x": os.urandom(
        80_000).hex()}), 1, "big", "ResponseComplete", None)
    pipe.send(before)
    (claim,) = pipe.send([big])
    assert claim.blob is not None
    pipe.send(after)
    settings = parse_config(pipe.config(visibility_timeout_seconds=2, max_dequeue_count=2))
    source = QueueInstance(settings.mode, settings.common,
                           clients=(pipe.queue, pipe.deadletter, _denied_claims(pipe)))
    try:
        started = time.monotonic()
        got = next_events(source, len(before) + len(after), timeout_s=2)
        assert time.monotonic() - started < 2  # within one visibility timeout
        assert {e.data for e in got} == {e.data for e in before + after}
        assert wait_until(lambda: source.stats.counts["dead_lettered.max_dequeue_count"] == 1,
                          timeout_s=15)
        assert source.stats.counts["released"] == 1
        with contextlib.suppress(Timeout):
            source.next_batch()
        assert wait_until(lambda: pipe.messages_left() == 0)
    finally:
        source.close()
    (letter,) = pipe.dead_letters()
    assert letter["reason"] == "max_dequeue_count"
    assert letter["dequeue_count"] == 2
    assert "403" in letter["detail"] or "AuthenticationFailed" in letter["detail"]
    assert letter["claim_check"] == claim.blob[0]  # type: ignore[index]
    assert claim.blob[0] in pipe.blob_names()  # type: ignore[index]  # kept with the letter


def test_an_event_over_max_event_size_is_dead_lettered_not_dropped(
        pipe: Pipeline, open_source: Any) -> None:
    """Events over the size bound are dead-lettered (raw event kept), not only counted."""
    small = audit_events(3, prefix="small")
    big = AuditEvent(orjson.dumps({"kind": "Event", "auditID": "big", "x": "y" * 5000}), 1,
                     "big", "ResponseComplete", None)
    pipe.send([*small, big])
    source = open_source(pipe.config(max_event_size=1024))
    got = next_events(source, len(small))
    assert [e.data for e in got] == [e.data for e in small]
    (letter,) = pipe.dead_letters()
    assert letter["reason"] == "too_large"
    assert base64.b64decode(letter["raw"]) == big.data
    assert source.stats.counts["dead_lettered.too_large"] == 1


# What Azure Storage accepts as message text: characters XML 1.0 can carry. (Azurite stores
# control characters too, then fails every receive of them with a 500.)
XML_TEXT = st.text(st.characters(blacklist_categories=("Cc", "Cs")), max_size=100)


@settings(max_examples=8, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(hostile=st.lists(tampered() | XML_TEXT, min_size=1, max_size=12),
       seed=st.integers(0, 2**32))
def test_no_message_can_stop_the_source(azurite: Azurite, hostile: list[str], seed: int
                                        ) -> None:
    """The fuzz invariant for the queue source: hostile messages mixed between good
    ones never stop delivery; each ends delivered or dead-lettered, the queue empties."""
    pipe = Pipeline(azurite, {"queue": f"f{uuid.uuid4().hex[:12]}",
                              "deadletter": f"fd{uuid.uuid4().hex[:12]}",
                              "claims": f"fc{uuid.uuid4().hex[:12]}"})
    good = audit_events(30, prefix=f"fuzz{seed}")
    texts = [m.text for m in pack(good[:15])] + hostile + [m.text for m in pack(good[15:])]
    for text in texts:
        pipe.send_text(text)
    settings_ = parse_config(pipe.config())
    source = QueueInstance(settings_.mode, settings_.common)
    try:
        got = next_events(source, len(good), timeout_s=20)
        with contextlib.suppress(Timeout):
            source.next_batch()  # consumed: the last messages may be deleted
        assert wait_until(lambda: pipe.messages_left() == 0, timeout_s=10)
    finally:
        source.close()
    assert {e.data for e in good} <= {e.data for e in got}
    counts = source.stats.counts
    lettered = sum(v for k, v in counts.items() if k.startswith("dead_lettered."))
    assert counts["received_messages"] == len(texts)
    assert counts["deleted"] == len(texts)
    assert len(pipe.dead_letters()) == lettered


def test_a_growing_backlog_is_reported(pipe: Pipeline, open_source: Any,
                                       monkeypatch: pytest.MonkeyPatch,
                                       caplog: pytest.LogCaptureFixture) -> None:
    """A queue filling faster than Falco drains it says so (gauges, a warning, a
    counter), instead of growing silently."""
    monkeypatch.setattr(queue_worker, "BACKLOG_EVERY_S", 0.2)
    source = open_source(pipe.config(rate_limit_events_per_second=0.001, rate_limit_burst=1))
    for i in range(6):  # the function keeps writing; Falco takes one event in all
        pipe.send(audit_events(1, prefix=f"b{i}"))
        time.sleep(0.3)
    assert wait_until(lambda: source.stats.counts["backlog_growing"] >= 1)
    assert "backlog grew" in caplog.text
    assert source.stats.gauges["queue_backlog_messages"] >= 4
