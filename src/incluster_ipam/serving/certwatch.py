"""Reload a TLS certificate when its files change on disk, without a restart.

cert-manager renews certificates into a Secret; the kubelet updates the mounted volume by swapping a symlink
(`..data`), so the files get a new inode and mtime. `CertWatcher` polls `os.stat` of the certificate and
key every few seconds and calls the server's `reload_certificates()` when either changed.

The server's `reload_certificates()` builds a complete new context from the files and swaps it in
(`incluster_ipam.serving.tls.ServingTLS`), so a half-written rotation can never break the served pair: a pair
that does not load raises, is retried on the next poll, and the server keeps serving the previous one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import ssl
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

log = logging.getLogger(__name__)

DEFAULT_INTERVAL = 5.0
"""Seconds between two looks at the files (the kubelet updates Secret volumes within about a minute)."""

FileState = tuple[int, int, int, int] | None
"""(device, inode, size, mtime in ns) of a file after following symlinks; None when it does not exist."""


def file_state(path: Path) -> FileState:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


class CertWatcher:
    """Polls a certificate/key pair and calls `reload` after it changed and loads cleanly.

    Use as an async context manager (a background task polls every `interval` seconds) or call `check()`.
    The files' state when the watcher is created counts as already loaded.
    """

    def __init__(
        self,
        cert_file: str | Path,
        key_file: str | Path,
        reload: Callable[[], None],
        *,
        interval: float = DEFAULT_INTERVAL,
        name: str = "certificate",
    ) -> None:
        self.cert_file = Path(cert_file)
        self.key_file = Path(key_file)
        self.interval = interval
        self.name = name
        self.reloads = 0
        self._reload = reload
        self._loaded = self._state()
        self._failed: tuple[FileState, FileState] | None = None
        self._task: asyncio.Task[None] | None = None

    def _state(self) -> tuple[FileState, FileState]:
        return (file_state(self.cert_file), file_state(self.key_file))

    def check(self) -> bool:
        """One poll: True when the certificate was reloaded."""
        state = self._state()
        if state == self._loaded or None in state:
            return False
        try:
            self._reload()
        except (OSError, ssl.SSLError, ValueError) as exc:
            if state != self._failed:  # say it once per version of the files, not every poll
                log.warning(
                    "%s %s does not load yet (%s); still serving the previous one",
                    self.name,
                    self.cert_file,
                    exc,
                )
                self._failed = state
            return False
        self._loaded, self._failed = state, None
        self.reloads += 1
        log.info("%s reloaded from %s", self.name, self.cert_file)
        return True

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                self.check()
            except Exception:  # a broken reload callback must not end the watch
                log.exception("%s reload failed", self.name)

    async def __aenter__(self) -> CertWatcher:
        if self._task is None:
            self._task = asyncio.create_task(self.run(), name=f"certwatch-{self.name}")
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
