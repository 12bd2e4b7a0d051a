"""The ingest function as the Functions host drives it: `function_app`'s indexed
`ingest_audit`, its app settings pointed at a storage account, and the EventHubEvent
batches the Python worker hands it. Everything that calls the function's own entry point
(tests, `make run`, the soak, the benchmarks) gets these here.

The SDK's `get_functions` checks name uniqueness against what it already built, so it may
run once per process: `ingest_function` is cached."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from functools import cache
from typing import Any

import azure.functions as func
import orjson
from azure.functions.decorators.function_app import Function
from azure.functions.timer import TimerRequest

Entry = Callable[[list[func.EventHubEvent]], None]


@cache
def _functions() -> dict[str, Function]:
    import function_app  # reads its app settings on first use, as the Functions host would

    return {str(f.get_function_name()): f for f in function_app.app.get_functions()}


def ingest_function() -> Function:
    return _functions()["ingest_audit"]


def watch_function() -> Callable[[], None]:
    """The queue watcher's entry point, called as its timer would call it."""
    user_function = _functions()["watch_queues"].get_user_function()
    timer = TimerRequest(past_due=False)  # what the worker builds from the timer's trigger
    return lambda: user_function(timer)


def entry(connection_string: str, settings: Mapping[str, str]) -> Entry:
    """The function's entry point with these app settings (the environment, as the host
    sets it) and storage; its queues and container created."""
    os.environ.update({"QUEUE_CONNECTION_STRING": connection_string, **settings})
    import function_app

    function_app.ingestor.cache_clear()  # these settings, not an earlier call's
    function_app.ingestor().ensure_resources()
    user_function: Entry = ingest_function().get_user_function()
    return user_function


def use_storage(setenv: Callable[[str, str], None], connection_string: str,
                names: Mapping[str, str]) -> None:
    """Point the function at one test's queues and container (`setenv`: the test's
    monkeypatch.setenv), no rate limit and no in-invocation retries; its resources created."""
    import function_app

    for key, value in {"QUEUE_CONNECTION_STRING": connection_string,
                       "QUEUE_NAME": names["queue"], "DEADLETTER_QUEUE_NAME": names["deadletter"],
                       "CLAIMCHECK_CONTAINER": names["claims"], "STORAGE_RETRY_TOTAL": "0",
                       "rate_limit_events_per_second": "0"}.items():
        setenv(key, value)
    function_app.ingestor.cache_clear()
    function_app.ingestor().ensure_resources()


# --- Event Hub bodies as AKS diagnostic settings write them -------------------------------

def record(category: str, log: Any, cluster: str = "AKS-TEST") -> dict[str, Any]:
    """One diagnostic record of `cluster`; a `log` that is not text is serialized as JSON."""
    return {
        "operationName": "Microsoft.ContainerService/managedClusters/diagnosticLogs/Read",
        "category": category,
        "resourceId": "/SUBSCRIPTIONS/0/RESOURCEGROUPS/RG/PROVIDERS/"
                      f"MICROSOFT.CONTAINERSERVICE/MANAGEDCLUSTERS/{cluster}",
        "properties": {"log": log if isinstance(log, str) else json.dumps(log)},
    }


def audit_event(audit_id: str, **extra: Any) -> dict[str, Any]:
    """An audit event (ResponseComplete of a create), `extra` members added or replaced."""
    return {"kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": "RequestResponse",
            "auditID": audit_id, "stage": "ResponseComplete", "verb": "create",
            "requestReceivedTimestamp": "2026-11-18T00:56:24.000000Z",
            "stageTimestamp": "2026-11-18T00:56:24.719830Z", **extra}


def hub_body(*records: dict[str, Any]) -> bytes:
    """The body of one Event Hub message: ``{"records": [...]}``."""
    return orjson.dumps({"records": list(records)})


def hub_events(bodies: Sequence[bytes], first_sequence: int = 0) -> list[func.EventHubEvent]:
    """Real EventHubEvent objects, as the Python worker builds them for a binary batch."""
    now = datetime.now(UTC)
    return [
        func.EventHubEvent(body=body, enqueued_time=now, partition_key=None,
                           sequence_number=first_sequence + i,
                           offset=str((first_sequence + i) * 4096), iothub_metadata={})
        for i, body in enumerate(bodies)
    ]
