"""The plugin's init_config: one dataclass per mode, the init schema derived from them.

Key names of the original Go k8saudit-aks plugin are kept as they are, so an existing
`falco.yaml` loads unchanged. Unknown keys are tolerated (Falco passes whatever the user
wrote); a wrong type or a missing key fails init with a message naming the key.
"""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

import orjson

from extractor.envelope.normalize import DEFAULT_CATEGORIES
from extractor.message.codec import DEFAULT_LIMITS
from extractor.safe_text import redact


class ConfigError(ValueError):
    """A config problem, worded for the person editing falco.yaml."""


def _opt(default: Any, desc: str, **schema: Any) -> Any:
    meta = {"desc": desc, **schema}
    if isinstance(default, (list, tuple)):
        return field(default_factory=lambda: list(default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class Common:
    """Settings every mode shares."""

    rate_limit_events_per_second: float | None = _opt(
        None, "Most audit events per second handed to Falco; the excess waits, none is "
        "dropped. Unset: 100 in Event Hub mode (the Go plugin's default), no limit in queue "
        "mode (the ingest function limits before the queue) and file replay.",
        minimum=0.001,
    )
    rate_limit_burst: int = _opt(200, "Token bucket size of the rate limit.", minimum=1)
    accepted_categories: list[str] = _opt(
        sorted(DEFAULT_CATEGORIES), "Diagnostic log categories whose records are audit events."
    )
    max_event_size: int = _opt(
        DEFAULT_LIMITS.max_event_bytes, "Largest audit event (bytes) handed to Falco; larger "
        "ones are dead-lettered (queue mode, Event Hub mode) or logged (file replay) and "
        "counted as too_large. The default is the largest event the ingest function writes. "
        "The Go plugin's maxEventSize is read as this key.",
        minimum=1024, alias="maxEventSize",
    )
    dedupe_window: int = _opt(
        100_000, "How many recent (cluster, auditID, stage) keys are remembered to drop "
        "kube-audit-admin copies and redeliveries (about 30 bytes each, allocated whole); "
        "0 turns dedupe off.",
        minimum=0,
    )
    stats_interval_seconds: float = _opt(
        60, "How often a stats line (received, delivered, skipped by reason, ...) is logged.",
        minimum=1,
    )


# Shapes checked at init, so a typo fails plugin_init instead of a background retry loop.
# (JSON schema `pattern`; `expect` words the error. Secret values are never echoed.)
_EH_NAME = (r"^[A-Za-z0-9][A-Za-z0-9._-]{0,255}$",
            "an Event Hub name (letters, digits, '.', '_', '-')")
_EH_CONN = (r"(?i)^(?=.*(^|;)\s*Endpoint=sb://[^;/]+)"
            r"(?=.*(^|;)\s*(SharedAccessKey|SharedAccessSignature)=).*$",
            "an Event Hubs connection string: Endpoint=sb://NAMESPACE.servicebus.windows.net/;"
            "SharedAccessKeyName=...;SharedAccessKey=...")
_EH_FQNS = (r"^[A-Za-z0-9][A-Za-z0-9.-]*(:[0-9]+)?$",
            "a host name such as NAMESPACE.servicebus.windows.net (no scheme, no path)")
_BLOB_CONN = (r"(?i)^(?=.*(^|;)\s*(AccountName|BlobEndpoint|UseDevelopmentStorage)=)"
              r"[^;=]+=[^;]*(;[^;=]+=[^;]*)*;?$",
              "a storage connection string: DefaultEndpointsProtocol=https;AccountName=...;"
              "AccountKey=...;EndpointSuffix=core.windows.net")
# (A local emulator's URL carries the account as its one path segment.)
_URL = (r"^(https?://[^/\s;]+|http://(127\.0\.0\.1|localhost)(:[0-9]+)?/[A-Za-z0-9]+)/?$",
        "an account URL such as https://ACCOUNT.blob.core.windows.net")
_QUEUE_URL = (_URL[0],
              "an account URL such as https://ACCOUNT.queue.core.windows.net (a connection "
              "string goes in queue_connection_string)")
_CONTAINER = (r"^(?!.*--)[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$",
              "a blob container name: 3-63 lower-case letters, digits and single hyphens")


def _shape(rule: tuple[str, str]) -> dict[str, str]:
    return {"pattern": rule[0], "expect": rule[1]}


GO_PLUGIN_RATE = 100.0  # events/s: the Go k8saudit-aks plugin's default, for Event Hub mode


@dataclass(frozen=True)
class QueueMode:
    """Drain the Storage Queue the ingest function fills (the serverless pipeline)."""

    keys: ClassVar[tuple[str, ...]] = ("queue_name",)
    queue_name: str = _opt(None, "Storage queue the ingest function writes to.")
    queue_connection_string: str | None = _opt(
        None, "Storage connection string (or use queue_account_url with Azure identity).",
        secret=True,
    )
    queue_account_url: str | None = _opt(
        None, "https://ACCOUNT.queue.core.windows.net, authenticated with "
        "DefaultAzureCredential (workload identity, managed identity, environment).",
        **_shape(_QUEUE_URL),
    )
    blob_account_url: str | None = _opt(
        None, "Blob endpoint for claim-check blobs; derived from queue_account_url if unset.",
        **_shape(_URL),
    )
    deadletter_queue_name: str = _opt("k8saudit-deadletter", "Queue poison messages move to.")
    claimcheck_container: str = _opt(
        "k8saudit-claims", "Blob container holding audit events too large for a message."
    )
    visibility_timeout_seconds: int = _opt(
        300, "How long a received message stays invisible; extended while it is held "
        "(a crashed reader's messages reappear after at most this long).",
        minimum=1,
    )
    max_messages_per_poll: int = _opt(16, "Messages fetched per receive call (16: as fast as "
                                      "Falco with the official rules drains, with half the "
                                      "memory of 32).", minimum=1,
                                      maximum=32)
    max_dequeue_count: int = _opt(
        5, "A message that failed this many receives (a claim-check blob that cannot be "
        "read, ...) goes to the dead-letter queue with its last error instead of being "
        "retried again, as the Functions queue trigger does.", minimum=1,
    )


@dataclass(frozen=True)
class EventHubMode:
    """Read the Event Hub directly, checkpointing in a blob container (Go plugin's mode)."""

    # Any of these selects the mode, so a seed config with a mistyped event_hub_name fails
    # init naming the key instead of falling back to file replay.
    keys: ClassVar[tuple[str, ...]] = (
        "event_hub_name", "event_hub_namespace_connection_string",
        "event_hub_fully_qualified_namespace", "blob_storage_connection_string",
        "blob_storage_account_url", "blob_storage_container_name",
    )
    event_hub_name: str = _opt(None, "Event Hub the diagnostic settings stream to.",
                               **_shape(_EH_NAME))
    event_hub_namespace_connection_string: str | None = _opt(
        None, "Event Hubs namespace connection string (or use "
        "event_hub_fully_qualified_namespace with Azure identity).", secret=True,
        **_shape(_EH_CONN),
    )
    event_hub_fully_qualified_namespace: str | None = _opt(
        None, "NAMESPACE.servicebus.windows.net, authenticated with DefaultAzureCredential.",
        **_shape(_EH_FQNS),
    )
    consumer_group: str = _opt(
        "$Default", "Consumer group (the Go plugin's fixed $Default is the default). Give "
        "Falco its own group, not $Default nor the ingest function's k8saudit-function, so "
        "two readers do not steal each other's partitions.",
    )
    blob_storage_connection_string: str | None = _opt(
        None, "Storage connection string for the checkpoint container.", secret=True,
        **_shape(_BLOB_CONN),
    )
    blob_storage_account_url: str | None = _opt(
        None, "https://ACCOUNT.blob.core.windows.net for checkpoints, with Azure identity.",
        **_shape(_URL),
    )
    blob_storage_container_name: str = _opt(None, "Blob container holding checkpoints.",
                                            **_shape(_CONTAINER))


MODES: tuple[type[QueueMode] | type[EventHubMode], ...] = (QueueMode, EventHubMode)

@dataclass(frozen=True)
class Config:
    common: Common
    mode: QueueMode | EventHubMode | None


_JSON_TYPES = {"str": "string", "int": "integer", "float": "number", "list[str]": "array"}


def _json_type(f: dataclasses.Field) -> str:
    return _JSON_TYPES[str(f.type).replace(" | None", "")]


def _check(cls: type, raw: dict[str, Any], required: bool) -> Any:
    values: dict[str, Any] = {}
    for f in fields(cls):
        alias = f.metadata.get("alias")
        if alias in raw:  # a drop-in reads the key of the plugin it replaces
            if f.name in raw and raw[f.name] != raw[alias]:
                raise ConfigError(f"init_config sets both {f.name} and {alias} (the Go "
                                  f"plugin's name for it) to different values: keep one")
            raw = {**raw, f.name: raw[alias]}
        if f.name not in raw or raw[f.name] is None:
            if required and f.default is None and "None" not in str(f.type):
                raise ConfigError(f"init_config.{f.name} is required ({f.metadata['desc']})")
            continue
        value = raw[f.name]
        kind = _json_type(f)
        ok = {
            "string": isinstance(value, str),
            "integer": isinstance(value, int) and not isinstance(value, bool),
            "number": isinstance(value, (int, float)) and not isinstance(value, bool),
            "array": isinstance(value, list) and all(isinstance(v, str) for v in value),
        }[kind]
        if not ok:
            shown = "<redacted>" if f.metadata.get("secret") else json.dumps(value)[:80]
            article = "an" if kind[0] in "aeiou" else "a"
            raise ConfigError(f"init_config.{f.name} must be {article} {kind}, got {shown}")
        if kind == "string" and not value:
            raise ConfigError(f"init_config.{f.name} must not be empty")
        if "pattern" in f.metadata and not re.search(f.metadata["pattern"], value):
            # A secret pasted into the wrong key is still a secret: redacted.
            got = "" if f.metadata.get("secret") else f", got {redact(json.dumps(value))[:80]}"
            raise ConfigError(f"init_config.{f.name} must be {f.metadata['expect']}{got}")
        low, high = f.metadata.get("minimum"), f.metadata.get("maximum")
        if (low is not None and value < low) or (high is not None and value > high):
            raise ConfigError(
                f"init_config.{f.name} must be within [{low}, {high if high is not None else ''}]"
                f", got {value}"
            )
        values[f.name] = value
    return cls(**values)


def parse_config(text: str) -> Config:
    """Parse Falco's init_config string: empty means defaults (file replay only)."""
    if not text.strip():
        raw: dict[str, Any] = {}
    else:
        try:
            raw = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            raise ConfigError(f"init_config is not valid JSON: {exc}") from None
        if not isinstance(raw, dict):
            raise ConfigError("init_config must be a JSON object")
    present = [m for m in MODES if any(k in raw for k in m.keys)]
    if len(present) > 1:
        found = "; ".join(
            f"{m.__name__}: {', '.join(k for k in m.keys if k in raw)}" for m in present
        )
        raise ConfigError(
            "init_config mixes modes: set either queue_name (Storage Queue) or event_hub_name "
            f"(Event Hub) with their keys, not both (found {found})"
        )
    mode = _check(present[0], raw, required=True) if present else None
    if isinstance(mode, QueueMode) and not (mode.queue_connection_string or mode.queue_account_url):
        raise ConfigError("init_config needs queue_connection_string or queue_account_url")
    if isinstance(mode, EventHubMode):
        _one_of(mode, "event_hub_namespace_connection_string",
                "event_hub_fully_qualified_namespace", "the Event Hub")
        _one_of(mode, "blob_storage_connection_string", "blob_storage_account_url",
                "the checkpoint container")
    return Config(common=_check(Common, raw, required=False), mode=mode)


def _one_of(mode: Any, secret_key: str, identity_key: str, what: str) -> None:
    """Exactly one way to reach `what`: a connection string or a name for Azure identity."""
    given = [k for k in (secret_key, identity_key) if getattr(mode, k)]
    if len(given) != 1:
        raise ConfigError(
            f"init_config needs {secret_key} or {identity_key} for {what}, "
            f"{'not both' if given else 'got neither'}"
        )


def init_schema() -> str:
    """JSON schema of every key, with types, defaults and descriptions."""
    props: dict[str, Any] = {}
    for cls in (Common, *MODES):
        for f in fields(cls):
            prop: dict[str, Any] = {"type": _json_type(f), "description": f.metadata["desc"]}
            if prop["type"] == "array":
                prop["items"] = {"type": "string"}
            default = f.default_factory() if f.default_factory is not dataclasses.MISSING \
                else f.default
            if default is not None:
                prop["default"] = default
            # No `pattern`: Falco checks the schema with valijson's std::regex (ECMAScript),
            # which rejects Python syntax such as (?i); parse_config checks the shapes and
            # names the key in its message.
            for bound in ("minimum", "maximum"):
                if bound in f.metadata:
                    prop[bound] = f.metadata[bound]
            props[f.name] = prop
    schema = {
        "$schema": "http://json-schema.org/draft-04/schema#",
        "type": "object",
        "title": "k8saudit-aks init_config",
        "properties": props,
        "additionalProperties": True,
    }
    return json.dumps(schema, sort_keys=False)
