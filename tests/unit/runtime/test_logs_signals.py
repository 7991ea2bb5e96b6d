"""Structured log formats and the SIGTERM/SIGINT stop event."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import signal
from collections.abc import Iterator

import pytest

from incluster_ipam.runtime import bind, install_signal_handlers, remove_signal_handlers, setup_logging


@pytest.fixture
def restore_root_logger() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_key_value_format(restore_root_logger: None) -> None:
    stream = io.StringIO()
    setup_logging("debug", stream=stream)
    log = logging.getLogger("incluster_ipam.test")
    log.info("allocated %s", "10.0.0.5", extra={"claim": "ns/c1", "note": "two words", "n": 3})
    line = stream.getvalue().strip()
    assert " INFO incluster_ipam.test: allocated 10.0.0.5 " in line
    assert line.endswith('claim=ns/c1 note="two words" n=3')


def test_json_format_with_bound_context_and_exception(restore_root_logger: None) -> None:
    stream = io.StringIO()
    setup_logging(logging.INFO, json_format=True, stream=stream)
    log = bind(logging.getLogger("incluster_ipam.test"), pool="p1")
    try:
        raise ValueError("bad")
    except ValueError:
        log.exception("failed", extra={"claim": "ns/c1"})
    record = json.loads(stream.getvalue())
    assert record["level"] == "error"
    assert record["msg"] == "failed"
    assert (record["pool"], record["claim"]) == ("p1", "ns/c1")
    assert "ValueError: bad" in record["exc"]
    assert record["ts"].endswith("Z")
    log.debug("hidden")
    assert stream.getvalue().count("\n") == 1


async def test_first_signal_sets_the_stop_event_second_exits() -> None:
    second: list[bool] = []
    stop = install_signal_handlers(on_second=lambda: second.append(True))
    try:
        os.kill(os.getpid(), signal.SIGTERM)
        await asyncio.wait_for(stop.wait(), 1)
        assert second == []
        os.kill(os.getpid(), signal.SIGINT)
        for _ in range(100):
            if second:
                break
            await asyncio.sleep(0.01)
        assert second == [True]
    finally:
        remove_signal_handlers()
