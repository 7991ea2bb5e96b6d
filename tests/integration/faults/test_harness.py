"""The fault harness itself: a provider that dies while a test relies on it fails `invariants.settle` at
once, with its exit code and log, instead of a vague "did not settle" after the deadline."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from . import invariants
from .helpers import Cluster, ProviderProcess, eventually


async def test_a_provider_that_dies_unexpectedly_fails_settle_at_once(
    cluster: Cluster, tmp_path: Path
) -> None:
    ns = await cluster.namespace("harness")
    provider = ProviderProcess("harness-provider", cluster.plane.kubeconfig_path, tmp_path)
    await provider.start()
    try:
        await invariants.settle(cluster.client, ns, within=30)  # alive: nothing to report
        assert provider.pid is not None
        os.kill(provider.pid, signal.SIGKILL)  # not through provider.kill(): nobody meant it

        async def gone() -> bool:
            return not provider.running

        await eventually(gone, 10, "the provider to be gone")
        started = time.monotonic()
        with pytest.raises(invariants.InvariantViolation, match="harness-provider exited with code -9"):
            await invariants.settle(cluster.client, ns, within=60)
        assert time.monotonic() - started < 5, "settle waited for its deadline instead of failing at once"
        await provider.kill()  # meant to be down now: settle is content again
        await invariants.settle(cluster.client, ns, within=30)
    finally:
        await provider.stop()
