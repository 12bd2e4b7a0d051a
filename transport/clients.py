"""Azure Storage clients from either a connection string or an account URL + identity.

Identity (`DefaultAzureCredential`: AKS workload identity, managed identity, environment
credentials) is the production path; connection strings serve Azurite and the Go plugin's
configuration. Every client uses text messages with no encoding policy: the wire format
(extractor.message) is already base64 text, so its size check is exact.
"""

from __future__ import annotations

from functools import cache
from typing import Any, NamedTuple

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
    if connection_string:
        return ContainerClient.from_connection_string(connection_string, name, **options)
    if not account_url:
        raise ValueError("a blob container needs a connection string or an account URL")
    return ContainerClient(account_url, name, credential=default_credential(), **options)


def queue_client(name: str, *, connection_string: str | None = None,
                 account_url: str | None = None, **options: Any) -> QueueClient:
    if connection_string:
        return QueueClient.from_connection_string(connection_string, name, **options)
    if not account_url:
        raise ValueError("a queue needs a connection string or an account URL")
    return QueueClient(account_url, name, credential=default_credential(), **options)


class PipelineClients(NamedTuple):
    """The three storage endpoints of the pipeline, as both ends see them."""

    queue: QueueClient
    deadletter: QueueClient
    claims: ContainerClient


def pipeline_clients(
    *, queue_name: str, deadletter_queue_name: str, claimcheck_container: str,
    connection_string: str | None = None, queue_account_url: str | None = None,
    blob_account_url: str | None = None, queue_options: dict[str, Any] | None = None,
    blob_options: dict[str, Any] | None = None,
) -> PipelineClients:
    """Queue, dead-letter queue and claim-check container of one storage account.

    With account URLs, the blob endpoint defaults to the queue account's."""
    queue_kw = {"connection_string": connection_string, "account_url": queue_account_url,
                **(queue_options or {})}
    blob_url = blob_account_url or (queue_account_url and blob_url_from_queue_url(
        queue_account_url))
    return PipelineClients(
        queue_client(queue_name, **queue_kw),
        queue_client(deadletter_queue_name, **queue_kw),
        container_client(claimcheck_container, connection_string=connection_string,
                         account_url=blob_url, **(blob_options or {})),
    )
