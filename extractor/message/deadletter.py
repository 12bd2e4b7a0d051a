"""The dead-letter format: one for the ingest function and the plugin's queue source.

Both write to the same queue, so a reader handles one format. A letter is a JSON object
(not base64 of JSON) about one item no retry can deliver: who gave up on it (`source`:
`ingest` or `plugin`), why (`reason`, `detail`), and the item itself, either inline
(`raw`: base64 of its bytes) or, when that would not fit a queue message, in a claim-check
blob (`blob`, `sha256`, `size`). A letter about a queue message also says where the message
was (`source_queue`, `message_id`, `dequeue_count`, `claim_check`).

Pure: building the text. `transport.deadletter.send_dead_letter` decides inline or blob
and sends. Documented in docs/ingest-function.md, "Dead-letter format".
"""

from __future__ import annotations

import base64
import hashlib
import uuid
from dataclasses import dataclass, field
from typing import Any

import orjson

from extractor.safe_text import json_safe

VERSION = 1
BLOB_PREFIX = f"deadletter/v{VERSION}/"  # claim-check blobs of letters too large inline
MAX_DETAIL_CHARS = 2000




@dataclass(frozen=True, slots=True)
class QueueOrigin:
    """Where a dead-lettered queue message was."""

    queue: str
    message_id: str
    dequeue_count: int | None = None
    claim_check: str | None = None     # the claim-check blob the message named, kept


@dataclass(frozen=True, slots=True)
class DeadLetter:
    source: str                        # "ingest" | "plugin"
    reason: str
    detail: str
    raw: bytes                         # the item as read: a record, a body, a message text
    origin: QueueOrigin | None = None
    id: str = field(default_factory=lambda: uuid.uuid4().hex)

    @property
    def blob_name(self) -> str:
        """The claim-check blob that holds `raw` when it does not go inline."""
        return f"{BLOB_PREFIX}{self.id}"

    def text(self, *, in_blob: bool = False) -> str:
        """The letter: `raw` inline, or (`in_blob`) `blob`, `sha256` and `size` naming
        `blob_name`, which must then hold exactly `raw`."""
        letter: dict[str, Any] = {
            "v": VERSION, "id": self.id, "source": self.source, "reason": self.reason,
            "detail": json_safe(self.detail[:MAX_DETAIL_CHARS]),
        }
        if self.origin is not None:
            letter["source_queue"] = self.origin.queue
            letter["message_id"] = self.origin.message_id
            letter["dequeue_count"] = self.origin.dequeue_count
            letter["claim_check"] = self.origin.claim_check
        if in_blob:
            letter["blob"] = self.blob_name
            letter["sha256"] = hashlib.sha256(self.raw).hexdigest()
            letter["size"] = len(self.raw)
        else:
            letter["raw"] = base64.b64encode(self.raw).decode("ascii")
        return orjson.dumps(letter).decode("utf-8")


