"""Finding 7 of the December review: webhooks and health were served only after every informer had synced.
Pools created by upstream's early releases are still stored as v1alpha1; listing them at v1alpha2 needs the
conversion webhook, which this very process serves only after the list: a deadlock, and the liveness probe
kills the pod before it can ever serve (a crash loop on every replica).

The pool CRDs start with v1alpha1 as their storage version (as upstream v0.1.0-alpha shipped them), pools
are created at v1alpha1, then the shipped CRDs (v1alpha2 storage, conversion by webhook at the provider) are
applied. The objects stay encoded as v1alpha1 in etcd until something rewrites them.

Finding 18's SIGTERM part lives here too, since it needs an initial sync that cannot finish: with the
conversion webhook pointing at a port nobody serves, the list fails forever, and SIGTERM must still stop the
provider at once (it used to wait for the sync, i.e. for SIGKILL)."""

from __future__ import annotations

import copy
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from incluster_ipam.api.constants import GROUP
from incluster_ipam.api.crds import crds
from incluster_ipam.devcluster import ControlPlane
from incluster_ipam.devcluster.controlplane import free_port
from incluster_ipam.kube import KubeClient, Resource
from incluster_ipam.kube.resources import CRDS
from incluster_ipam.webhooks.registration import create_or_replace

from ..faults.helpers import Cluster, ProviderProcess
from ..support import eventually
from .harness import wait_bound

V1ALPHA1_POOLS = Resource(GROUP, "v1alpha1", "inclusterippools", "InClusterIPPool", True)


def v1alpha1_storage() -> list[dict[str, Any]]:
    """The pool CRDs as early upstream releases stored them: v1alpha1 is the storage version."""
    out = []
    for shipped in crds(""):
        crd = copy.deepcopy(shipped)
        names = [v["name"] for v in crd["spec"]["versions"]]
        if "v1alpha1" in names:
            for version in crd["spec"]["versions"]:
                version["storage"] = version["name"] == "v1alpha1"
        out.append(crd)
    return out


@pytest.fixture(scope="module")
async def plane(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[ControlPlane]:
    workdir = tmp_path_factory.mktemp("f07-cp")
    async with ControlPlane(extra_crds=v1alpha1_storage(), workdir=workdir) as control_plane:
        yield control_plane


@pytest.fixture(scope="module")
async def cluster(plane: ControlPlane) -> AsyncIterator[Cluster]:
    async with KubeClient.from_kubeconfig(plane.kubeconfig_path) as client:
        yield Cluster(plane, client)


@pytest.fixture(scope="module")
async def stored(cluster: Cluster) -> dict[str, str]:
    """Two namespaces, each with a v1alpha1-stored pool: one for each test."""
    namespaces = {}
    for test in ("sigterm", "startup"):
        ns = await cluster.namespace(f"f07-{test}")
        pool = {
            "apiVersion": f"{GROUP}/v1alpha1",
            "kind": "InClusterIPPool",
            "metadata": {"name": "old", "namespace": ns},
            "spec": {"start": "10.70.0.10", "end": "10.70.0.20", "prefix": 24, "gateway": "10.70.0.1"},
        }
        await cluster.client.create(V1ALPHA1_POOLS, pool, ns)
        namespaces[test] = ns
    return namespaces


async def point_conversion_at(cluster: Cluster, url: str) -> None:
    """Apply the shipped CRDs (v1alpha2 storage) with conversion at `url`, as an upgrade would."""
    for crd in crds(url, cluster.plane.ca.cert_pem):
        await create_or_replace(cluster.client, CRDS, crd)


def serving_certs(plane: ControlPlane, directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    serving = plane.ca.serving(("127.0.0.1", "localhost"))
    (directory / "tls.crt").write_bytes(serving.cert_pem)
    (directory / "tls.key").write_bytes(serving.key_pem)
    return directory


async def healthz(port: int) -> bool:
    try:
        async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}/healthz") as resp:
            return resp.status == 200
    except aiohttp.ClientError:
        return False


async def test_finding_18_sigterm_during_the_initial_sync_stops_the_provider(
    cluster: Cluster, stored: dict[str, str], tmp_path: Path
) -> None:
    await point_conversion_at(cluster, f"https://127.0.0.1:{free_port()}")  # nobody serves it
    provider = ProviderProcess("sync-blocked", cluster.plane.kubeconfig_path, tmp_path)
    await provider.start()
    try:
        await eventually(lambda: _logged(provider, "inclusterippools"), 30, "the pool list to fail")
        assert provider.running
        assert provider.process is not None
        started = time.monotonic()
        await provider.process.stop(grace=15)
        took = time.monotonic() - started
        assert provider.returncode == 0, f"exit code {provider.returncode} after {took:.1f} s"
    finally:
        await provider.stop()


async def _logged(provider: ProviderProcess, text: str) -> bool:
    return text in provider.log_tail(200)


async def test_finding_07_pools_stored_as_v1alpha1_convert_at_start_up(
    cluster: Cluster, stored: dict[str, str], tmp_path: Path
) -> None:
    ns = stored["startup"]
    webhook_port, health_port = free_port(), free_port()
    await point_conversion_at(cluster, f"https://127.0.0.1:{webhook_port}")
    certs = serving_certs(cluster.plane, tmp_path / "certs")
    provider = ProviderProcess(
        "v1alpha1-start",
        cluster.plane.kubeconfig_path,
        tmp_path,
        extra=[
            "--webhook-host=127.0.0.1",
            f"--webhook-port={webhook_port}",
            f"--webhook-cert-dir={certs}",
            f"--health-probe-bind-address=127.0.0.1:{health_port}",
        ],
    )
    await provider.start()
    try:
        await eventually(lambda: healthz(health_port), 30, "/healthz to answer")
        await cluster.claim(ns, "c1", "old")
        assert await wait_bound(cluster, ns, "c1", within=30) == "10.70.0.10"
        provider.check_alive()
    finally:
        await provider.stop()
