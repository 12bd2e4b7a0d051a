"""Replay audit logs from files: raw audit events, Event Hub bodies, storage archives.

Everything a file holds goes through the same envelope code as the ingest function, so a
replay shows exactly what the live pipeline would deliver. Unreadable records are skipped
and counted, never fatal; the capture ends with EOF. Events are handed to Falco as the live
sources hand them (`handover.py`): at most 256 a batch, oversized ones logged and counted,
an event without a known time stamped with the current time.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from pathlib import Path

from extractor.envelope import AuditEvent, Deduper, parse_documents, split_documents
from plugin.k8saudit_aks.config import Common
from plugin.k8saudit_aks.sources.handover import Handover
from plugin.k8saudit_aks.stats import Source, Stats
from plugin.sdk import Eof, Event, PluginError

log = logging.getLogger("k8saudit-aks.file")

BATCH_DOCUMENTS = 256


def replay_files(path: Path) -> list[Path]:
    """The files of a replay: the file itself, or a directory's files in name order."""
    if path.is_file():
        return [path]
    if path.is_dir():
        return sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))
    raise PluginError(f"open params: no such file or directory: {path}")


class FileInstance(Source):
    def __init__(self, path: Path, common: Common) -> None:
        self.files = replay_files(path)
        self.common = common
        self.stats = Stats(f"file:{path}", common.stats_interval_seconds)
        self.done_files = 0
        self.handover: Handover[None] = Handover()
        self._chunks = self._read()

    def _read(self) -> Iterator[list[AuditEvent]]:
        for file in self.files:
            # One dedupe window a file: a replay of a directory shows every file in full.
            deduper = Deduper(self.common.dedupe_window)
            try:
                documents = split_documents(file.read_bytes())
            except OSError as exc:  # one unreadable file does not end the replay
                log.error("%s: not replayed: %s", file, exc)
                self.stats.skipped("unreadable_file")
                documents = []
            for start in range(0, len(documents), BATCH_DOCUMENTS):
                batch = parse_documents(
                    documents[start:start + BATCH_DOCUMENTS],
                    categories=self.common.accepted_categories,
                    deduper=deduper,
                    max_event_bytes=self.common.max_event_size,
                )
                where = f"{file} (documents {start + 1}-{start + BATCH_DOCUMENTS})"
                self.stats.parsed(batch, where)  # the file keeps a drop: a log line is its letter
                if batch.events:
                    yield batch.events
            self.done_files += 1

    def next_batch(self) -> Sequence[Event]:
        self.stats.maybe_report()
        self.handover.acknowledge()  # nothing to delete: a file is read once
        while True:
            events = self.handover.take()
            self.stats.counts.update(self.handover.counts())
            if events:
                return events
            chunk = next(self._chunks, None)
            if chunk is None:
                raise Eof
            self.handover.add(None, chunk)

    def progress(self) -> tuple[float, str]:
        pct = 100.0 * self.done_files / len(self.files) if self.files else 100.0
        return pct, f"{self.done_files}/{len(self.files)} files"

    def close(self) -> None:
        log.info("%s", self.stats.line())
