"""init_config: the Go plugin's seed loads as is; every bad key fails init naming the key.

Table-driven through `parse_config`, plus a few cases through the built library's C ABI
(`plugin_init` rc and `get_last_error`, as Falco sees them). Secrets are never echoed.
"""

from __future__ import annotations

import json
from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest

from harness import host
from plugin.k8saudit_aks.config import (
    GO_PLUGIN_RATE,
    MODES,
    Common,
    ConfigError,
    EventHubMode,
    init_schema,
    parse_config,
)

SECRET = "secretvalue"
EH_CONN = ("Endpoint=sb://aks-audit.servicebus.windows.net/;"
           f"SharedAccessKeyName=RootManageSharedAccessKey;SharedAccessKey={SECRET}=")
BLOB_CONN = ("DefaultEndpointsProtocol=https;AccountName=auditckpt;"
             f"AccountKey={SECRET}==;EndpointSuffix=core.windows.net")
DOCS = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


def seed(**changes: Any) -> dict[str, Any]:
    """The Go k8saudit-aks plugin's documented init_config, with `changes` applied
    (a value of `...` removes the key)."""
    config: dict[str, Any] = {
        "event_hub_namespace_connection_string": EH_CONN,
        "event_hub_name": "aks-audit",
        "blob_storage_connection_string": BLOB_CONN,
        "blob_storage_container_name": "falco-checkpoints",
        "rate_limit_events_per_second": 100,
        "rate_limit_burst": 200,
    }
    config.update(changes)
    return {k: v for k, v in config.items() if v is not ...}


def identity(**changes: Any) -> dict[str, Any]:
    """Event Hub mode with Azure identity instead of connection strings."""
    return seed(**{"event_hub_namespace_connection_string": ...,
                   "blob_storage_connection_string": ...,
                   "event_hub_fully_qualified_namespace": "aks-audit.servicebus.windows.net",
                   "blob_storage_account_url": "https://auditckpt.blob.core.windows.net",
                   **changes})


def test_seed_loads_with_go_defaults() -> None:
    config = parse_config(json.dumps(seed()))
    mode = config.mode
    assert isinstance(mode, EventHubMode)
    assert mode.event_hub_name == "aks-audit"
    assert mode.consumer_group == "$Default"  # as the Go plugin: azeventhubs.DefaultConsumerGroup
    assert mode.blob_storage_container_name == "falco-checkpoints"
    assert config.common == Common(rate_limit_events_per_second=100, rate_limit_burst=200)


def test_identity_auth_loads() -> None:
    mode = parse_config(json.dumps(identity(consumer_group="falco"))).mode
    assert isinstance(mode, EventHubMode)
    assert mode.event_hub_namespace_connection_string is None
    assert mode.event_hub_fully_qualified_namespace == "aks-audit.servicebus.windows.net"
    assert mode.consumer_group == "falco"


@pytest.mark.parametrize("config", [seed(maxEventSize=262144), seed(max_event_size=262144),
                                    seed(maxEventSize=262144, max_event_size=262144)])
def test_the_go_plugins_max_event_size_key_is_read(config: dict[str, Any]) -> None:
    """A drop-in must not ignore a key of the plugin it replaces (the Go plugin's config
    struct names it maxEventSize)."""
    assert parse_config(json.dumps(config)).common.max_event_size == 262144


def test_unknown_keys_are_tolerated() -> None:
    assert parse_config(json.dumps(seed(verbose_level=2, anything={"x": 1}))).mode


def test_defaults_without_rate_keys() -> None:
    """Unset: the mode decides (Event Hub mode: the Go plugin's 100/s; queue mode: no limit,
    so a default plugin never falls behind a default function)."""
    config = parse_config(json.dumps(seed(rate_limit_events_per_second=...,
                                          rate_limit_burst=...)))
    assert (config.common.rate_limit_events_per_second, config.common.rate_limit_burst) == (
        None, 200)
    assert GO_PLUGIN_RATE == 100


