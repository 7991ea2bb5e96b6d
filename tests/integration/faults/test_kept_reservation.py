"""A pool edited while a create has an unknown outcome (the December review's scenario 4, for finding 8).

The provider runs in-process with its webhooks registered (the in-use protection is real). The first three
IPAddress creates of claim `slow` fail, 0.5 s each: a 500 that was never applied, a create that *landed*
but whose answer was lost (the connection dropped after the request), and a 500 again. The reservation is
kept across them. Meanwhile:

(i) the pool is shrunk so that the kept address falls outside (allowed: nothing holds it yet);
(ii) the old range moves into a second pool of the namespace, and a claim is made on it.

Never an IPAddress outside its pool, never one address in two pools' IPAddresses (hard findings, checked
all along), and `slow` ends up bound inside its pool.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from incluster_ipam.api.crds import crds
from incluster_ipam.devcluster import ControlPlane
from incluster_ipam.devcluster.controlplane import free_port
from incluster_ipam.kube import KubeClient, Resource, TransportError
from incluster_ipam.kube.errors import error_from_status
from incluster_ipam.webhooks.registration import install_webhooks, uninstall_webhooks

from ..review.doctored import DoctoredClient
from ..review.harness import options, running, wait_bound
from ..support import eventually
from . import invariants
from .helpers import ADDRESSES, IP_POOLS, Cluster


@pytest.fixture(scope="module")
async def plane(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[ControlPlane]:
    async with ControlPlane(extra_crds=crds(""), workdir=tmp_path_factory.mktemp("kept-cp")) as cp:
        yield cp


class FlakyCreates(DoctoredClient):
    """The first creates of one claim's IPAddress fail, in a given order of ways."""

    def __init__(self, kubeconfig: Path, name: str, ways: list[str]) -> None:
        super().__init__(kubeconfig)
        self.name = name
        self.ways = list(ways)
        self.failed: list[str] = []
        self.failing = asyncio.Event()
        self.proceed = asyncio.Event()  # the first failure waits for it (the test's edit has been seen)

    async def create(self, resource: Resource, obj: Any, namespace: str | None = None, **kw: Any) -> Any:
        if resource.plural != "ipaddresses" or obj["metadata"]["name"] != self.name or not self.ways:
            return await super().create(resource, obj, namespace, **kw)
        way = self.ways.pop(0)
        self.failing.set()
        await asyncio.sleep(0.5)
        await self.proceed.wait()
        self.failed.append(f"{way} {obj['spec']['address']}")
        if way == "lost":  # it lands, the answer does not
            await super().create(resource, obj, namespace, **kw)
            raise TransportError("POST ipaddresses: connection reset by peer (after the request was sent)")
        raise error_from_status({"code": 500, "reason": "InternalError", "message": "etcd leader changed"})


async def test_edit_racing_a_kept_reservation(cluster: Cluster, tmp_path: Path) -> None:
    ns = await cluster.namespace("kept")
    certs = tmp_path / "certs"
    certs.mkdir()
    serving = cluster.plane.ca.serving(("127.0.0.1", "localhost"))
    (certs / "tls.crt").write_bytes(serving.cert_pem)
    (certs / "tls.key").write_bytes(serving.key_pem)
    client = FlakyCreates(cluster.plane.kubeconfig_path, "slow", ["500", "lost", "500"])
    opts = options(webhook_host="127.0.0.1", webhook_port=free_port(), webhook_cert_dir=certs)
    hard: list[str] = []
    async with (
        client,
        invariants.AddressMonitor(cluster.client, ADDRESSES, ns) as monitor,
        running(client, opts) as run,
    ):
        await asyncio.wait_for(run.provider.leading.wait(), 60)
        assert run.provider.webhook_url is not None
        await install_webhooks(cluster.client, run.provider.webhook_url, cluster.plane.ca.cert_pem)
        try:
            await cluster.pool("InClusterIPPool", "p", ns, addresses=["10.150.0.10-10.150.0.20"], prefix=24)
            await cluster.claim(ns, "slow", "p")
            await asyncio.wait_for(client.failing.wait(), 20)  # slow's 10.150.0.10 is reserved
            # (i) shrink: nothing holds .10 yet, so the webhook allows it
            await cluster.client.patch(
                IP_POOLS, "p", {"spec": {"addresses": ["10.150.0.15-10.150.0.20"]}}, ns
            )

            async def shrink_seen() -> bool:
                state = run.provider.book.get(f"InClusterIPPool/{ns}/p")
                return state is not None and state.spec.addresses == ("10.150.0.15-10.150.0.20",)

            await eventually(shrink_seen, 20, "the provider to see the shrunk pool")
            client.proceed.set()
            # (ii) the old range goes to another pool of the namespace, which hands it out
            await cluster.pool("InClusterIPPool", "q", ns, addresses=["10.150.0.10-10.150.0.14"], prefix=24)
            await cluster.claim(ns, "other", "q")
            checks = asyncio.create_task(_watch_hard_findings(cluster.client, ns, hard))
            try:
                address = await wait_bound(cluster, ns, "slow", within=60)
                assert await wait_bound(cluster, ns, "other", within=30) == "10.150.0.10"
            finally:
                checks.cancel()
            assert 15 <= int(address.rsplit(".", 1)[1]) <= 20, f"slow got {address}"
            verdict = await invariants.settle(cluster.client, ns, within=60, monitor=monitor)
            monitor.assert_clean()
            summary = invariants.summary(verdict)
            print(f"kept reservation: failures {client.failed}; slow bound to {address}; {summary}")
            assert not hard, hard
            assert await run.finish() == 0
        finally:
            await uninstall_webhooks(cluster.client)


async def _watch_hard_findings(client: KubeClient, namespace: str, into: list[str]) -> None:
    """Audit every 0.2 s; any hard finding (duplicate, out of range) is recorded."""
    while True:
        verdict = await invariants.check(client, namespace, statuses=False)
        into.extend(verdict.hard)
        await asyncio.sleep(0.2)
