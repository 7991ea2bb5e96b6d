"""Supervise one child process of the local control plane: start it, log to a file, stop it for sure."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Self

_PR_SET_PDEATHSIG = 1


class ProcessError(RuntimeError):
    """A control-plane process failed to start or died; the message names it and shows its log tail."""


def _die_with_parent() -> None:
    """Ask Linux to SIGKILL the child when its parent dies, so a killed test run leaves no orphans."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def log_tail(path: Path, lines: int = 30) -> str:
    """The last `lines` lines of a log file, or a note that there is none."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return f"(no log at {path})"
    tail = text.splitlines()[-lines:]
    return "\n".join(tail) if tail else "(log is empty)"


class ManagedProcess:
    """One named child process whose stdout and stderr go to `log_path`."""

    def __init__(self, name: str, argv: list[str], log_path: Path, env: dict[str, str] | None = None) -> None:
        self.name = name
        self.argv = argv
        self.log_path = log_path
        self._env = env
        self._proc: asyncio.subprocess.Process | None = None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.returncode is None

    async def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        preexec: Callable[[], None] | None = _die_with_parent if sys.platform.startswith("linux") else None
        with self.log_path.open("ab") as log:
            try:
                self._proc = await asyncio.create_subprocess_exec(
                    *self.argv,
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=log,
                    stderr=asyncio.subprocess.STDOUT,
                    env={**os.environ, **(self._env or {})},
                    start_new_session=True,
                    preexec_fn=preexec,
                )
            except OSError as exc:
                raise ProcessError(f"{self.name} could not be started ({self.argv[0]}): {exc}") from exc

    def failure(self, what: str) -> ProcessError:
        """An error naming this process, with the tail of its log."""
        status = ""
        if self._proc is not None and self._proc.returncode is not None:
            status = f" (exited with code {self._proc.returncode})"
        return ProcessError(
            f"{self.name} {what}{status}; last lines of {self.log_path}:\n{log_tail(self.log_path)}"
        )

    def check_alive(self) -> None:
        if self._proc is None or self._proc.returncode is not None:
            raise self.failure("is not running")

    async def stop(self, grace: float = 10.0) -> None:
        """SIGTERM, then SIGKILL after `grace` seconds; idempotent."""
        proc = self._proc
        if proc is None or proc.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), grace)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()

    async def kill(self) -> None:
        """SIGKILL at once (for fault tests) and reap."""
        proc = self._proc
        if proc is None or proc.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()


class Lifecycle:
    """An async context manager over `start` and `stop`; `stop` also cleans up after a failed `start`, so it
    must be safe to call at any point (and twice)."""

    async def start(self) -> None:
        raise NotImplementedError

    async def stop(self) -> None:
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        try:
            await self.start()
        except BaseException:
            await self.stop()
            raise
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()
