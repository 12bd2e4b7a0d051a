"""Replay audit logs from files: raw audit events, Event Hub bodies, storage archives, and
gzip-compressed copies of them.

Files are read in bounded chunks (`extractor.envelope.documents`): memory does not grow with
the file, and the first events reach Falco before a file is read to its end. Everything a
file holds goes through the same envelope code and policy chain as the ingest function, so
a replay shows exactly what the live pipeline would deliver (a dedupe window a file).
Unreadable records are skipped and counted, never fatal; the capture ends with EOF. Events
are handed to Falco as the live sources hand them (`handover.py`): at most 256 a batch, an
event without a known time stamped with the current time. Progress is the share of the
files' bytes read.
"""

from __future__ import annotations

import gzip
import logging
import zlib
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import BinaryIO

from extractor.envelope.documents import Document, Readable, TooLarge, documents
from extractor.envelope.normalize import AuditEvent, parse_documents
from extractor.policy.chain import Chain
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


def document_bound(max_event_size: int) -> int:
    """The largest document held: a record whose `properties.log` is an event of the
    largest size, every character of it escaped (\\" for "), and its envelope."""
    return 2 * max_event_size + 64 * 1024


class FileInstance(Source):
    def __init__(self, path: Path, common: Common) -> None:
        self.files = replay_files(path)
        self.common = common
        self.stats = Stats(f"file:{path}", common.stats_interval_seconds)
        self.done_files = 0
        self.sizes = [f.stat().st_size for f in self.files]
        self.total_bytes = sum(self.sizes) or 1
        self.done_bytes = 0
        self._reading: BinaryIO | None = None
        self.handover: Handover[None] = Handover()
        self.chain = Chain(common.max_event_size, common.dedupe_window)
        self._chunks = self._read()

    def _read(self) -> Iterator[list[AuditEvent]]:
        for file, size in zip(self.files, self.sizes, strict=True):
            try:
                with file.open("rb") as raw:
                    self._reading = raw
                    gzipped = raw.read(2) == b"\x1f\x8b"
                    raw.seek(0)
                    stream: Readable = gzip.GzipFile(fileobj=raw, mode="rb") if gzipped else raw
                    found = documents(stream, document_bound(self.common.max_event_size))
                    yield from self._parse(file, found)
            except (OSError, EOFError, zlib.error) as exc:  # one bad file ends only itself
                log.error("%s: not replayed (from byte %d on): %s", file,
                          self._reading.tell() if self._reading else 0, exc)
                self.stats.skipped("unreadable_file")
            self._reading = None
            self.done_bytes += size  # as opened: a file gone since costs only itself
            self.done_files += 1
            if self.done_files < len(self.files):  # a window a file: each shows in full
                self.chain.forget()

    def _parse(self, file: Path, found: Iterable[Document]) -> Iterator[list[AuditEvent]]:
        batch: list[bytes] = []
        first = 1  # the number of the batch's first document in the file
        for number, document in enumerate(found, 1):
            if isinstance(document, TooLarge):  # the file keeps it: the log line is its letter
                log.warning("%s: document %d, %s, skipped: larger than %d bytes (too_large)",
                            file, number, document, document_bound(self.common.max_event_size))
                self.stats.skipped("too_large")
                continue
            if not batch:
                first = number
            batch.append(document)
            if len(batch) == BATCH_DOCUMENTS:
                yield from self._events(file, batch, first, number)
                batch = []
        if batch:
            yield from self._events(file, batch, first, first + len(batch) - 1)

    def _events(self, file: Path, batch: list[bytes], first: int, last: int
                ) -> Iterator[list[AuditEvent]]:
        parsed = self.chain.admit(
            parse_documents(batch, categories=self.common.accepted_categories))
        where = f"{file} (documents {first}-{last})"
        self.stats.parsed(parsed, where)  # the file keeps a drop: a log line is its letter
        if parsed.events:
            yield parsed.events

    def next_batch(self) -> Sequence[Event]:
        self.stats.maybe_report()
        self.handover.acknowledge()  # nothing to delete: a file is read once
        while True:
            events = self.handover.take()
            self.stats.merge(self.handover.counts())
            if events:
                return events
            chunk = next(self._chunks, None)
            if chunk is None:
                raise Eof
            self.handover.add(None, chunk)

    def progress(self) -> tuple[float, str]:
        read = self.done_bytes + (self._reading.tell() if self._reading else 0)
        pct = min(100.0, 100.0 * read / self.total_bytes)
        return pct, f"{self.done_files}/{len(self.files)} files, {pct:.1f}% of the bytes"

    def close(self) -> None:
        log.info("%s", self.stats.line())
