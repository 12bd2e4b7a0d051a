"""Sending a dead letter (format: `extractor.message.deadletter`), for the function and
the plugin."""

from __future__ import annotations

import contextlib

from azure.core.exceptions import HttpResponseError, ResourceExistsError
from azure.storage.blob import ContainerClient
from azure.storage.queue import QueueClient

from extractor.message.codec import DEFAULT_MAX_MESSAGE_CHARS
from extractor.message.deadletter import DeadLetter
from transport.clients import NO_EXPIRY


def send_dead_letter(deadletter: QueueClient, claims: ContainerClient, letter: DeadLetter,
                     *, create_queue: bool = False,
                     max_chars: int = DEFAULT_MAX_MESSAGE_CHARS) -> bool:
    """Send `letter`; return True when its raw bytes went to a claim-check blob.

    When the letter with `raw` inline would exceed `max_chars`, `raw` is uploaded to the
    blob `letter.blob_name` first and the letter names it. Letters never expire (the
    default 7-day time to live would silently lose them). With `create_queue`, a missing
    dead-letter queue (404) is created and the send tried once more; without it, the 404
    propagates like any other failure."""
    text = letter.text()
    in_blob = len(text) > max_chars
    if in_blob:
        claims.upload_blob(letter.blob_name, letter.raw, overwrite=True)
        text = letter.text(in_blob=True)
    try:
        deadletter.send_message(text, time_to_live=NO_EXPIRY)
    except HttpResponseError as exc:
        if not create_queue or getattr(exc, "status_code", None) != 404:
            raise
        with contextlib.suppress(ResourceExistsError):
            deadletter.create_queue()
        deadletter.send_message(text, time_to_live=NO_EXPIRY)
    return in_blob


def store_dead_letter(container: ContainerClient, letter: DeadLetter) -> str:
    """Event Hub mode has no dead-letter queue: the letter, raw inline, becomes the blob
    `deadletter/v1/<id>.json` of the checkpoint container. Returns the blob name."""
    name = f"{letter.blob_name}.json"
    container.upload_blob(name, letter.text().encode("utf-8"), overwrite=True)
    return name
