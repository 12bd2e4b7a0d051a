"""Azure Storage clients from either a connection string or an account URL + identity.

Identity (`DefaultAzureCredential`: AKS workload identity, managed identity, environment
credentials) is the production path; connection strings serve Azurite and the Go plugin's
configuration. Every client uses text messages with no encoding policy: the wire format
(extractor.message.codec) is already base64 text, so its size check is exact.
"""

from __future__ import annotations

from functools import cache
from typing import Any, NamedTuple, Protocol

from azure.storage.blob import ContainerClient
from azure.storage.queue import QueueClient

# time_to_live of every message the pipeline sends (events and dead letters): the default
# 7 days would silently drop what nobody read in time.
NO_EXPIRY = -1


@cache
def default_credential() -> Any:
    """One credential per process: it caches tokens, so share it between clients."""
    from azure.identity import DefaultAzureCredential

    return DefaultAzureCredential(exclude_interactive_browser_credential=True)


def blob_url_from_queue_url(queue_account_url: str) -> str:
    """https://acct.queue.core.windows.net -> https://acct.blob.core.windows.net."""
    return queue_account_url.replace(".queue.", ".blob.", 1)


def container_client(name: str, *, connection_string: str | None = None,
                     account_url: str | None = None, **options: Any) -> ContainerClient:
    return _client(ContainerClient, "a blob container", name, connection_string, account_url,
                   options)


def queue_client(name: str, *, connection_string: str | None = None,
                 account_url: str | None = None, **options: Any) -> QueueClient:
    return _client(QueueClient, "a queue", name, connection_string, account_url, options)


def _client(cls: Any, what: str, name: str, connection_string: str | None,
            account_url: str | None, options: dict[str, Any]) -> Any:
    if connection_string:
        return cls.from_connection_string(connection_string, name, **options)
    if not account_url:
        raise ValueError(f"{what} needs a connection string or an account URL")
    return cls(account_url, name, credential=default_credential(), **options)


class PipelineClients(NamedTuple):
    """The three storage endpoints of the pipeline, as both ends see them."""

    queue: QueueClient
    deadletter: QueueClient
    claims: ContainerClient


class StorageSettings(Protocol):
    """Where the pipeline's storage is: the function's settings and the plugin's queue mode
    name it alike."""

    @property
    def queue_name(self) -> str: ...
    @property
    def deadletter_queue_name(self) -> str: ...
    @property
    def claimcheck_container(self) -> str: ...
    @property
    def queue_connection_string(self) -> str | None: ...
    @property
    def queue_account_url(self) -> str | None: ...
    @property
    def blob_account_url(self) -> str | None: ...


def pipeline_clients(settings: StorageSettings, *, queue_options: dict[str, Any],
                     blob_options: dict[str, Any]) -> PipelineClients:
    """Queue, dead-letter queue and claim-check container of one storage account.

    With account URLs, the blob endpoint defaults to the queue account's."""
    queue_kw = {"connection_string": settings.queue_connection_string,
                "account_url": settings.queue_account_url, **queue_options}
    queue_url = settings.queue_account_url
    blob_url = settings.blob_account_url or (queue_url and blob_url_from_queue_url(queue_url))
    return PipelineClients(
        queue_client(settings.queue_name, **queue_kw),
        queue_client(settings.deadletter_queue_name, **queue_kw),
        container_client(settings.claimcheck_container,
                         connection_string=settings.queue_connection_string,
                         account_url=blob_url, **blob_options),
    )
