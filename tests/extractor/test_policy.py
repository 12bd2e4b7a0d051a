"""The policy chain (`extractor.policy.chain`) and its dedupe window: the same verdicts for
the function and every plugin source, in the documented order."""

from __future__ import annotations

from collections import Counter

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from extractor.envelope.normalize import (
    CLUSTER_ANNOTATION,
    DELIVERED,
    SALVAGED,
    AuditEvent,
    Batch,
    Reason,
    parse_documents,
)
from extractor.policy.chain import Chain
from extractor.policy.dedupe import Deduper
from harness.memory import dedupe_bytes_per_key


def audit(audit_id: str, cluster: str | None = "c1", size: int = 0,
          stage: str = "ResponseComplete") -> AuditEvent:
    data = orjson.dumps({"kind": "Event", "auditID": audit_id, "stage": stage,
                         "pad": "x" * size})
    return AuditEvent(data, 1, audit_id, stage, cluster)


def admitted(chain: Chain, *events: AuditEvent) -> Batch:
    return chain.admit(Batch(list(events), counts=Counter({DELIVERED: len(events)})))


# --- the chain ------------------------------------------------------------------------------

@pytest.mark.parametrize(("chain", "events", "passed", "dropped"), [
    # the size bound: over it, dropped with its data; at it, passed
    (Chain(max_event_bytes=200), [audit("big", size=300), audit("ok", size=100)],
     ["ok"], [(Reason.TOO_LARGE, "big")]),
    # the dedupe window: the second copy of (cluster, auditID, stage) is dropped
    (Chain(), [audit("a"), audit("a"), audit("a", stage="RequestReceived")],
     ["a", "a"], [(Reason.DUPLICATE, "a")]),
    # ... per cluster: the same auditID in two clusters is two events
    (Chain(), [audit("a", "c1"), audit("a", "c2")], ["a", "a"], []),
    # the mark comes first: an unattributed copy named by the fallback is a duplicate
    (Chain(fallback_cluster="C1"), [audit("a", "c1"), audit("a", None)],
     ["a"], [(Reason.DUPLICATE, "a")]),
    # a copy too large to deliver is not remembered: the next copy passes
    (Chain(max_event_bytes=200), [audit("a", size=300), audit("a", size=100)],
     ["a"], [(Reason.TOO_LARGE, "a")]),
    # a window of 0 turns dedupe off
    (Chain(dedupe_window=0), [audit("a"), audit("a")], ["a", "a"], []),
])
def test_the_chain_marks_bounds_and_dedupes_in_order(
        chain: Chain, events: list[AuditEvent], passed: list[str],
        dropped: list[tuple[Reason, str]]) -> None:
    batch = admitted(chain, *events)
    assert [e.audit_id for e in batch.events] == passed
    assert [(d.reason, d.detail.split("'")[1]) for d in batch.drops] == dropped
    assert batch.counts[DELIVERED] == len(passed)
    assert sum(batch.counts[r] for r, _ in dropped) == len(dropped)
    for drop in batch.drops:
        assert (drop.raw is not None) is (drop.reason is Reason.TOO_LARGE)


def test_the_fallback_cluster_marks_the_event_itself() -> None:
    (event,) = admitted(Chain(fallback_cluster="Prod"), audit("a", None)).events
    assert event.cluster == "prod"
    assert orjson.loads(event.data)["annotations"] == {CLUSTER_ANNOTATION: "prod"}


def test_withdrawn_events_are_no_duplicates_when_read_again() -> None:
    """The queue source's case: a message whose dead letter failed is read again."""
    chain = Chain()
    first = admitted(chain, audit("a"), audit("b"))
    chain.withdraw(first.events)
    assert [e.audit_id for e in admitted(chain, audit("a"), audit("b")).events] == ["a", "b"]
    assert admitted(chain, audit("a")).events == []