BAD: list[tuple[str, dict[str, Any], str]] = [
    # (key named in the error, config, what the message says)
    ("event_hub_name", seed(event_hub_name=...), "is required"),
    ("event_hub_name", seed(event_hub_name=5), "must be a string"),
    ("event_hub_name", seed(event_hub_name=""), "must not be empty"),
    ("event_hub_name", seed(event_hub_name="my hub!"), "must be an Event Hub name"),
    ("event_hub_namespace_connection_string",
     seed(event_hub_namespace_connection_string=42), "must be a string"),
    ("event_hub_namespace_connection_string",
     seed(event_hub_namespace_connection_string=f"garbage;SharedAccessKey={SECRET}"),
     "must be an Event Hubs connection string"),
    ("event_hub_namespace_connection_string",
     seed(event_hub_namespace_connection_string=f"Endpoint=https://x/;SharedAccessKey={SECRET}"),
     "must be an Event Hubs connection string"),
    ("event_hub_namespace_connection_string",
     seed(event_hub_namespace_connection_string=...), "got neither"),
    ("event_hub_namespace_connection_string",
     seed(event_hub_fully_qualified_namespace="aks-audit.servicebus.windows.net"), "not both"),
    ("event_hub_fully_qualified_namespace",
     identity(event_hub_fully_qualified_namespace="sb://aks-audit.servicebus.windows.net/"),
     "must be a host name"),
    ("event_hub_fully_qualified_namespace",
     identity(event_hub_fully_qualified_namespace=["ns"]), "must be a string"),
    ("consumer_group", seed(consumer_group=""), "must not be empty"),
    ("consumer_group", seed(consumer_group=7), "must be a string"),
    ("blob_storage_connection_string", seed(blob_storage_connection_string=True),
     "must be a string"),
    ("blob_storage_connection_string",
     seed(blob_storage_connection_string=f"just the key {SECRET}"),
     "must be a storage connection string"),
    ("blob_storage_connection_string", seed(blob_storage_connection_string=...), "got neither"),
    ("blob_storage_connection_string",
     seed(blob_storage_account_url="https://auditckpt.blob.core.windows.net"), "not both"),
    ("blob_storage_account_url", identity(blob_storage_account_url="auditckpt"),
     "must be an account URL"),
    ("blob_storage_account_url",
     identity(blob_storage_account_url="https://auditckpt.blob.core.windows.net/falco"),
     "must be an account URL"),
    ("blob_storage_container_name", seed(blob_storage_container_name=...), "is required"),
    ("blob_storage_container_name", seed(blob_storage_container_name="Falco_Checkpoints"),
     "must be a blob container name"),
    ("blob_storage_container_name", seed(blob_storage_container_name="ab"),
     "must be a blob container name"),
    ("rate_limit_events_per_second", seed(rate_limit_events_per_second="100"),
     "must be a number"),
    ("rate_limit_events_per_second", seed(rate_limit_events_per_second=0), "must be within"),
    ("rate_limit_burst", seed(rate_limit_burst=0), "must be within"),
    ("rate_limit_burst", seed(rate_limit_burst=1.5), "must be an integer"),
    ("rate_limit_burst", seed(rate_limit_burst=True), "must be an integer"),
    ("accepted_categories", seed(accepted_categories="kube-audit"), "must be an array"),
    ("accepted_categories", seed(accepted_categories=["kube-audit", 3]), "must be an array"),
    ("max_event_size", seed(max_event_size=10), "must be within"),
    ("dedupe_window", seed(dedupe_window=-1), "must be within"),
    ("stats_interval_seconds", seed(stats_interval_seconds=0), "must be within"),
    # A connection string where an account URL belongs is refused at init, not retried.
    ("queue_account_url", {"queue_name": "q", "queue_account_url":
                           f"DefaultEndpointsProtocol=https;AccountName=a;AccountKey={SECRET}"},
     "must be an account URL"),
    ("queue_account_url", {"queue_name": "q", "queue_account_url":
                           "https://a.queue.core.windows.net/k8saudit"},
     "must be an account URL"),
    ("blob_account_url", {"queue_name": "q", "queue_account_url": "https://a.queue.core.windows.net",
                          "blob_account_url": "a.blob.core.windows.net"},
     "must be an account URL"),
    ("max_dequeue_count", {"queue_name": "q", "queue_connection_string": "x",
                           "max_dequeue_count": 0}, "must be within"),
    ("maxEventSize", seed(maxEventSize=262144, max_event_size=65536), "different values"),
    ("max_event_size", seed(maxEventSize=10), "must be within"),
    ("max_event_size", seed(maxEventSize="big"), "must be an integer"),
]


