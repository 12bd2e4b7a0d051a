"""Which failures are the storage's (retry them) and which are the item's (dead-letter it).

The one rule of the pipeline: only storage and network failures are retried, by the
Functions host (the invocation raises) or by the queue source's backoff. Anything else that
goes wrong with an item costs that item alone, so no input can stop delivery.
"""

from __future__ import annotations

from azure.core.exceptions import AzureError, HttpResponseError

# Answers about one request's content, not about the service: 400 (invalid input, e.g. a
# message the service will not take) and 413 (too large). Retrying sends the same bytes.
_ITEM_STATUSES = frozenset({400, 413})


def is_storage_failure(exc: BaseException) -> bool:
    """True for network errors, timeouts, throttling, server errors and refusals (401, 403,
    404, 409...): a later try, or an operator's fix, can succeed with the same item."""
    if not isinstance(exc, AzureError):
        return False
    status = getattr(exc, "status_code", None) if isinstance(exc, HttpResponseError) else None
    return status not in _ITEM_STATUSES