def test_forget_empties_the_window() -> None:
    chain = Chain()
    admitted(chain, audit("a"))
    chain.forget()
    assert len(admitted(chain, audit("a")).events) == 1


# --- the dedupe window ----------------------------------------------------------------------

def test_deduper_window_holds_the_last_keys() -> None:
    deduper = Deduper(capacity=2)
    assert [deduper.seen(k) for k in "aba"] == [False, False, True]
    assert deduper.seen("c") is False  # evicts a, the oldest
    assert len(deduper) == 2
    assert "a" not in deduper and "b" in deduper and "c" in deduper
    assert deduper.seen("b") is True
    assert deduper.seen("a") is False  # back in, evicting b
    assert [k in deduper for k in "abc"] == [True, False, True]


@settings(max_examples=50, deadline=None)
@given(st.integers(1, 40), st.lists(st.integers(0, 120), max_size=400))
def test_deduper_is_a_window_of_the_last_keys(capacity: int, draws: list[int]) -> None:
    """Against a plain list of the last `capacity` distinct keys, after every step."""
    deduper, window = Deduper(capacity), []
    for n in draws:
        key = f"key-{n}"
        assert deduper.seen(key) is (key in window)
        if key not in window:
            window = [*window, key][-capacity:]
        assert len(deduper) == len(window)
    assert all((f"key-{n}" in deduper) is (f"key-{n}" in window) for n in range(121))


def test_deduper_keys_of_any_length_cost_the_same() -> None:
    """A key is its hash: the window's memory does not follow the keys' length."""
    short, long = dedupe_bytes_per_key(8), dedupe_bytes_per_key(500)
    assert long < short * 1.05
    assert short < 32  # measured: 24 (a window of tuples of strings: 250 and up)


def test_a_window_of_zero_turns_dedupe_off_and_a_negative_one_is_refused() -> None:
    off = Deduper(0)
    assert [off.seen(k) for k in "aa"] == [False, False]
    with pytest.raises(ValueError, match="capacity"):
        Deduper(-1)


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 20), st.lists(st.tuples(st.booleans(), st.integers(0, 40)), max_size=300))
def test_a_discarded_key_leaves_the_window_and_the_rest_stays_a_window(
        capacity: int, steps: list[tuple[bool, int]]) -> None:
    """Against a model: every key seen, in order, each marked when discarded; the window
    holds the undiscarded among the last `capacity` keys recorded."""
    deduper = Deduper(capacity)
    recorded: list[list] = []  # [key, discarded], one per ring slot taken
    for discard, n in steps:
        key = f"key-{n}"
        live = {k for k, gone in recorded[-capacity:] if not gone}
        if discard:
            deduper.discard(key)
            for entry in recorded:
                if entry[0] == key:
                    entry[1] = True
            continue
        assert deduper.seen(key) is (key in live)
        if key not in live:
            recorded.append([key, False])
    live = {k for k, gone in recorded[-capacity:] if not gone}
    assert all((f"key-{n}" in deduper) is (f"key-{n}" in live) for n in range(41))


def test_a_dropped_event_leaves_the_counters_it_was_also_in() -> None:
    """`salvaged` and `omitted_members` count delivered events: a salvaged copy the chain
    drops as a duplicate is taken back out."""
    cut = ('{"kind":"Event","auditID":"s","stage":"ResponseComplete",'
           '"stageTimestamp":"2024-01-01T00:00:00Z","requestObject":{"x":"cu')
    record = {"category": "kube-audit", "resourceId": "/x/managedClusters/c1",
              "properties": {"log": cut}}
    body = orjson.dumps({"records": [record, {**record, "category": "kube-audit-admin"}]})
    parsed = parse_documents([body])
    assert parsed.counts[SALVAGED] == 2
    batch = Chain().admit(parsed)
    assert len(batch.events) == 1
    assert batch.counts[SALVAGED] == 1 and batch.counts[Reason.DUPLICATE] == 1
