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


def unpack_event(raw: bytes) -> tuple[int, int, bytes]:
    """(plugin_id, timestamp_ns, data) of a packed plugin event; ValueError if it is not one."""
    if len(raw) < HEADER_SIZE:
        raise ValueError("event shorter than its header")
    ts, _tid, length, etype, nparams, len0, len1, plugin_id = _HEADER.unpack_from(raw)
    if etype != PLUGIN_EVENT_TYPE or nparams != 2 or len0 != 4 or length != HEADER_SIZE + len1:
        raise ValueError("not a plugin event")
    return plugin_id, ts, raw[HEADER_SIZE:length]