@pytest.mark.parametrize(("key", "config", "says"), BAD,
                         ids=[f"{k}-{i}" for i, (k, _, _) in enumerate(BAD)])
def test_bad_key_fails_naming_it(key: str, config: dict[str, Any], says: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(json.dumps(config))
    message = str(err.value)
    assert key in message
    assert says in message
    assert SECRET not in message


def test_event_hub_keys_without_event_hub_name_fail_init() -> None:
    """A mistyped event_hub_name must not silently turn the seed into file replay."""
    config = seed(event_hub_name=...)
    config["eventhub_name"] = "aks-audit"
    with pytest.raises(ConfigError, match=r"init_config\.event_hub_name is required"):
        parse_config(json.dumps(config))


def test_mixed_modes_are_rejected() -> None:
    with pytest.raises(ConfigError, match="mixes modes") as err:
        parse_config(json.dumps(seed(queue_name="k8saudit")))
    assert "queue_name" in str(err.value) and "event_hub_name" in str(err.value)


@pytest.mark.parametrize("text", ["{", "[1, 2]", '"x"'])
def test_not_a_json_object(text: str) -> None:
    with pytest.raises(ConfigError, match="init_config"):
        parse_config(text)


def test_every_secret_key_is_marked() -> None:
    secret = {f.name for cls in (Common, *MODES) for f in fields(cls) if f.metadata.get("secret")}
    assert secret == {"queue_connection_string", "event_hub_namespace_connection_string",
                      "blob_storage_connection_string"}


def test_schema_describes_event_hub_keys() -> None:
    props = json.loads(init_schema())["properties"]
    assert props["consumer_group"]["default"] == "$Default"
    assert "default" not in props["rate_limit_events_per_second"]  # the mode decides
    assert props["rate_limit_burst"]["default"] == 200
    for key in ("event_hub_name", "event_hub_namespace_connection_string",
                "blob_storage_container_name"):
        assert props[key]["type"] == "string" and props[key]["description"]


def test_schema_has_no_regex_falco_cannot_compile() -> None:
    """valijson compiles `pattern` with std::regex (ECMAScript), not Python's re."""
    assert '"pattern"' not in init_schema()


def test_configuration_doc_lists_every_schema_key_with_its_default() -> None:
    """docs/configuration.md cannot drift from the init schema."""
    doc = DOCS.read_text()
    props = json.loads(init_schema())["properties"]
    missing = [key for key in props if f"`{key}`" not in doc]
    assert not missing, f"docs/configuration.md lacks {missing}"
    for key, prop in props.items():
        if "default" in prop:
            row = next(line for line in doc.splitlines() if line.startswith(f"| `{key}`"))
            assert json.dumps(prop["default"]) in row or str(prop["default"]) in row, row


# -- through the C ABI, as Falco calls plugin_init -------------------------------------

needs_lib = pytest.mark.skipif(not (host.LIB.exists() and host.HOST.exists()),
                               reason="make build/libk8saudit-aks.so build/falco_host")


@needs_lib
@pytest.mark.parametrize(("config", "key"), [
    (seed(event_hub_namespace_connection_string=f"Endpoint=garbage;SharedAccessKey={SECRET}"),
     "event_hub_namespace_connection_string"),
    (seed(rate_limit_burst="200"), "rate_limit_burst"),
    (seed(blob_storage_container_name=...), "blob_storage_container_name"),
])
def test_bad_key_fails_plugin_init(config: dict[str, Any], key: str) -> None:
    rows = host.capture(host.LIB, "my-cluster", config=json.dumps(config), max_timeouts=1)
    assert len(rows) == 1
    assert rows[0]["init_rc"] == 1
    assert f"init_config.{key}" in rows[0]["error"]
    assert SECRET not in json.dumps(rows)
