"""File replay through the built .so, driven as Falco drives it (open/next_batch/close)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import orjson
import pytest

from extractor.envelope.normalize import (
    EVENT_CLUSTER_ANNOTATION,
    TRUNCATED_ANNOTATION,
    parse_timestamp_ns,
)
from harness import host
from harness.memory import peak_rss_mib
from tests import FIXTURES
from tests.support.aks_fixture import expected_rows

TRACES = FIXTURES / "audit-events" / "falco-traces"
AKS = FIXTURES / "aks"


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


def own_cluster_names() -> dict[tuple[str, str], object]:
    """Events of the capture that carry their own `cluster_name` annotation, as written."""
    names = {}
    for body in (AKS / "eventhub-bodies.jsonl").open("rb"):
        for record in orjson.loads(body)["records"]:
            try:
                event = orjson.loads(record["properties"]["log"])
                name = event["annotations"]["cluster_name"]
            except (orjson.JSONDecodeError, KeyError, TypeError):
                continue
            names[(event["auditID"], event["stage"])] = name
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
        # the name from resourceId, which wins over the event's own (kept beside it); one
        # event has `annotations` of the wrong type: nowhere to put the name
        assert cluster in (None, [expected[key]["cluster"]])
        annotations = orjson.loads(e["data"]).get("annotations")
        own = own_cluster.get(key)
        if own is not None and own != expected[key]["cluster"] and key not in salvaged:
            assert annotations[EVENT_CLUSTER_ANNOTATION] == own
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


def test_a_cluster_name_never_turns_into_a_replay(tmp_path: Path) -> None:
    """Open params `prod-cluster` (the Go plugin's cluster name) with a
    folder of that name in the working directory still means "read the configured source".
    Replay needs file:// or an absolute path."""
    (tmp_path / "prod-cluster").mkdir()
    (tmp_path / "prod-cluster" / "audit.json").write_bytes(orjson.dumps(source_events(TRACES)[0]))
    rows = host.capture(host.LIB, "prod-cluster", cwd=tmp_path)
    assert rows[0]["open_rc"] == 1 and "names no queue" in rows[0]["error"]
    events, end = events_of(host.capture(host.LIB, str(tmp_path / "prod-cluster")))
    assert len(events) == 1 and end["rc"] == 2


def test_poison_records_in_a_replayed_file_cost_only_themselves(tmp_path: Path) -> None:
    """A hostile record is skipped and counted; every event around it is replayed."""
    good = [dict(e, auditID=f"good-{i}") for i, e in enumerate(source_events(TRACES)[:3])]
    head = orjson.dumps(good[0]).decode()[:-1]
    hostile = [
        head.replace("good-0", "deep") + ',"o":' + '{"a":' * 1025 + "1" + "}" * 1025 + "}",
        head.replace("good-0", "cut") + ',"s":"\\ud800","n":NaN,"x":12345678901234567890123,"c',
    ]
    records = [{"category": "kube-audit", "properties": {"log": log}}
               for log in [orjson.dumps(good[0]).decode(), *hostile,
                           orjson.dumps(good[1]).decode()]]
    lines = [orjson.dumps({"records": records}), b"[" * 3000, orjson.dumps(good[2])]
    (tmp_path / "capture.jsonl").write_bytes(b"\n".join(lines))

    events, end = events_of(host.capture(host.LIB, f"file://{tmp_path}", ["ka.auditid"]))

    assert end["rc"] == 2
    assert [e["values"]["ka.auditid"] for e in events] == [
        ["good-0"], ["deep"], ["cut"], ["good-1"], ["good-2"]]
    omitted = [orjson.loads(e["data"]).get("annotations", {}).get("k8saudit-aks/omitted")
               for e in events]
    assert omitted == [None, "o", "n,s", None, None]  # x, beyond 64 bits, arrives exactly
    assert b'"x":12345678901234567890123' in events[2]["data"].encode()


def test_an_event_over_max_event_size_is_logged_with_its_place(tmp_path: Path) -> None:
    small, big = source_events(TRACES)[:2]
    big = dict(big, requestObject={"x": "y" * 5000})
    (tmp_path / "two.jsonl").write_bytes(orjson.dumps(small) + b"\n" + orjson.dumps(big))
    proc = host.run_raw(host.LIB, "capture", orjson.dumps({"max_event_size": 1024}).decode(),
                        str(tmp_path), host.requests_file([]), "-1", "100")
    events, end = events_of([orjson.loads(line) for line in proc.stdout.splitlines()])
    assert [orjson.loads(e["data"]) for e in events] == [small] and end["rc"] == 2
    assert f"{tmp_path / 'two.jsonl'} (documents 1-2): skipped (too_large)" in proc.stderr
    assert "skipped.too_large=1" in proc.stderr  # the stats line at close


def test_counters_reach_plugin_get_metrics() -> None:
    """Falco's metrics collector calls plugin_get_metrics by name, whatever API version the
    plugin declares (libsinsp sinsp_plugin::get_metrics); the C host asks as it does."""
    proc = host.run_raw(host.LIB, "capture", "", f"file://{TRACES}",
                        host.requests_file([]), "-1", "10", "0", "metrics")
    metrics = orjson.loads(proc.stdout.splitlines()[-1])["metrics"]
    assert metrics["delivered"] == [51, "u64", 0]  # counter: u64, monotonic
    assert metrics["received"] == [51, "u64", 0]
    assert metrics["skipped.not_audit_event"] == [1, "u64", 0]  # fal_01_003
    assert metrics["seconds_since_last_receive"][1:] == ["d", 1]  # gauge: double


def test_replay_memory_does_not_follow_the_file(tmp_path: Path) -> None:
    """Streaming: the host's peak RSS replaying 50,000 events (40 MiB) is that of 5,000
    (a whole-file read would add the file and its documents). The dedupe window is kept
    small here so that only the reading is measured; its own cost per key is checked in
    tests/extractor/test_envelope.py."""
    base = source_events(TRACES)[0]
    config = orjson.dumps({"dedupe_window": 1000}).decode()
    requests = tmp_path / "none.req"
    requests.write_text("")
    peaks = []
    for n in (5_000, 50_000):
        path = tmp_path / f"events-{n}.jsonl"
        with path.open("wb") as out:
            for i in range(n):
                out.write(orjson.dumps({**base, "auditID": f"m-{i}", "pad": "x" * 800}) + b"\n")
        peak, _ = peak_rss_mib([str(host.HOST), str(host.LIB), "capture", config, str(path),
                                str(requests), "-1", "100"], env={})
        peaks.append(peak)
    assert peaks[1] < peaks[0] * 1.1, peaks


def test_each_file_of_a_directory_has_its_own_dedupe_window(tmp_path: Path) -> None:
    """A copy within a file is a duplicate; the same event in the next file is replayed,
    so a directory's replay shows every file in full."""
    event = orjson.dumps(source_events(TRACES)[0])
    for name in ("a.jsonl", "b.jsonl"):
        (tmp_path / name).write_bytes(event + b"\n" + event + b"\n")
    events, end = events_of(host.capture(host.LIB, str(tmp_path)))
    assert len(events) == 2 and end["rc"] == 2
