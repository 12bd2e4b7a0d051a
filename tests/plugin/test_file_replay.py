"""File replay through the built .so, driven as Falco drives it (open/next_batch/close)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import orjson
import pytest

from extractor.envelope import TRUNCATED_ANNOTATION, parse_timestamp_ns
from tests import host
from tests.aks_fixture import expected_rows

TRACES = host.FIXTURES / "audit-events" / "falco-traces"
AKS = host.FIXTURES / "aks"


def events_of(rows: list[dict]) -> tuple[list[dict], dict]:
    *events, end = rows
    assert end["end"] is True
    return events, end


def source_events(directory: Path) -> list[dict]:
    """The audit events of a trace directory, in replay (file name) order."""
    out = []
    for file in sorted(directory.iterdir()):
        for line in file.read_bytes().splitlines():
            try:
                value = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue  # fal_01_003: deliberately malformed
            if isinstance(value, dict) and value.get("kind") == "Event":
                out.append(value)
    return out


@pytest.mark.parametrize("params", [f"file://{TRACES}", str(TRACES)])
def test_falco_traces_one_event_per_audit_event(params: str) -> None:
    events, end = events_of(host.capture(host.LIB, params, ["ka.auditid", "ka.stage"]))
    expected = source_events(TRACES)
    assert end["rc"] == 2  # EOF
    assert end["progress_pct"] == 10000
    assert len(events) == len(expected) == 51
    for got, want in zip(events, expected, strict=True):
        assert got["type"] == 322 and got["plugin_id_ok"]
        assert orjson.loads(got["data"]) == want
        assert "\n" not in got["data"]
        assert got["ts"] == parse_timestamp_ns(want["stageTimestamp"])
        assert got["values"]["ka.auditid"] == [want["auditID"]]


def own_cluster_names() -> dict[tuple[str, str], str]:
    """Events of the capture that carry their own `cluster_name` annotation."""
    names = {}
    for body in (AKS / "eventhub-bodies.jsonl").open("rb"):
        for record in orjson.loads(body)["records"]:
            try:
                event = orjson.loads(record["properties"]["log"])
                name = event["annotations"]["cluster_name"]
            except (orjson.JSONDecodeError, KeyError, TypeError):
                continue
            text = name if isinstance(name, str) else orjson.dumps(name).decode()
            names[(event["auditID"], event["stage"])] = text
    return names


def test_eventhub_bodies_replay_yields_every_expected_event() -> None:
    rows = host.capture(host.LIB, f"file://{AKS / 'eventhub-bodies.jsonl'}",
                        ["ka.auditid", "ka.stage", "ka.cluster.name"])
    events, end = events_of(rows)
    assert end["rc"] == 2
    got = Counter((e["values"]["ka.auditid"][0], e["values"]["ka.stage"][0]) for e in events)
    assert max(got.values()) == 1, "duplicates (kube-audit + kube-audit-admin) are dropped"
    expected = {(x["auditID"], x["stage"]): x for x in expected_rows()}
    own_cluster = own_cluster_names()
    complete = {k for k, x in expected.items() if not x["truncated"]}
    assert complete <= set(got)
    salvaged = set(got) - complete
    assert salvaged <= {k for k, x in expected.items() if x["truncated"]}
    for e in events:
        key = (e["values"]["ka.auditid"][0], e["values"]["ka.stage"][0])
        cluster = e["values"]["ka.cluster.name"]
        # the name from resourceId, unless the event named its cluster itself; one event
        # has `annotations` of the wrong type: nowhere to put the name
        if key not in salvaged:  # (a salvaged log's own annotations are not parsed here)
            assert cluster in (None, [own_cluster.get(key, expected[key]["cluster"])])
        annotations = orjson.loads(e["data"]).get("annotations")
        marked = isinstance(annotations, dict) and annotations.get(TRUNCATED_ANNOTATION)
        assert (marked == "true") == (key in salvaged)


def test_storage_archive_replay() -> None:
    events, end = events_of(host.capture(host.LIB, str(AKS / "storage-archive-PT1H.json"),
                                         ["ka.cluster.name"]))
    assert end["rc"] == 2 and events
    assert all(e["values"]["ka.cluster.name"] for e in events)


def test_eventlist_and_array_shapes(tmp_path: Path) -> None:
    one, two = source_events(TRACES)[:2]
    (tmp_path / "list.json").write_bytes(orjson.dumps({"kind": "EventList", "items": [one]}))
    (tmp_path / "array.json").write_bytes(orjson.dumps([two]))
    (tmp_path / "noise.log").write_text("I1127 08:00:00 klog text\n{\"not\": \"audit\"}\n")
    events, end = events_of(host.capture(host.LIB, str(tmp_path)))
    assert [orjson.loads(e["data"]) for e in events] == [two, one]
    assert end["rc"] == 2


@pytest.mark.parametrize(
    ("params", "error"),
    [
        ("my-cluster", "names no queue"),
        ("file:///nonexistent/k8s-audit.jsonl", "no such file or directory"),
    ],
)
def test_open_without_a_source_fails_clearly(params: str, error: str) -> None:
    rows = host.capture(host.LIB, params)
    assert rows[0]["open_rc"] == 1 and error in rows[0]["error"]


def test_aks_directory_replay_yields_every_complete_event() -> None:
    """The whole aks/ fixture directory (bodies, archive, and the expectation file itself,
    whose lines are not audit events and are skipped)."""
    events, end = events_of(host.capture(host.LIB, f"file://{AKS}", ["ka.auditid", "ka.stage"]))
    assert end["rc"] == 2
    got = {(e["values"]["ka.auditid"][0], e["values"]["ka.stage"][0]) for e in events}
    assert {(x["auditID"], x["stage"]) for x in expected_rows() if not x["truncated"]} <= got
