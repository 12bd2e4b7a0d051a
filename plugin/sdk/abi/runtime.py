"""The Python callbacks behind glue.c, one per `sdkpy_*` declaration.

Every callback is a `def_extern` with an explicit `error` value: a cffi callback that
raises would otherwise return 0, which is SS_PLUGIN_SUCCESS, and Falco would read
garbage. Each also catches its own exceptions so `get_last_error` says what went wrong.
"""

from __future__ import annotations

import functools
import logging
import sys
import traceback
from collections.abc import Callable, Sequence
from typing import Any

from plugin.sdk.api import Eof, Instance, Plugin, Timeout, load_plugin_class
from plugin.sdk.events import pack_event

SUCCESS, FAILURE, TIMEOUT, EOF = 0, 1, -1, 2

log = logging.getLogger("plugin.sdk")


class _Bound:
    """A plugin object plus what glue.c's extraction calls through the CPython API: `parse`,
    `fns` (one compiled function per slot) or `run_all` (all slots at once, when the
    extractor has `compile_all`), `compile_slots` and `describe`."""

    def __init__(self, plugin: Plugin, st: Any, compile_slots: Callable[[_Bound, int], None]):
        self.plugin = plugin
        self.st = st
        extractor = plugin.extractor
        self.parse = extractor.parse if extractor is not None else None
        self.fns: list[Callable[[object], Sequence[str] | None]] = []
        self.requests: list[tuple[int, int | str | None]] = []
        self.run_all: Callable[[object], list] | None = None
        self._compile = compile_slots

    def compile_slots(self, n: int) -> None:
        self._compile(self, n)

    def describe(self, exc: BaseException) -> str:
        return self.plugin.redact(str(exc) or type(exc).__name__)


class _RedactingFilter(logging.Filter):
    """Passes every record a handler writes (libraries' too) through `Plugin.redact`,
    its traceback included."""

    def __init__(self, redact: Callable[[str], str]) -> None:
        super().__init__()
        self.redact = redact

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        if record.exc_info:
            text += "\n" + logging.Formatter().formatException(record.exc_info)
            record.exc_info = record.exc_text = None
        record.msg, record.args = self.redact(text), ()
        return True


def install_redaction(redact: Callable[[str], str]) -> None:
    """Once, where the plugin starts: every root handler scrubs what it writes."""
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, _RedactingFilter) for f in handler.filters):
            handler.addFilter(_RedactingFilter(redact))


def _failing(exc: Exception) -> Callable[[object], None]:
    def fail(_doc: object) -> None:
        raise exc

    return fail


