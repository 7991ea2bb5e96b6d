"""Resident memory and CPU time of a process, from /proc (Linux)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import platform
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_TICK = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class ProcSample:
    rss_mb: float
    peak_rss_mb: float  # VmHWM: the high-water mark since the process started
    cpu_s: float  # user + system


def plane_cpu(plane: Any) -> dict[str, float]:
    """CPU seconds so far of a `ControlPlane`'s kube-apiserver and etcd (those still running)."""
    out: dict[str, float] = {}
    for name, proc in (("kube-apiserver", plane.apiserver), ("etcd", plane.etcd)):
        now = sample(proc.pid) if proc is not None and proc.pid is not None else None
        if now is not None:
            out[name] = now.cpu_s
    return out


def sample(pid: int) -> ProcSample | None:
    """The process's memory and CPU now, or None when it is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = {k: v.strip() for k, _, v in (line.partition(":") for line in status.splitlines())}
    # The command name (field 2) may hold spaces; utime and stime are fields 14 and 15.
    after = stat.rsplit(")", 1)[1].split()
    cpu = (int(after[11]) + int(after[12])) / _TICK
    return ProcSample(_kb(fields.get("VmRSS", "0 kB")), _kb(fields.get("VmHWM", "0 kB")), cpu)


def _kb(text: str) -> float:
    return int(text.split(maxsplit=1)[0]) / 1024


def children(pid: int) -> list[int]:
    """Direct children of a process (to find the profiled process under a wrapper)."""
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


class PeakSampler:
    """Polls a process's RSS in the background; `peak_mb` is the highest resident set seen."""

    def __init__(self, pid: int, interval: float = 0.25) -> None:
        self.pid = pid
        self.interval = interval
        self.peak_mb = 0.0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            now = sample(self.pid)
            if now is not None:
                self.peak_mb = max(self.peak_mb, now.rss_mb)
            await asyncio.sleep(self.interval)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


def machine() -> dict[str, object]:
    """What the figures were taken on."""
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem_gib = 0.0
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_gib = int(line.split()[1]) / 1024 / 1024
    go = ""
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        go = subprocess.run(["go", "version"], capture_output=True, text=True, check=False).stdout.strip()
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "memory_gib": round(mem_gib, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "go": go,
    }


def system_busy_s() -> float:
    """CPU seconds all processes on the machine have used since boot (every state but idle and iowait)."""
    with contextlib.suppress(OSError):
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
        user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in fields[:8])
        return (user + nice + system + irq + softirq + steal) / _TICK
    return 0.0


def load_average() -> tuple[float, float, float]:
    return os.getloadavg()
