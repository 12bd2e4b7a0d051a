"""A small Python mapping of Falco's C plugin API 3.x (see docs/sdk.md).

Plugin authors subclass `Plugin` (and `Instance` for event sourcing); `abi.builder` turns
such a class into a shared library whose `plugin_*` symbols Falco loads. Nothing here
knows about any particular event source.
"""

from plugin.sdk.api import (
    PLUGIN_EVENT_TYPE,
    Eof,
    Event,
    Extractor,
    Instance,
    Plugin,
    PluginError,
    Timeout,
)

__all__ = [
    "PLUGIN_EVENT_TYPE",
    "Eof",
    "Event",
    "Extractor",
    "Instance",
    "Plugin",
    "PluginError",
    "Timeout",
]
