"""Memory, measured: a child process's peak as the kernel counts it, and the dedupe
window's bytes a key.

The peak is the process's VmHWM, read from /proc until it exits: wait4's ru_maxrss would
also count the parent's RSS at fork time, which in a test or a benchmark holding its input
is larger than what is measured."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import time
import tracemalloc
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from extractor.policy.dedupe import DEFAULT_DEDUPE_WINDOW, Deduper


def dedupe_bytes_per_key(key_length: int) -> float:
    """Bytes a key costs in a full dedupe window of the default size (Python's allocations,
    table and ring included), keys whose auditID is `key_length` characters."""
    tracemalloc.start()
    deduper = Deduper(DEFAULT_DEDUPE_WINDOW)
    for i in range(DEFAULT_DEDUPE_WINDOW):
        deduper.seen(("aks-prod-weu", f"{i:0{key_length}d}", "ResponseComplete"))
    size = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    assert len(deduper) == DEFAULT_DEDUPE_WINDOW
    return size / DEFAULT_DEDUPE_WINDOW


def status_kib(pid: int, field: str) -> int | None:
    """A memory line of /proc/PID/status (`VmRSS`, `VmHWM`) in KiB; None once it is gone."""
    with contextlib.suppress(OSError, StopIteration):
        return next(int(line.split()[1]) for line in
                    Path(f"/proc/{pid}/status").read_text().splitlines()
                    if line.startswith(f"{field}:"))
    return None


def peak_rss_mib(args: Sequence[str], *, until: Callable[[], bool] | None = None,
                 seconds: float = 600, env: Mapping[str, str] | None = None
                 ) -> tuple[float, float]:
    """Run `args` to its end (or until `until()`, or `seconds`: then SIGINT); its peak RSS
    in MiB and the wall time."""
    started = time.monotonic()
    proc = subprocess.Popen(list(args), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env=env)
    peak_kib = 0
    stopped = False
    while proc.poll() is None:
        peak_kib = max(peak_kib, status_kib(proc.pid, "VmHWM") or 0)
        if not stopped and ((until is not None and until())
                            or time.monotonic() - started > seconds):
            proc.send_signal(signal.SIGINT)
            stopped = True
        time.sleep(0.05)
    return peak_kib / 1024, time.monotonic() - started