def bind(ffi: Any, lib: Any, plugin_ref: str) -> None:
    """Register the callbacks for the plugin class at `module:Class`."""
    plugin_cls = load_plugin_class(plugin_ref)
    if not logging.getLogger().handlers:
        logging.basicConfig(
            stream=sys.stderr, level=logging.INFO,
            format=f"[{plugin_cls.name}] %(levelname)s %(name)s: %(message)s",
        )
    install_redaction(plugin_cls.redact)
    alive: dict[Any, Any] = {}  # handle cdata -> kept alive until destroy/close

    def handle_of(obj: object) -> Any:
        h = ffi.new_handle(obj)
        alive[h] = obj
        return h

    def set_error(st: Any, exc: BaseException) -> None:
        text = plugin_cls.redact(str(exc) or type(exc).__name__)
        data = text.encode("utf-8", "replace")
        lib.sdk_set_error(st, data, len(data))

    def report(bound: _Bound, exc: BaseException) -> int:
        if not isinstance(exc, (Timeout, Eof)):
            log.debug("%s", plugin_cls.redact("".join(traceback.format_exception(exc))))
        set_error(bound.st, exc)
        return FAILURE

    @ffi.def_extern(error=ffi.NULL)
    def sdkpy_init(st: Any, config: Any) -> Any:
        try:
            plugin = plugin_cls(ffi.string(config).decode("utf-8", "replace"))
        except Exception as exc:
            set_error(st, exc)
            return ffi.NULL
        bound = _Bound(plugin, st, compile_new_slots)
        lib.sdk_set_bound(st, ffi.cast("void *", id(bound)))  # id() is the PyObject address
        return handle_of(bound)

    @ffi.def_extern()
    def sdkpy_destroy(py: Any) -> None:
        bound: _Bound = ffi.from_handle(py)
        try:
            bound.plugin.destroy()
        except Exception:
            log.exception("destroy failed")
        alive.pop(py, None)

    def reporting(failure: Any = FAILURE) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """The one error mapping of the callbacks that take the plugin handle first: the
        callback gets the bound plugin; Timeout and Eof become their return codes, any other
        exception `failure` with `get_last_error` set."""

        def wrap(callback: Callable[..., Any]) -> Callable[..., Any]:
            @functools.wraps(callback)
            def entry(py: Any, *args: Any) -> Any:
                bound: _Bound = ffi.from_handle(py)
                try:
                    return callback(bound, *args)
                except Timeout:
                    return TIMEOUT
                except Eof:
                    return EOF
                except Exception as exc:
                    report(bound, exc)
                    return failure

            return entry

        return wrap

    @ffi.def_extern(error=ffi.NULL)
    @reporting(failure=ffi.NULL)
    def sdkpy_open(bound: _Bound, inst: Any, params: Any) -> Any:
        instance = bound.plugin.open(ffi.string(params).decode("utf-8", "replace"))
        bound.plugin.opened = instance
        return handle_of((instance, inst))

    @ffi.def_extern()
    def sdkpy_close(py: Any, ipy: Any) -> None:
        instance: Instance = ffi.from_handle(ipy)[0]
        try:
            instance.close()
        except Exception:
            log.exception("close failed")
        alive.pop(ipy, None)

    @ffi.def_extern(error=FAILURE)
    @reporting()
    def sdkpy_next_batch(bound: _Bound, ipy: Any, inst: Any) -> int:
        events = ffi.from_handle(ipy)[0].next_batch()
        if not events:
            return TIMEOUT
        pid = bound.plugin.id
        blob = b"".join([pack_event(pid, e.data, e.timestamp_ns) for e in events])
        if lib.sdk_set_batch(inst, blob, len(blob), len(events)) < 0:
            raise MemoryError("cannot hand the batch to Falco")
        return SUCCESS

    @ffi.def_extern(error=FAILURE)
    @reporting()
    def sdkpy_list_open_params(bound: _Bound, st: Any) -> int:
        data = bound.plugin.list_open_params().encode()
        lib.sdk_set_open_params(st, data, len(data))
        return SUCCESS

    @ffi.def_extern(error=FAILURE)
    @reporting()
    def sdkpy_progress(bound: _Bound, ipy: Any, inst: Any, pct: Any) -> int:
        progress = ffi.from_handle(ipy)[0].progress()
        if progress is None:
            return FAILURE
        percent, text = progress
        pct[0] = max(0, min(10000, round(percent * 100)))
        data = text.encode()
        lib.sdk_set_progress(inst, data, len(data))
        return SUCCESS

    @ffi.def_extern(error=FAILURE)
    @reporting()
    def sdkpy_event_to_string(bound: _Bound, st: Any, data: Any, length: int) -> int:
        text = bound.plugin.event_to_string(ffi.buffer(data, length)[:]).encode()
        lib.sdk_set_event_string(st, text, len(text))
        return SUCCESS

    @ffi.def_extern(error=FAILURE)
    @reporting()
    def sdkpy_metrics(bound: _Bound, st: Any) -> int:
        metrics = list(bound.plugin.metrics())
        names = b"".join(name.encode() + b"\0" for name, _, _ in metrics)
        values = ffi.new("double[]", [float(value) for _, value, _ in metrics] or [0.0])
        gauge = ffi.new("uint8_t[]", [int(kind) for _, _, kind in metrics] or [0])
        if lib.sdk_set_metrics(st, names, len(names), values, gauge, len(metrics)) < 0:
            raise MemoryError("cannot hand the metrics to Falco")
        return SUCCESS

    def compile_new_slots(bound: _Bound, n: int) -> None:
        extractor = bound.plugin.extractor
        if extractor is None:
            raise RuntimeError(f"{bound.plugin.name} does not extract fields")
        field_id, present = ffi.new("uint32_t *"), ffi.new("uint32_t *")
        index, key = ffi.new("uint64_t *"), ffi.new("char **")
        while len(bound.fns) < n:
            lib.sdk_slot_key(bound.st, len(bound.fns), field_id, present, index, key)
            if not present[0]:
                arg: int | str | None = None
            elif key[0] != ffi.NULL:
                arg = ffi.string(key[0]).decode("utf-8", "replace")
            else:
                arg = index[0]
            try:
                fn = extractor.compile(field_id[0], arg)
            except Exception as exc:
                fn = _failing(exc)
            bound.fns.append(fn)
            bound.requests.append((field_id[0], arg))
        compile_all = getattr(extractor, "compile_all", None)
        if compile_all is not None:
            bound.run_all = compile_all(list(bound.requests))
