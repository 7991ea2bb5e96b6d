"""Graceful shutdown: SIGTERM/SIGINT set a stop event; a second signal exits at once (controller-runtime)."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import Callable

log = logging.getLogger(__name__)

SIGNALS = (signal.SIGTERM, signal.SIGINT)


def _exit_now() -> None:
    os._exit(1)


def install_signal_handlers(
    stop: asyncio.Event | None = None, *, on_second: Callable[[], None] = _exit_now
) -> asyncio.Event:
    """Make SIGTERM and SIGINT set `stop` (created if not given) on the running loop; the second signal calls
    `on_second` (default: exit with status 1 without cleanup). Returns the event."""
    loop = asyncio.get_running_loop()
    event = stop or asyncio.Event()

    def handle(signum: int) -> None:
        if event.is_set():
            log.warning("second signal %s: exiting now", signal.Signals(signum).name)
            on_second()
            return
        log.info("signal %s: shutting down", signal.Signals(signum).name)
        event.set()

    for signum in SIGNALS:
        loop.add_signal_handler(signum, handle, signum)
    return event


def remove_signal_handlers() -> None:
    loop = asyncio.get_running_loop()
    for signum in SIGNALS:
        loop.remove_signal_handler(signum)
