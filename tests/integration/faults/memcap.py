"""Run a child process under a memory limit, as the Deployment's `limits.memory` does in a cluster: a memory
cgroup of its own (v1 `memory.limit_in_bytes`, or v2 `memory.max`), created and removed by the test. Peak
usage and OOM kills are read back from the cgroup. No cgroup, no test: `MemoryCap` raises rather than run
the process unlimited."""

from __future__ import annotations

import contextlib
import os
import time
import uuid
from pathlib import Path

V1_ROOT = Path("/sys/fs/cgroup/memory")
V2_ROOT = Path("/sys/fs/cgroup")


class MemoryCapUnavailable(RuntimeError):
    pass


class MemoryCap:
    """A memory cgroup limited to `limit_bytes`; `wrap(argv)` starts a command inside it."""

    def __init__(self, limit_bytes: int, name: str = "provider") -> None:
        self.limit_bytes = limit_bytes
        self.name = f"incluster-ipam-test-{name}-{uuid.uuid4().hex[:6]}"
        if V1_ROOT.is_dir() and os.access(V1_ROOT, os.W_OK):
            self.version = 1
            self.path = V1_ROOT / self.name
        elif "memory" in _read(V2_ROOT / "cgroup.controllers").split():
            self.version = 2
            self.path = V2_ROOT / self.name
        else:
            raise MemoryCapUnavailable(
                "no writable memory cgroup (v1 /sys/fs/cgroup/memory or v2 with the memory controller): "
                "the memory-limit tests cannot run here"
            )

    def __enter__(self) -> MemoryCap:
        try:
            self.path.mkdir()
            if self.version == 1:
                (self.path / "memory.limit_in_bytes").write_text(str(self.limit_bytes))
                with contextlib.suppress(OSError):
                    (self.path / "memory.memsw.limit_in_bytes").write_text(str(self.limit_bytes))
            else:
                (self.path / "memory.max").write_text(str(self.limit_bytes))
                with contextlib.suppress(OSError):
                    (self.path / "memory.swap.max").write_text("0")
        except OSError as exc:
            raise MemoryCapUnavailable(f"cannot set up the memory cgroup {self.path}: {exc}") from exc
        return self

    def __exit__(self, *exc: object) -> None:
        procs = self.path / "cgroup.procs"
        for pid in _read(procs).split():
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pid), 9)
        for _ in range(50):
            try:
                self.path.rmdir()
                return
            except OSError:
                time.sleep(0.1)  # the killed processes leave the cgroup a moment later

    def wrap(self, argv: list[str]) -> list[str]:
        """`argv`, started from inside the cgroup (it joins before exec, so all its memory is counted)."""
        script = 'echo $$ > "$0/cgroup.procs" && exec "$@"'
        return ["/bin/sh", "-c", script, str(self.path), *argv]

    @property
    def peak_bytes(self) -> int:
        name = "memory.max_usage_in_bytes" if self.version == 1 else "memory.peak"
        return int(_read(self.path / name) or 0)

    @property
    def oom_kills(self) -> int:
        name = "memory.oom_control" if self.version == 1 else "memory.events"
        for line in _read(self.path / name).splitlines():
            key, _, value = line.partition(" ")
            if key == "oom_kill":
                return int(value)
        return 0


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""
