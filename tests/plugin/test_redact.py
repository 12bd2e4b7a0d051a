"""Secrets never reach a log line or Falco: each secret shape through
`redact`, through the log filter the SDK installs for every handler (messages, arguments,
tracebacks), and through the built .so's own log in every mode."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from extractor.safe_text import describe_redacted, redact
from harness import host
from plugin.k8saudit_aks.plugin import K8sAuditAksPlugin
from plugin.sdk.abi.runtime import install_redaction

SECRET = "c2VjcmV0dmFsdWU9PQ"  # what must never show, whatever surrounds it
SHAPES = {
    "storage connection string": f"DefaultEndpointsProtocol=https;AccountName=a;"
                                 f"AccountKey={SECRET}==;EndpointSuffix=core.windows.net",
    "event hubs connection string": f"Endpoint=sb://ns.servicebus.windows.net/;"
                                    f"SharedAccessKeyName=listen;SharedAccessKey={SECRET}=",
    "SAS query string": f"https://a.blob.core.windows.net/c/b?sv=2024&sp=r&sig={SECRET}%3D",
    "URL-encoded SAS": f"url=https%3A%2F%2Fa%2Fc%3Fsv%3D1%26sig%3D{SECRET}%253D",
    "SAS token credential": f"SharedAccessSignature sr=ns&sig={SECRET}&se=1&skn=listen",
    "JSON account key": f'{{"AccountName": "a", "AccountKey": "{SECRET}=="}}',
    "JSON client secret": f"{{'client_secret': '{SECRET}'}}",
    "shared key header": f"Authorization: SharedKey devstoreaccount1:{SECRET}=",
    "bearer header": f"Authorization: Bearer eyJ0eXAi.{SECRET}.sig",
    "password": f"password: {SECRET}",
}


@pytest.mark.parametrize("text", SHAPES.values(), ids=SHAPES.keys())
def test_redact_removes_every_secret_shape(text: str) -> None:
    assert SECRET not in redact(text)
    assert "***" in redact(text)


def test_redact_keeps_what_is_not_a_secret() -> None:
    text = "design=1 signal=2 AccountName=a queue k8saudit: 3 messages"
    assert redact(text) == text


@pytest.fixture
def log_text() -> Iterator[io.StringIO]:
    """A root handler with the filter the SDK installs when the plugin loads."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    root = logging.getLogger()
    root.addHandler(handler)
    install_redaction(K8sAuditAksPlugin.redact)
    install_redaction(K8sAuditAksPlugin.redact)  # once per handler, however often called
    assert len(handler.filters) == 1
    try:
        yield stream
    finally:
        root.removeHandler(handler)


@pytest.mark.parametrize("text", SHAPES.values(), ids=SHAPES.keys())
def test_every_log_path_is_redacted(log_text: io.StringIO, text: str) -> None:
    log = logging.getLogger("azure.core.pipeline")  # a library's logger, not ours
    log.warning(text)
    log.warning("request failed: %s", text)
    try:
        raise ValueError(text)
    except ValueError:
        log.exception("close failed")  # the SDK runtime's log.exception paths
    written = log_text.getvalue()
    assert written.count("***") >= 3
    assert SECRET not in written


def test_the_built_plugin_redacts_its_own_log_in_every_mode(tmp_path: Path) -> None:
    """Through the .so, where the SDK installs the filter: file replay (a path holding a
    SAS), queue mode and Event Hub mode against endpoints that refuse connections, with
    the secret in their connection strings."""
    folder = tmp_path / f"export&sig={SECRET}"
    folder.mkdir()
    (folder / "bad.json").write_text('{"records": [{"category": "kube-audit", '
                                     '"properties": {"log": "not json"}}]}')
    file_run = host.run_raw(host.LIB, "capture", "", str(folder),
                            host.requests_file([]), "-1", "10")
    assert "skipped (not_json)" in file_run.stderr
    queue = {"queue_name": "k8saudit", "queue_connection_string":
             f"DefaultEndpointsProtocol=http;AccountName=a;AccountKey={SECRET}==;"
             "QueueEndpoint=http://127.0.0.1:1/a;BlobEndpoint=http://127.0.0.1:1/a"}
    hub = {"event_hub_name": "hub", "event_hub_namespace_connection_string":
           f"Endpoint=sb://127.0.0.1:1/;SharedAccessKeyName=x;SharedAccessKey={SECRET}",
           "blob_storage_connection_string": queue["queue_connection_string"],
           "blob_storage_container_name": "checkpoints"}
    runs = [file_run]
    for config in (queue, hub):
        runs.append(host.run_raw(host.LIB, "capture", orjson.dumps(config).decode(), "",
                                 host.requests_file([]), "-1", "40"))
    for run in runs:
        assert SECRET not in run.stdout + run.stderr
    assert "***" in runs[0].stderr
    assert any("unreachable" in run.stderr or "rror" in run.stderr for run in runs[1:])


def test_an_exception_is_described_in_one_line_with_its_secrets_redacted() -> None:
    exc = ValueError("bad AccountKey=c2VjcmV0;BlobEndpoint=x\nsecond line sig=abc")
    text = describe_redacted(exc)
    assert text == "ValueError: bad AccountKey=***;BlobEndpoint=x"
