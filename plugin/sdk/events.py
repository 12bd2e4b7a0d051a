"""Falco's plugin event layout (type 322), packed the way libscap reads it."""

from __future__ import annotations

import struct

from plugin.sdk.api import PLUGIN_EVENT_TYPE

# Packed header (ts, tid, len, type, nparams), then two u32 parameter lengths, then
# param 0 (the plugin ID, u32) and param 1 (the payload).
_HEADER = struct.Struct("<QQIHIIII")
HEADER_SIZE = _HEADER.size
_NO_THREAD = 2**64 - 1


def pack_event(plugin_id: int, data: bytes, timestamp_ns: int) -> bytes:
    """One PPME_PLUGINEVENT_E carrying `data`, as next_batch must return it."""
    return (
        _HEADER.pack(
            timestamp_ns, _NO_THREAD, HEADER_SIZE + len(data), PLUGIN_EVENT_TYPE, 2, 4,
            len(data), plugin_id,
        )
        + data
    )
