"""What a plugin implements: the Python side of Falco's plugin API 3.x.

Optional capabilities are found by presence: a plugin with `event_source` and `open`
sources events, one with `extractor` extracts fields. Errors are plain exceptions: the ABI
layer turns `Timeout`/`Eof` into their return codes and anything else into
SS_PLUGIN_FAILURE plus `get_last_error`, passing the message through `Plugin.redact`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import ClassVar, Protocol

PLUGIN_EVENT_TYPE = 322


class Timeout(Exception):
    """No event is ready now; Falco calls `next_batch` again."""


class Eof(Exception):
    """The source has no more events."""


class PluginError(Exception):
    """A failure whose message is meant for the Falco operator as is."""


@dataclass(frozen=True, slots=True)
class Event:
    """One event to hand to Falco: its payload and its time in ns since the epoch."""

    data: bytes
    timestamp_ns: int


class Extractor(Protocol):
    """Field extraction, computed by Python once per event and served to Falco from C.

    `fields_json` is what `plugin_get_fields` returns. `parse` turns an event payload into
    whatever the compiled functions take (called once per event). `compile` is called once
    per distinct (field_id, argument) Falco asks for; the function it returns gives `None`
    (no value) or a list of strings, or raises (SS_PLUGIN_FAILURE for that field).

    (optional) `compile_all(requests)`: one function for all (field_id, argument) pairs
    asked so far, returning their results in order, an exception instance standing for a
    failed field. When present, the SDK calls it once per event instead of one function
    per pair: it lets an extractor share work between fields.
    """

    fields_json: str

    def parse(self, data: bytes) -> object: ...

    def compile(
        self, field_id: int, arg: int | str | None
    ) -> Callable[[object], Sequence[str] | None]: ...


class Instance:
    """An open capture. `next_batch` returns events or raises `Timeout`/`Eof`."""

    def next_batch(self) -> Sequence[Event]:
        raise NotImplementedError

    def progress(self) -> tuple[float, str] | None:  # (optional) percent 0-100 and text
        return None

    def close(self) -> None:  # (optional)
        return None

    def metrics(self) -> Iterable[tuple[str, float, bool]]:  # (optional)
        """What `Plugin.metrics` reports by default: see there."""
        return ()


class Plugin:
    """Base class: identity as class attributes, behaviour as methods.

    The class attributes are read at build time and baked into the library, so Falco can
    list and check the plugin without starting Python.
    """

    required_api_version: ClassVar[str] = "3.0.0"
    name: ClassVar[str]
    description: ClassVar[str]
    contact: ClassVar[str]
    version: ClassVar[str]
    id: ClassVar[int] = 0
    event_source: ClassVar[str] = ""
    extract_event_sources: ClassVar[Sequence[str]] = ()
    init_schema: ClassVar[str] = ""
    extractor: Extractor | None = None

    def __init__(self, config: str) -> None:
        self.config = config
        self.opened: Instance | None = None  # set by the runtime after each open

    def open(self, params: str) -> Instance:  # (optional) event sourcing
        raise PluginError(f"{self.name} does not source events")

    def list_open_params(self) -> str:  # (optional) JSON array of {"value", "desc"}
        return "[]"

    def event_to_string(self, data: bytes) -> str:  # (optional)
        return data.decode("utf-8", "replace")

    @classmethod
    def redact(cls, message: str) -> str:
        """Strip secrets from a message before it reaches Falco (also for init errors)."""
        return message

    def metrics(self) -> Iterable[tuple[str, float, bool]]:  # (optional)
        """(name, value, is_gauge) for Falco's metrics (`plugin_get_metrics`, asked every
        metrics interval): counters go out as monotonic u64, gauges as non-monotonic
        doubles. Falco prefixes each name with the plugin's name. By default: those of the
        instance last opened."""
        return self.opened.metrics() if self.opened is not None else ()

    def destroy(self) -> None:  # (optional)
        return None


def load_plugin_class(plugin_ref: str) -> type[Plugin]:
    """The class named `module:Class`."""
    module, _, name = plugin_ref.partition(":")
    return getattr(importlib.import_module(module), name)
