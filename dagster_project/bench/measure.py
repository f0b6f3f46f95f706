"""Run a command as a child process and measure it: wall time, CPU time (user and system, of the
child and every descendant it waited for), and peak memory of the whole process tree (the
pipeline starts dbt as its own process), sampled with psutil.

An optional address-space limit (RLIMIT_AS) is set in the child only, so a baseline that needs
more memory fails by itself (MemoryError) instead of pushing the shared machine into swap or
the OOM killer.
"""

from __future__ import annotations

import contextlib
import os
import resource
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

SAMPLE_SECONDS = 0.05


@dataclass
class Measured:
    returncode: int
    seconds: float
    peak_rss_bytes: int
    started_at: float = 0.0  # epoch seconds, to line up with the Dagster event log
    user_seconds: float = 0.0
    # Kernel time; on a VM it also moves with how the host backs fresh memory pages.
    system_seconds: float = 0.0

    @property
    def peak_rss_mb(self) -> float:
        return round(self.peak_rss_bytes / 2**20, 1)


def _tree_rss(proc: psutil.Process) -> int:
    total = 0
    try:
        members = [proc, *proc.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0
    for member in members:
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            total += member.memory_info().rss
    return total


def run_measured(
    cmd: list[str],
    *,
    env: dict[str, str],
    log_path: Path,
    cwd: Path | None = None,
    address_space_limit: int | None = None,
) -> Measured:
    """Run cmd to completion (stdout and stderr into log_path) and measure it."""

    def limit_memory() -> None:
        if address_space_limit:
            resource.setrlimit(resource.RLIMIT_AS, (address_space_limit, address_space_limit))

    log_path.parent.mkdir(parents=True, exist_ok=True)
    peak = 0
    with open(log_path, "w", encoding="utf-8") as log:
        started_at = time.time()
        started = time.perf_counter()
        popen = subprocess.Popen(
            cmd, env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT, preexec_fn=limit_memory
        )
        proc = psutil.Process(popen.pid)
        done = threading.Event()

        def sample() -> None:
            nonlocal peak
            while not done.is_set():
                peak = max(peak, _tree_rss(proc))
                done.wait(SAMPLE_SECONDS)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        _, status, usage = os.wait4(popen.pid, 0)
        seconds = time.perf_counter() - started
        returncode = popen.returncode = os.waitstatus_to_exitcode(status)
        done.set()
        sampler.join()
    return Measured(
        returncode=returncode,
        seconds=round(seconds, 3),
        peak_rss_bytes=peak,
        started_at=started_at,
        user_seconds=round(usage.ru_utime, 3),
        system_seconds=round(usage.ru_stime, 3),
    )
