"""A small file's content, re-read only when the file changed (token files, client certificates).

Looking costs one stat, run in a thread (nothing blocks the loop) and at most every `check_seconds`; the
content is re-read when the stat signature (inode, size, change and modification times) moved, so a file
replaced by a rename (kubelet's atomic writer, cert-manager) is noticed as well as one rewritten in place.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from pathlib import Path

Signature = tuple[int, int, int, int, int]


class FileWatch:
    """The current content of `path`; `invalidate` makes the next `read` look at the file again."""

    def __init__(self, path: Path, check_seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.path = path
        self._check = check_seconds
        self._clock = clock
        self._checked_at = -float("inf")
        self._signature: Signature | None = None
        self._content: bytes | None = None
        self.reads = 0

    async def read(self) -> bytes:
        if self._content is None or self._clock() - self._checked_at >= self._check:
            await asyncio.to_thread(self._refresh)
        assert self._content is not None
        return self._content

    def invalidate(self) -> None:
        self._checked_at = -float("inf")

    def _refresh(self) -> None:
        st = os.stat(self.path)
        signature = (st.st_ino, st.st_dev, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
        if signature != self._signature or self._content is None:
            self._content = self.path.read_bytes()
            self._signature = signature
            self.reads += 1
        self._checked_at = self._clock()
