"""The fault harness itself: a provider that dies while a test relies on it fails `invariants.settle` at
once, with its exit code and log, instead of a vague "did not settle" after the deadline."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from ..review.harness import wait_holder
from . import invariants
from .helpers import Cluster, ProviderProcess, bounded_gather, eventually


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


async def test_a_replica_that_loses_its_lease_is_restarted_as_its_deployment_would(
    cluster: Cluster, tmp_path: Path
) -> None:
    """Seen twice in CI at the end of the suite, with the node's e2e tests on the other worker: a standby
    that had taken over timed its own renewals out (2 s) and exited, as it must; nothing restarted it, so
    its claims were never bound. Here the replica's renewals are made to miss their deadline by stopping
    the process (SIGSTOP) past it: it exits with code 1 after its lease is lost, and the harness starts it
    again under a new identity, which takes the lease and binds every claim."""
    ns = await cluster.namespace("restart")
    await cluster.pool("InClusterIPPool", "pool", ns, addresses=["10.150.0.0/24"], prefix=24)
    replica = ProviderProcess(
        "r",
        cluster.plane.kubeconfig_path,
        tmp_path,
        leader_elect=True,
        extra=[f"--leader-election-namespace={ns}"],
    )
    await replica.start()
    try:
        await wait_holder(cluster.client, ns, "r")
        await bounded_gather(cluster.claim(ns, f"c{i}", "pool") for i in range(20))
        await cluster.wait_all_bound(ns, within=30)
        assert replica.pid is not None
        os.kill(replica.pid, signal.SIGSTOP)
        time.sleep(3.5)  # noqa: ASYNC251 - past the renew deadline (2 s) by the replica's own clock
        os.kill(replica.pid, signal.SIGCONT)
        await bounded_gather(cluster.claim(ns, f"d{i}", "pool") for i in range(20))
        await wait_holder(cluster.client, ns, "r-r1", within=30)
        assert len(replica.restarts) == 1
        await cluster.wait_all_bound(ns, within=30)
        await invariants.settle(cluster.client, ns, within=30)
    finally:
        await replica.stop()
