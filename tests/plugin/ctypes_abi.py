"""The plugin API through ctypes, in the test process (the .so shares this interpreter).

For tests that make many thousands of calls (property-based fuzzing); the non-Python host
in harness/ (falco_host.c) covers how Falco itself loads the library.
"""

from __future__ import annotations

import ctypes
import json
import os
from pathlib import Path

from plugin.sdk.events import pack_event


class ExtractField(ctypes.Structure):
    _fields_ = [
        ("res", ctypes.c_void_p), ("res_len", ctypes.c_uint64), ("field_id", ctypes.c_uint32),
        ("field", ctypes.c_char_p), ("arg_key", ctypes.c_char_p),
        ("arg_index", ctypes.c_uint64), ("arg_present", ctypes.c_uint32),
        ("ftype", ctypes.c_uint32), ("flist", ctypes.c_uint32),
    ]


class ExtractInput(ctypes.Structure):
    _fields_ = [
        ("owner", ctypes.c_void_p), ("get_owner_last_error", ctypes.c_void_p),
        ("num_fields", ctypes.c_uint32), ("fields", ctypes.POINTER(ExtractField)),
        ("table_reader", ctypes.c_void_p * 4),
    ]


class EventInput(ctypes.Structure):
    _fields_ = [("evt", ctypes.c_char_p), ("evtnum", ctypes.c_uint64),
                ("evtsrc", ctypes.c_char_p)]


class InitInput(ctypes.Structure):
    _fields_ = [("config", ctypes.c_char_p), ("owner", ctypes.c_void_p),
                ("get_owner_last_error", ctypes.c_void_p), ("tables", ctypes.c_void_p)]


class Plugin:
    """An initialized plugin: `extract(data, requests)` -> (rc, values per request)."""

    def __init__(self, lib: Path, config: str = "") -> None:
        self.dll = ctypes.CDLL(str(lib), mode=os.RTLD_NOW | os.RTLD_LOCAL)
        self.dll.plugin_init.restype = ctypes.c_void_p
        self.dll.plugin_init.argtypes = [ctypes.POINTER(InitInput), ctypes.POINTER(ctypes.c_int32)]
        self.dll.plugin_extract_fields.argtypes = [
            ctypes.c_void_p, ctypes.POINTER(EventInput), ctypes.POINTER(ExtractInput)]
        self.dll.plugin_get_fields.restype = ctypes.c_char_p
        self.dll.plugin_get_id.restype = ctypes.c_uint32
        self.dll.plugin_destroy.argtypes = [ctypes.c_void_p]
        rc = ctypes.c_int32(1)
        self.state = self.dll.plugin_init(ctypes.byref(InitInput(config.encode())),
                                          ctypes.byref(rc))
        assert rc.value == 0
        self.fields = json.loads(self.dll.plugin_get_fields())
        self.plugin_id = self.dll.plugin_get_id()
        self.evtnum = 0
        self._keep: list[object] = []

    def requests(self, keys: list[str]) -> ctypes.Array:
        ids = {f["name"]: (i, f) for i, f in enumerate(self.fields)}
        arr = (ExtractField * len(keys))()
        for slot, key in zip(arr, keys, strict=True):
            name, _, arg = key.partition("[")
            fid, spec = ids[name]
            slot.field_id, slot.field, slot.ftype = fid, name.encode(), 9
            slot.flist = int(spec.get("isList", False))
            if arg:
                arg = arg[:-1]
                slot.arg_present = 1
                if spec["arg"].get("isIndex"):
                    slot.arg_index = int(arg)
                else:
                    key_bytes = arg.encode()
                    self._keep.append(key_bytes)
                    slot.arg_key = key_bytes
        return arr

    def extract(self, data: bytes, requests: ctypes.Array) -> tuple[int, list]:
        self.evtnum += 1
        event = pack_event(self.plugin_id, data, 0)
        evt = EventInput(event, self.evtnum, b"k8s_audit")
        inp = ExtractInput(None, None, len(requests), requests)
        rc = self.dll.plugin_extract_fields(ctypes.c_void_p(self.state), ctypes.byref(evt),
                                            ctypes.byref(inp))
        out = []
        for r in requests:
            strs = ctypes.cast(r.res, ctypes.POINTER(ctypes.c_char_p))
            out.append([strs[i].decode() for i in range(r.res_len)] if r.res_len else None)
        return rc, out

    def close(self) -> None:
        self.dll.plugin_destroy(ctypes.c_void_p(self.state))
