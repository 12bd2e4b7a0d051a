"""The one dead-letter format both writers use (extractor.message.deadletter)."""

from __future__ import annotations

import base64
import hashlib

import orjson

from extractor.message.deadletter import BLOB_PREFIX, DeadLetter, QueueOrigin


def test_an_ingest_letter_carries_its_record_inline() -> None:
    letter = DeadLetter("ingest", "not_json", "x" * 5000, b"klog text")
    doc = orjson.loads(letter.text())
    assert doc == {"v": 1, "id": letter.id, "source": "ingest", "reason": "not_json",
                   "detail": "x" * 2000, "raw": base64.b64encode(b"klog text").decode()}


def test_a_plugin_letter_names_its_queue_message() -> None:
    origin = QueueOrigin("k8saudit", "msg-1", 3, "v1/abc.zlib")
    doc = orjson.loads(DeadLetter("plugin", "digest_mismatch", "d", b"text", origin).text())
    assert (doc["source_queue"], doc["message_id"], doc["dequeue_count"],
            doc["claim_check"]) == ("k8saudit", "msg-1", 3, "v1/abc.zlib")
    assert list(doc)[:5] == ["v", "id", "source", "reason", "detail"]


def test_a_letter_in_a_blob_names_it_with_digest_and_size() -> None:
    raw = b"\x00\xff" * 1000
    letter = DeadLetter("ingest", "not_json", "", raw)
    doc = orjson.loads(letter.text(in_blob=True))
    assert "raw" not in doc
    assert doc["blob"] == letter.blob_name == f"{BLOB_PREFIX}{letter.id}"
    assert doc["blob"].startswith("deadletter/v1/")
    assert (doc["sha256"], doc["size"]) == (hashlib.sha256(raw).hexdigest(), len(raw))
