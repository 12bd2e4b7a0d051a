"""Plugin identity, config and open-params dispatch; fields come from `extractor.fields.table`."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import ClassVar

import orjson

from extractor.fields import compiled
from extractor.fields import table as fields
from extractor.safe_text import redact
from plugin.k8saudit_aks import __version__
from plugin.k8saudit_aks.config import EventHubMode, QueueMode, parse_config
from plugin.k8saudit_aks.config import init_schema as config_schema
from plugin.k8saudit_aks.sources.file import FileInstance
from plugin.sdk import Instance, Plugin, PluginError

FILE_SCHEME = "file://"

# azure-core logs every HTTP request at INFO: Falco's log gets the sources' own lines
# instead. Once per process, for every source, unless the host already set a level.
if logging.getLogger("azure").level == logging.NOTSET:
    logging.getLogger("azure").setLevel(logging.WARNING)


class AuditFields:
    """The plugin's field extraction (the SDK's `Extractor` capability, named as in
    plugin-sdk-go): each event is parsed once; every field function reads the parsed document."""

    fields_json = fields.fields_json()

    @staticmethod
    def parse(data: bytes) -> object:
        return orjson.loads(data)

    @staticmethod
    def compile(field_id: int, arg: int | str | None) -> Callable[[object], Sequence[str] | None]:
        return fields.compile_field(field_id, arg)

    @staticmethod
    def compile_all(requests: Sequence[tuple[int, int | str | None]]) -> Callable[[object], list]:
        return compiled.compile_all(requests)


class K8sAuditAksPlugin(Plugin):
    required_api_version = "3.0.0"
    name = "k8saudit-aks"
    description = (
        "Read Kubernetes audit events of AKS clusters from an Azure Storage Queue filled by "
        "the k8saudit-aks ingest function, from an Event Hub, or from files"
    )
    contact = "github.com/k8saudit-aks/k8saudit-aks"
    version = __version__
    id = 21
    event_source = "k8s_audit"
    extract_event_sources: ClassVar[Sequence[str]] = ("k8s_audit",)
    init_schema = config_schema()
    extractor = AuditFields()

    def __init__(self, config: str) -> None:
        super().__init__(config)
        self.settings = parse_config(config)

    @classmethod
    def redact(cls, message: str) -> str:
        return redact(message)

    def open(self, params: str) -> Instance:
        params = params.strip()
        common, mode = self.settings.common, self.settings.mode
        # Replay needs file:// or an absolute path: a cluster name (the Go plugin's open
        # params) must never turn into a replay because a folder of that name exists.
        if params.startswith(FILE_SCHEME):
            return FileInstance(Path(params[len(FILE_SCHEME):]), common)
        if params.startswith("/"):
            return FileInstance(Path(params), common)
        cluster = params or None
        if isinstance(mode, QueueMode):
            from plugin.k8saudit_aks.sources.queue import QueueInstance

            return QueueInstance(mode, common, cluster)
        if isinstance(mode, EventHubMode):
            from plugin.k8saudit_aks.sources.eventhub import EventHubInstance

            return EventHubInstance(mode, common, cluster)
        raise PluginError(
            f"open params {params!r} is not a file or directory, and init_config names no "
            "queue (queue_name) or Event Hub (event_hub_name) to read"
        )

    def list_open_params(self) -> str:
        # No entry for "" (read the source named in init_config): libsinsp refuses an entry
        # without a value, and `falco --plugin-info` exits 1 on it.
        return json.dumps([
            {"value": "my-cluster",
             "desc": "Read the queue or Event Hub named in init_config, with this cluster "
                     "name for events whose record carries no AKS resourceId (empty: read it "
                     "without one)"},
            {"value": "file:///var/log/k8s-audit.jsonl",
             "desc": "Replay audit events, Event Hub bodies or storage archives from a file "
                     "or directory (an absolute path works too)"},
        ])
