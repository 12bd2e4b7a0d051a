"""A real Azurite (npm package `azurite`) on loopback, started and stopped by the tests.

Data lives in a temporary directory, so `stop()` followed by `start()` is a storage
outage that loses nothing, as in Azure.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = ROOT / "node_modules" / ".bin" / "azurite"
ACCOUNT = "devstoreaccount1"
KEY = ("Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Azurite:
    def __init__(self) -> None:
        self.location = Path(tempfile.mkdtemp(prefix="azurite-"))
        self.blob_port, self.queue_port, self.table_port = (free_port() for _ in range(3))
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def connection_string(self) -> str:
        return (
            f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={KEY};"
            f"BlobEndpoint=http://127.0.0.1:{self.blob_port}/{ACCOUNT};"
            f"QueueEndpoint=http://127.0.0.1:{self.queue_port}/{ACCOUNT};"
        )

    def start(self) -> None:
        if not BIN.exists():
            raise RuntimeError(f"{BIN} missing: run `npm install` (make test does)")
        self.proc = subprocess.Popen(
            [str(BIN), "--silent", "--skipApiVersionCheck", "--loose", "--disableTelemetry",
             "--location", str(self.location),
             "--blobHost", "127.0.0.1", "--blobPort", str(self.blob_port),
             "--queueHost", "127.0.0.1", "--queuePort", str(self.queue_port),
             "--tableHost", "127.0.0.1", "--tablePort", str(self.table_port)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 30
        for port in (self.blob_port, self.queue_port):
            while True:
                if self.proc.poll() is not None:
                    error = self.proc.stderr.read().decode() if self.proc.stderr else ""
                    raise RuntimeError(f"azurite exited: {error}")
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise RuntimeError("azurite did not start within 30 s") from None
                    time.sleep(0.1)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def close(self) -> None:
        """The end: no graceful shutdown (it waits out clients' keep-alive connections)."""
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None
        shutil.rmtree(self.location, ignore_errors=True)
