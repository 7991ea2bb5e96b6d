"""Finding 2 of the December review: the new leader's first LIST of IPAddresses had no retry, and its
failure went unobserved: the process kept renewing the lease (so no standby could take over), never set
itself leading (so nothing was reconciled) and reported healthy. Every claim in the cluster stayed unbound.

Now a failed takeover list is retried with back-off; a leader that cannot finish taking over within its
renew deadline gives the lease up and exits, so a standby leads instead."""

from __future__ import annotations

import pytest

from incluster_ipam.kube import ApiError, TransportError
from incluster_ipam.kube.errors import error_from_status

from ..faults import invariants
from ..faults.helpers import Cluster
from .doctored import DoctoredClient, from_informer
from .harness import elected, running, wait_bound, wait_holder


def failure(kind: str) -> Exception:
    if kind == "reset":
        return TransportError("GET /apis/ipam.cluster.x-k8s.io/v1beta2/ipaddresses: connection reset by peer")
    code, reason = {"throttled": (429, "TooManyRequests"), "unavailable": (503, "ServiceUnavailable")}[kind]
    return error_from_status({"code": code, "reason": reason, "message": "the server is busy"})


def fail_takeover_lists(
    client: DoctoredClient, provider_ready: object, times: int | None, error: Exception
) -> None:
    """Make the IPAddress lists sent after the caches synced (the takeover's fresh list) fail."""
    failed = 0

    async def hook(method: str, plural: str, name: str) -> None:
        nonlocal failed
        if method != "list" or plural != "ipaddresses" or from_informer():
            return
        if not provider_ready.is_set():  # type: ignore[attr-defined]
            return
        if times is None or failed < times:
            failed += 1
            raise error

    client.hooks.append(hook)


@pytest.mark.parametrize("kind", ["reset", "throttled", "unavailable"])
async def test_finding_02_a_failed_takeover_list_is_retried(cluster: Cluster, kind: str) -> None:
    ns = await cluster.namespace("f02")
    await cluster.pool("InClusterIPPool", "pool", ns, addresses=["10.20.0.1-10.20.0.50"], prefix=24)
    client = DoctoredClient(cluster.plane.kubeconfig_path)
    async with client, running(client, elected(ns, "a")) as a:
        fail_takeover_lists(client, a.provider.ready, 2, failure(kind))
        await wait_holder(cluster.client, ns, "a")
        await cluster.claim(ns, "c1", "pool")
        assert await wait_bound(cluster, ns, "c1", within=30) == "10.20.0.1"
        await invariants.settle(cluster.client, ns)  # while it leads: its pool status is written too
        assert await a.finish() == 0


async def test_finding_02_a_leader_that_cannot_take_over_hands_over_to_the_standby(cluster: Cluster) -> None:
    ns = await cluster.namespace("f02")
    await cluster.pool("InClusterIPPool", "pool", ns, addresses=["10.21.0.1-10.21.0.50"], prefix=24)
    broken = DoctoredClient(cluster.plane.kubeconfig_path)
    healthy = DoctoredClient(cluster.plane.kubeconfig_path)
    async with broken, healthy, running(broken, elected(ns, "a")) as a:
        fail_takeover_lists(broken, a.provider.ready, None, failure("unavailable"))
        await wait_holder(cluster.client, ns, "a")
        async with running(healthy, elected(ns, "b")) as b:
            await cluster.claim(ns, "c1", "pool")
            # A never finishes taking over: it must give the lease up (and end) so that B leads and binds.
            assert await wait_bound(cluster, ns, "c1", within=45) == "10.21.0.1"
            assert a.task.done(), "the wedged leader is still running"
            assert a.task.result() == 1
            assert b.provider.leading.is_set()
            await invariants.settle(cluster.client, ns)
            assert await b.finish() == 0


async def test_finding_02_the_error_is_not_swallowed_by_an_unpaginated_retry(cluster: Cluster) -> None:
    """An expired continue token falls back to one unpaginated list; its failure is retried too."""
    ns = await cluster.namespace("f02")
    await cluster.pool("InClusterIPPool", "pool", ns, addresses=["10.22.0.1-10.22.0.50"], prefix=24)
    client = DoctoredClient(cluster.plane.kubeconfig_path)
    async with client, running(client, elected(ns, "a")) as a:
        expired = error_from_status({"code": 410, "reason": "Expired", "message": "continue token expired"})
        fail_takeover_lists(client, a.provider.ready, 1, expired)
        fail_takeover_lists(client, a.provider.ready, 2, ApiError(503, "ServiceUnavailable", "busy"))
        await wait_holder(cluster.client, ns, "a")
        await cluster.claim(ns, "c1", "pool")
        assert await wait_bound(cluster, ns, "c1", within=30) == "10.22.0.1"
        assert await a.finish() == 0
