"""The ingest function as the Functions host runs it: configured by app settings against
Azurite, invoked through its own entry point, every invocation's report recorded; and what
it left in the queue, the dead-letter queue and the claim-check container."""

from __future__ import annotations

import base64
import hashlib
import json
from collections import Counter
from collections.abc import Callable
from typing import Any

import azure.functions as func
import orjson
import pytest

import function_app
from extractor.envelope.normalize import AuditEvent, Reason
from extractor.message.codec import unpack, unpack_blob
from harness.azurite import Azurite
from harness.function import ingest_function
from ingest import ingestor as ing
from ingest import report as rep
from tests.support.aks_fixture import Key


class App:
    """function_app configured by app settings against Azurite, called as the host calls it."""

    def __init__(self, azurite: Azurite, names: dict[str, str], monkeypatch: pytest.MonkeyPatch):
        self.azurite = azurite
        self.names = names
        self.monkeypatch = monkeypatch
        self.reports: list[rep.Report] = []
        real_ingest = ing.Ingestor.ingest

        def recording(ingestor: ing.Ingestor, bodies: Any, report: Any = None) -> rep.Report:
            self.reports.append(report := report or rep.Report())
            return real_ingest(ingestor, bodies, report)

        monkeypatch.setattr(ing.Ingestor, "ingest", recording)
        self.settings(rate_limit_events_per_second="0")
        self.user_function: Callable[[list[func.EventHubEvent]], None] = (
            ingest_function().get_user_function())

    def settings(self, **overrides: str) -> None:
        """Set app settings (as the host does: environment) and drop the process singleton."""
        values = {
            "QUEUE_CONNECTION_STRING": self.azurite.connection_string,
            "QUEUE_NAME": self.names["queue"],
            "DEADLETTER_QUEUE_NAME": self.names["deadletter"],
            "CLAIMCHECK_CONTAINER": self.names["claims"],
            "STORAGE_RETRY_TOTAL": "1",
            **overrides,
        }
        for key, value in values.items():
            self.monkeypatch.setenv(key, value)
        function_app.ingestor.cache_clear()

    def __call__(self, events: list[func.EventHubEvent]) -> None:
        self.user_function(events)

    @property
    def last(self) -> rep.Report | None:
        """The report of the last invocation (failed ones included)."""
        return self.reports[-1] if self.reports else None

    @property
    def totals(self) -> Counter[str]:
        """Every invocation's counters, added up."""
        return sum((r.counts for r in self.reports), Counter())

    @property
    def ingestor(self) -> ing.Ingestor:
        return function_app.ingestor()

    def drain(self) -> tuple[list[AuditEvent], list[str]]:
        """Every event in the queue (claim checks fetched) and every message's id."""
        queue, claims = self.ingestor.queue, self.ingestor.claims
        events: list[AuditEvent] = []
        ids: list[str] = []
        for message in queue.receive_messages(messages_per_page=32, visibility_timeout=600):
            unpacked = unpack(message.content)
            ids.append(unpacked.message_id)
            if unpacked.blob is not None:
                data = claims.download_blob(unpacked.blob.name).readall()
                got = unpack_blob(unpacked.blob, data)
            else:
                got = unpacked.events or []
            assert len(got) == unpacked.count
            events.extend(got)
        return events, ids

    def dead_letters(self) -> list[tuple[dict[str, Any], bytes]]:
        """(envelope, raw record) of every dead letter, claim checks fetched and verified."""
        letters = []
        for message in self.ingestor.deadletter.receive_messages(
                messages_per_page=32, visibility_timeout=600):
            letter = json.loads(message.content)
            if "blob" in letter:
                raw = self.ingestor.claims.download_blob(letter["blob"]).readall()
                assert hashlib.sha256(raw).hexdigest() == letter["sha256"]
                assert len(raw) == letter["size"]
            else:
                raw = base64.b64decode(letter["raw"])
            letters.append((letter, raw))
        return letters


def check_fixture_delivery(
    delivered: Counter[Key],
    salvaged: set[Key],
    letters: list[tuple[dict[str, Any], bytes]],
    expected: tuple[Counter[Key], set[Key]],
) -> None:
    """Intact events exactly once each; every truncated event salvaged or dead-lettered."""
    intact, truncated = expected
    assert Counter({k: n for k, n in delivered.items() if k in intact}) == intact
    assert set(delivered) - set(intact) == salvaged
    assert all(n == 1 for k, n in delivered.items() if k in salvaged)
    assert salvaged <= truncated
    lettered: set[Key] = set()
    for letter, raw in letters:
        assert letter["reason"] == Reason.TRUNCATED_UNRECOVERABLE
        log = orjson.loads(raw)["properties"]["log"]
        matches = {k for k in truncated if k[0] in log}
        assert len(matches) == 1, letter
        lettered |= matches
    assert lettered | salvaged == truncated
    assert not lettered & salvaged
