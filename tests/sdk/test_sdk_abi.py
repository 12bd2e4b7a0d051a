"""The SDK through its C ABI, from a non-Python host, with a plugin that knows no Kubernetes."""

from __future__ import annotations

import os
import site
from pathlib import Path

import pytest

from harness import host
from plugin.sdk.abi.builder import build, c_string

KEYS = ["demo.word", "demo.len", "demo.chars", "demo.chars[1]", "demo.key[x]", "demo.key",
        "demo.key[boom]"]


@pytest.fixture(scope="module")
def lib(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("demo") / "libdemo.so"
    here = out.parent
    paths = [os.path.relpath(p, here) for p in (host.ROOT, *site.getsitepackages())]
    return build("tests.sdk.demo_plugin:DemoPlugin", out, paths)


@pytest.mark.parametrize(
    ("framework", "compatible"),
    [("3.0.0", True), ("3.11.0", True), ("2.9.9", False), ("4.0.0", False)],
)
def test_api_version_check(lib: Path, framework: str, compatible: bool) -> None:
    got = host.info(lib, framework)
    assert got["required_api_version"] == "3.0.0"
    assert got["compatible"] is compatible


def test_info_is_static(lib: Path) -> None:
    got = host.info(lib)
    assert (got["name"], got["version"], got["id"], got["event_source"]) == (
        "demo", "1.2.3", 999, "demo")
    assert [f["name"] for f in got["fields"]] == ["demo.word", "demo.len", "demo.chars",
                                                  "demo.key"]
    assert got["schema_type"] == 1 and got["init_schema"] == '{"type":"object"}'


@pytest.mark.parametrize("multi", [False, True])
def test_extract_one_and_many_fields_per_call(lib: Path, tmp_path: Path, multi: bool) -> None:
    events = tmp_path / "events.txt"
    events.write_text("hello\nunparsable\nab\n")
    rows = host.extract(lib, events, KEYS, multi=multi)
    assert rows[0]["values"] == {
        "demo.word": ["hello"], "demo.len": {"u64": [5]}, "demo.chars": list("hello"),
        "demo.chars[1]": ["e"], "demo.key[x]": ["x=hello"], "demo.key": {"rc": 1},
        "demo.key[boom]": {"rc": 1},
    }
    assert all(v == {"rc": 1} for v in rows[1]["values"].values())  # parse failure
    assert rows[2]["values"]["demo.chars"] == ["a", "b"]


def test_capture_timeout_batches_eof_progress(lib: Path) -> None:
    rows = host.capture(lib, "a,b,c", ["demo.word"])
    events, end = rows[:-1], rows[-1]
    assert [e["data"] for e in events] == ["a", "b", "c"]
    assert [e["ts"] for e in events] == [1000, 1001, 1000]
    assert all(e["type"] == 322 and e["plugin_id_ok"] for e in events)
    assert [e["values"]["demo.word"] for e in events] == [["a"], ["b"], ["c"]]
    assert end == {"end": True, "rc": 2, "events": 3, "timeouts": 1, "progress_pct": 5000,
                   "progress": "half"}


def test_init_failure_is_an_error_with_secrets_redacted(lib: Path) -> None:
    rows = host.capture(lib, "a", config="fail")
    assert rows == [{"init_rc": 1, "error": "bad config secret=***"}]


def test_open_failure(lib: Path) -> None:
    assert host.capture(lib, "fail") == [{"open_rc": 1, "error": "cannot open"}]


@pytest.mark.parametrize(("text", "literal"), [
    ('a"b\\c', '"a\\"b\\\\c"'), ("é\n", '"\\303\\251\\012"'), ("??=", '"\\?\\?="'),
])
def test_c_string(text: str, literal: str) -> None:
    assert c_string(text) == literal


def test_hot_reload_dlclose_and_load_again(lib: Path, tmp_path: Path) -> None:
    """Falco destroys and dlcloses plugins on a config change, then loads them again."""
    events = tmp_path / "events.txt"
    events.write_text("hello\nab\n")
    requests = tmp_path / "req"
    requests.write_text(host.request_lines(host.info(lib)["fields"], ["demo.word"]))
    rows = host.run(lib, "reload", "", str(events), str(requests))
    assert [r["values"]["demo.word"] for r in rows] == [["hello"], ["ab"], ["hello"], ["ab"]]

