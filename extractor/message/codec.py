"""Queue wire format, version 1: many audit events per Azure Storage Queue message.

Written by the ingest Function, read by the Falco plugin. Pure: callers do the queue and
blob I/O. Layout, limits and the claim-check lifecycle: ``docs/queue-message-format.md``.

Message text = base64(frame); frame = header JSON, ``\\n``, zlib(payload) (no body when the
payload went to a claim-check blob); payload = one line per event: metadata JSON
``[timestamp_ns, auditID, stage, cluster]``, tab, compact event JSON, ``\\n``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import uuid
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import orjson

from extractor.envelope.normalize import AuditEvent

VERSION = 1
DEFAULT_MAX_MESSAGE_CHARS = 64 * 1024
DEFAULT_MAX_INFLATED = 16 * 1024 * 1024
DEFAULT_LEVEL = 1

# Frame bytes kept for the header (138 at most) and for zlib's final block + checksum after
# a sync flush (about 10); raw bytes fed between size checks at most.
_HEADER_RESERVE = 160
_FINISH_RESERVE = 16
_MAX_UNCHECKED = 32 * 1024
# A line's metadata JSON at most: auditID and stage are not bounded by the API server, so
# this is a budget, not a bound; _line checks the whole line.
_MAX_META = 4096
# Inflated bytes a reader holds besides the events it decodes.
_INFLATE_CHUNK = 64 * 1024
_CLAIM_CHECK_NAME = re.compile(rf"v{VERSION}/[0-9a-f]{{32}}\.zlib")


class PoisonReason(StrEnum):
    """Why a message cannot be read; the caller dead-letters it."""

    BAD_BASE64 = "bad_base64"
    BAD_HEADER = "bad_header"
    UNSUPPORTED_VERSION = "unsupported_version"
    TOO_LARGE = "too_large"
    BAD_COMPRESSION = "bad_compression"
    DIGEST_MISMATCH = "digest_mismatch"
    COUNT_MISMATCH = "count_mismatch"
    BAD_INDEX = "bad_index"
    BAD_EVENT = "bad_event"
    CLAIMCHECK_INVALID = "claimcheck_invalid"


class PoisonMessage(Exception):
    """A message (or claim-check blob) that no retry will make readable."""

    def __init__(self, reason: PoisonReason, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True, slots=True)
class Limits:
    """Size limits shared by writer and reader.

    ``max_message_chars``: queue message text after base64 (Azure: 64 KiB).
    ``max_inflated``: largest payload a reader inflates (compression-bomb bound).
    """

    max_message_chars: int = DEFAULT_MAX_MESSAGE_CHARS
    max_inflated: int = DEFAULT_MAX_INFLATED

    def __post_init__(self) -> None:
        if self.max_frame_bytes <= _HEADER_RESERVE + _FINISH_RESERVE or self.max_inflated < 1:
            raise ValueError(f"limits too small: {self}")

    @property
    def max_frame_bytes(self) -> int:
        """Largest frame whose base64 text fits ``max_message_chars``."""
        return self.max_message_chars // 4 * 3

    @property
    def max_blob_bytes(self) -> int:
        """Largest claim-check blob a reader downloads: zlib of ``max_inflated``
        incompressible bytes (deflate adds 5 bytes per 16 KiB block, plus header)."""
        return self.max_inflated + self.max_inflated // 1024 + 64

    @property
    def max_event_bytes(self) -> int:
        """Largest event data a message can carry (its line's metadata aside)."""
        return self.max_inflated - _MAX_META


DEFAULT_LIMITS = Limits()


@dataclass(frozen=True, slots=True)
class OutgoingMessage:
    """Queue message text to send as-is; with ``blob`` = (name, bytes) to upload first."""

    text: str
    message_id: str
    count: int
    blob: tuple[str, bytes] | None = None


@dataclass(frozen=True, slots=True)
class BlobRef:
    """Claim check: container-relative blob name, sha256 (hex) of the uncompressed payload,
    event count."""

    name: str
    sha256: str
    count: int


@dataclass(frozen=True, slots=True)
class Unpacked:
    """A read message: ``events`` inline, or ``blob`` to fetch and pass to unpack_blob."""

    message_id: str
    count: int
    events: list[AuditEvent] | None
    blob: BlobRef | None


def pack(
    events: Sequence[AuditEvent], *, limits: Limits = DEFAULT_LIMITS, level: int = DEFAULT_LEVEL
) -> list[OutgoingMessage]:
    """Pack events, in order, into few messages; one compression pass over the data.

    An event that does not fit a message alone goes to a claim-check blob. zlib ``level``
    1 by default: the Function pays CPU per event, while the queue bills per message and
    level 1 already packs hundreds of events per message.
    Raises ValueError for an event whose data holds a newline (the payload is line-framed)
    or whose line alone exceeds ``limits.max_inflated`` (no reader would accept it).
    """
    lines = [_line(event, limits) for event in events]
    messages: list[OutgoingMessage] = []
    start = 0
    while start < len(lines):
        count, message = _next_message(lines, start, limits, level)
        messages.append(message)
        start += count
    return messages


def _line(event: AuditEvent, limits: Limits) -> bytes:
    if b"\n" in event.data:
        raise ValueError(f"event {event.audit_id!r}: data contains a newline")
    meta = orjson.dumps((event.timestamp_ns, event.audit_id, event.stage, event.cluster))
    line = b"".join((meta, b"\t", event.data, b"\n"))
    if len(line) > limits.max_inflated:
        raise ValueError(f"event {event.audit_id!r}: exceeds max_inflated")
    return line


def _next_message(
    lines: list[bytes], start: int, limits: Limits, level: int
) -> tuple[int, OutgoingMessage]:
    """The message for the longest run of lines from ``start`` that fits."""
    builder = _Builder(level, limits.max_frame_bytes - _HEADER_RESERVE)
    for line in lines[start:]:
        if builder.count and builder.raw + len(line) > limits.max_inflated:
            break
        # A line that could overflow the message gets a rollback point right before it, so
        # an overflow keeps every line already packed.
        if builder.unchecked and len(line) > builder.budget // 4 and not builder.check():
            break
        builder.add(line)
        if builder.needs_check() and not builder.check():
            break
    body, count = builder.finish()
    if count == 0:
        return 1, _claim_check(lines[start], level)
    payload = b"".join(lines[start : start + count])
    header = _header(count, payload)
    return count, OutgoingMessage(_text(header, body), header["id"], count)


class _Builder:
    """Streams lines into one zlib body. Every check sync-flushes to learn the exact
    compressed size and keeps a copy of the compressor, so an overflow rolls back to the
    last check instead of compressing the run again."""

    def __init__(self, level: int, budget: int) -> None:
        self.budget = budget
        self.compressor = zlib.compressobj(level)
        self.parts: list[bytes] = []
        self.size = 0
        self.raw = 0
        self.count = 0
        self.unchecked = 0
        self.saved = (self.compressor.copy(), 0, 0)

    def add(self, line: bytes) -> None:
        self._emit(self.compressor.compress(line))
        self.raw += len(line)
        self.unchecked += len(line)
        self.count += 1

    def needs_check(self) -> bool:
        """After the first line (so a lone fitting event is never claim-checked), then
        whenever the unchecked bytes could fill half the room left at the ratio so far."""
        if self.count == 1:
            return True
        ratio = self.raw / max(self.size, 1)
        room = self.budget - _FINISH_RESERVE - self.size
        return self.unchecked >= min(_MAX_UNCHECKED, room * ratio / 2)

    def check(self) -> bool:
        """Sync-flush; True (and a new rollback point) when all lines so far still fit."""
        self._emit(self.compressor.flush(zlib.Z_SYNC_FLUSH))
        self.unchecked = 0
        if self.size + _FINISH_RESERVE > self.budget:
            return False
        self.saved = (self.compressor.copy(), len(self.parts), self.count)
        return True

    def _emit(self, chunk: bytes) -> None:
        self.parts.append(chunk)
        self.size += len(chunk)

    def finish(self) -> tuple[bytes, int]:
        """Body and line count: all lines when they fit, else up to the last check."""
        tail = self.compressor.flush()
        if self.size + len(tail) <= self.budget:
            return b"".join(self.parts) + tail, self.count
        compressor, parts, count = self.saved
        return b"".join(self.parts[:parts]) + compressor.flush(), count


def _header(count: int, payload: bytes) -> dict[str, Any]:
    return {
        "v": VERSION,
        "id": uuid.uuid4().hex,
        "n": count,
        "sha256": hashlib.sha256(payload).hexdigest(),
    }


def _text(header: dict[str, Any], body: bytes) -> str:
    frame = orjson.dumps(header) + b"\n" + body if body else orjson.dumps(header)
    return base64.b64encode(frame).decode("ascii")


def _claim_check(line: bytes, level: int) -> OutgoingMessage:
    header = _header(1, line)
    name = f"v{VERSION}/{header['id']}.zlib"
    header["blob"] = name
    return OutgoingMessage(_text(header, b""), header["id"], 1, (name, zlib.compress(line, level)))


def claim_check_name(message_id: str) -> str | None:
    """The one blob name a claim check of message ``message_id`` may have; None for an id
    the writer never makes (32 hex digits)."""
    name = f"v{VERSION}/{message_id}.zlib"
    return name if _CLAIM_CHECK_NAME.fullmatch(name) else None


def unpack(text: str, *, limits: Limits = DEFAULT_LIMITS) -> Unpacked:
    """Read one message; raises PoisonMessage when it can never be read."""
    try:
        frame = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise PoisonMessage(PoisonReason.BAD_BASE64, str(exc)) from None
    head, _, body = frame.partition(b"\n")
    message_id, count, digest, blob = _parse_header(head)
    if blob is not None:
        if body:
            raise PoisonMessage(PoisonReason.BAD_HEADER, "claim check with an inline body")
        if blob != claim_check_name(message_id) or count != 1:
            # Only the writer's own name: anything else could point the reader (which
            # deletes what it read) at another blob or container.
            raise PoisonMessage(PoisonReason.CLAIMCHECK_INVALID,
                                f"blob {blob[:100]!r} is not v{VERSION}/<message id>.zlib "
                                "with one event")
        return Unpacked(message_id, count, None, BlobRef(blob, digest, count))
    return Unpacked(message_id, count, _decode(body, digest, count, limits), None)


def unpack_blob(ref: BlobRef, data: bytes, *, limits: Limits = DEFAULT_LIMITS) -> list[AuditEvent]:
    """Events of a fetched claim-check blob (read with at most ``limits.max_blob_bytes +
    1`` bytes, so a larger one shows); raises PoisonMessage like unpack."""
    if len(data) > limits.max_blob_bytes:
        raise PoisonMessage(PoisonReason.TOO_LARGE,
                            f"claim-check blob larger than {limits.max_blob_bytes} bytes")
    return _decode(data, ref.sha256, ref.count, limits)


def _parse_header(head: bytes) -> tuple[str, int, str, str | None]:
    try:
        header = orjson.loads(head)
    except orjson.JSONDecodeError as exc:
        raise PoisonMessage(PoisonReason.BAD_HEADER, str(exc)) from None
    if not isinstance(header, dict):
        raise PoisonMessage(PoisonReason.BAD_HEADER, "header is not an object")
    if header.get("v") != VERSION:
        raise PoisonMessage(PoisonReason.UNSUPPORTED_VERSION, f"version {header.get('v')!r}")
    message_id, count = header.get("id"), header.get("n")
    digest, blob = header.get("sha256"), header.get("blob")
    if not (
        isinstance(message_id, str)
        and type(count) is int
        and count > 0
        and isinstance(digest, str)
        and (blob is None or isinstance(blob, str))
    ):
        raise PoisonMessage(PoisonReason.BAD_HEADER, "missing or mistyped field")
    return message_id, count, digest, blob


def _decode(body: bytes, digest: str, count: int, limits: Limits) -> list[AuditEvent]:
    lines = _Lines(count)
    sha = hashlib.sha256()
    for chunk in _inflate(body, limits.max_inflated):
        sha.update(chunk)
        lines.feed(chunk)
    if sha.hexdigest() != digest:
        raise PoisonMessage(PoisonReason.DIGEST_MISMATCH, "payload sha256 differs from header")
    if lines.pending or lines.seen != count:
        got = lines.seen + bool(lines.pending)
        raise PoisonMessage(PoisonReason.COUNT_MISMATCH, f"header {count}, payload {got}")
    if lines.untabbed:
        raise PoisonMessage(PoisonReason.BAD_INDEX, "line without metadata")
    metas, datas = lines.metas, lines.datas
    try:
        index = orjson.loads(b"[" + b",".join(metas) + b"]")
    except orjson.JSONDecodeError as exc:
        raise PoisonMessage(PoisonReason.BAD_INDEX, str(exc)) from None
    if len(index) != count:
        raise PoisonMessage(PoisonReason.BAD_INDEX, "metadata is not one array per line")
    return [_event(entry, data) for entry, data in zip(index, datas, strict=True)]


def _inflate(body: bytes, limit: int) -> Iterator[bytes]:
    """zlib-inflate ``body`` in chunks of at most _INFLATE_CHUNK bytes, ``limit`` in all: a
    bomb stops at the limit, and the payload is never held whole besides its lines."""
    inflater = zlib.decompressobj()
    size = 0
    pending = body
    while not inflater.eof:
        try:
            chunk = inflater.decompress(pending, _INFLATE_CHUNK)
        except zlib.error as exc:
            raise PoisonMessage(PoisonReason.BAD_COMPRESSION, str(exc)) from None
        pending = inflater.unconsumed_tail
        if not chunk and not pending:
            break
        size += len(chunk)
        if size > limit:
            raise PoisonMessage(PoisonReason.TOO_LARGE, f"inflates beyond {limit} bytes")
        yield chunk
    if not inflater.eof or inflater.unused_data:
        raise PoisonMessage(PoisonReason.BAD_COMPRESSION, "truncated or trailing data")


class _Lines:
    """Splits inflated chunks into each line's metadata and event data as they come, so a
    message costs the bytes of the events its header counts plus one line in flight, not
    its payload three times (whole, split, partitioned); lines past the count are counted,
    not kept. Validation waits for the digest, as before."""

    def __init__(self, count: int) -> None:
        self.count = count
        self.seen = 0
        self.metas: list[bytes] = []
        self.datas: list[bytes] = []
        self.pending: list[bytes] = []  # the pieces of a line not ended yet
        self.untabbed = False

    def feed(self, chunk: bytes) -> None:
        start = 0
        while (end := chunk.find(b"\n", start)) != -1:
            self.seen += 1
            if self.seen > self.count:  # counted, never assembled
                self.pending.clear()
                start = end + 1
                continue
            if self.pending:
                self.pending.append(chunk[start:end])
                line = b"".join(self.pending)
                self.pending.clear()
            else:
                line = chunk[start:end]
            start = end + 1
            meta, tab, data = line.partition(b"\t")
            self.untabbed = self.untabbed or not tab
            self.metas.append(meta)
            self.datas.append(data)
        if start < len(chunk):
            self.pending.append(chunk[start:])


def _event(entry: Any, data: bytes) -> AuditEvent:
    try:
        timestamp_ns, audit_id, stage, cluster = entry
    except (TypeError, ValueError):
        raise PoisonMessage(PoisonReason.BAD_INDEX, f"entry {entry!r}") from None
    if not (
        type(timestamp_ns) is int
        and isinstance(audit_id, str)
        and isinstance(stage, str)
        and (cluster is None or isinstance(cluster, str))
    ):
        raise PoisonMessage(PoisonReason.BAD_INDEX, f"entry {entry!r}")
    try:  # what reaches Falco is an audit event object, whoever wrote the message
        valid = isinstance(orjson.loads(data), dict)
    except orjson.JSONDecodeError:
        valid = False
    if not valid:
        raise PoisonMessage(PoisonReason.BAD_EVENT, f"event {audit_id!r}: not a JSON object")
    return AuditEvent(data, timestamp_ns, audit_id, stage, cluster)
