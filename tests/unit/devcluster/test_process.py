"""Start-up failures name the failing process and show the tail of its log."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from incluster_ipam.devcluster.controlplane import ControlPlane
from incluster_ipam.devcluster.process import ManagedProcess, ProcessError


async def test_a_process_that_dies_is_reported_with_its_name_exit_code_and_log(tmp_path: Path) -> None:
    proc = ManagedProcess(
        "fake-etcd", ["sh", "-c", "echo 'listen tcp: address already in use'; exit 3"], tmp_path / "p.log"
    )
    await proc.start()
    plane = ControlPlane(workdir=tmp_path, start_timeout=5)
    with pytest.raises(ProcessError) as raised:
        await plane.wait_http(proc, "http://127.0.0.1:9/health", ssl_context=None)
    message = str(raised.value)
    assert "fake-etcd" in message
    assert "exited with code 3" in message
    assert "address already in use" in message


async def test_a_process_that_never_gets_ready_times_out_with_its_log(tmp_path: Path) -> None:
    proc = ManagedProcess("slowpoke", ["sh", "-c", "echo still warming up; sleep 30"], tmp_path / "p.log")
    await proc.start()
    plane = ControlPlane(workdir=tmp_path, start_timeout=0.5)
    try:
        with pytest.raises(ProcessError, match=r"slowpoke did not become ready .*\n.*still warming up"):
            await plane.wait_http(proc, "http://127.0.0.1:9/health", ssl_context=None)
    finally:
        await proc.stop(grace=1)
    assert not proc.running


async def test_stop_escalates_to_sigkill_when_sigterm_is_ignored(tmp_path: Path) -> None:
    proc = ManagedProcess("stubborn", ["sh", "-c", "trap '' TERM; sleep 30"], tmp_path / "p.log")
    await proc.start()
    await asyncio.sleep(0.2)
    await asyncio.wait_for(proc.stop(grace=0.5), 5)
    assert not proc.running


async def test_a_missing_binary_is_a_clear_error(tmp_path: Path) -> None:
    proc = ManagedProcess("kube-apiserver", [str(tmp_path / "nope")], tmp_path / "p.log")
    with pytest.raises(ProcessError, match="kube-apiserver could not be started"):
        await proc.start()
