"""The hand-over every source uses (sources/handover.py): pure, with a frozen clock."""

from __future__ import annotations

import time
from pathlib import Path

import orjson

from extractor.envelope.normalize import AuditEvent
from extractor.policy.ratelimit import TokenBucket
from plugin.k8saudit_aks.config import parse_config
from plugin.k8saudit_aks.sources.file import FileInstance
from plugin.k8saudit_aks.sources.handover import Handover


def event(i: int, size: int = 10, ts: int = 1000) -> AuditEvent:
    return AuditEvent(b"x" * size, ts + i, f"id-{i}", "ResponseComplete", "aks")


def frozen_bucket(rate: float, burst: int) -> TokenBucket:
    return TokenBucket(rate, burst, clock=lambda: 0.0)


def test_events_the_rate_limit_holds_back_wait_and_are_not_dropped() -> None:
    handover: Handover[str] = Handover(bucket=frozen_bucket(1, 2))
    handover.add("m1", [event(0), event(1), event(2)])

    got = handover.take()

    assert [e.timestamp_ns for e in got] == [1000, 1001]  # two tokens, two events
    assert handover.counts() == {"delivered": 2}
    assert handover.take() == [] and handover.counts() == {}
    handover.bucket = frozen_bucket(1, 1)  # a token again: event 2 was waiting, not dropped
    assert [e.timestamp_ns for e in handover.take()] == [1002]


def test_at_most_max_batch_events_in_order() -> None:
    handover: Handover[str] = Handover(max_batch=3)
    handover.add("m1", [event(i) for i in range(2)])
    handover.add("m2", [event(i) for i in range(2, 5)])
    assert [e.timestamp_ns for e in handover.take()] == [1000, 1001, 1002]
    assert [e.timestamp_ns for e in handover.take()] == [1003, 1004]


def test_an_event_without_a_time_gets_the_current_time() -> None:
    handover: Handover[None] = Handover()
    handover.add(None, [event(0, ts=0)])
    before = time.time_ns()
    (got,) = handover.take()
    assert before <= got.timestamp_ns <= time.time_ns()


def test_a_message_is_acknowledged_on_the_call_after_its_last_event_went_out() -> None:
    handover: Handover[str] = Handover(max_batch=2)
    handover.add("m1", [event(0)])
    handover.add("m2", [event(1), event(2)])
    handover.add("empty", [])

    assert handover.acknowledge() == []
    assert len(handover.take()) == 2        # m1 whole, half of m2
    assert handover.acknowledge() == ["m1"]
    assert len(handover.take()) == 1        # the rest of m2; the empty one finishes too
    assert handover.acknowledge() == ["m2", "empty"]


def test_close_does_not_count_the_last_batch_as_consumed() -> None:
    handover: Handover[str] = Handover()
    handover.add("m1", [event(0)])
    handover.acknowledge()
    assert len(handover.take()) == 1
    assert handover.unconsumed_at_close() == []  # Falco may not have processed it

    handed_nothing: Handover[str] = Handover()
    handed_nothing.add("seen", [event(0)])
    assert len(handed_nothing.take()) == 1
    handed_nothing.acknowledge()
    handed_nothing.add("empty", [])  # every event of it was a duplicate: nothing goes out
    assert handed_nothing.take() == []
    assert handed_nothing.unconsumed_at_close() == ["empty"]


def test_file_replay_stamps_an_event_without_a_time_with_the_current_time(
        tmp_path: Path) -> None:
    doc = {"kind": "Event", "apiVersion": "audit.k8s.io/v1", "auditID": "a-1",
           "stage": "ResponseComplete", "stageTimestamp": "not a time"}
    path = tmp_path / "events.jsonl"
    path.write_bytes(orjson.dumps(doc) + b"\n")
    settings = parse_config("")
    replay = FileInstance(path, settings.common)
    before = time.time_ns()
    (got,) = replay.next_batch()
    assert before <= got.timestamp_ns <= time.time_ns()
