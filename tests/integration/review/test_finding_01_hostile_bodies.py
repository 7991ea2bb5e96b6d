"""Finding 1 of the December review, as a cluster would see it: the provider process (`incluster-ipam run`,
webhooks on) under the Deployment's memory limit (a 256 MiB memory cgroup) gets a 36 MB hostile body on
every webhook path, unauthenticated, as any pod could send it. It must stay alive (no OOM kill), and a claim
created right after must be bound promptly. The cgroup's peak usage is printed."""

from __future__ import annotations

import ssl
import time
from pathlib import Path

import aiohttp

from incluster_ipam.api.constants import GROUP
from incluster_ipam.api.crds import crds
from incluster_ipam.devcluster.controlplane import free_port
from incluster_ipam.kube import Resource
from incluster_ipam.kube.resources import CRDS
from incluster_ipam.webhooks.admission import ROUTES
from incluster_ipam.webhooks.registration import create_or_replace
from incluster_ipam.webhooks.server import CONVERT_PATH

from ..faults.helpers import Cluster, ProviderProcess, bounded_gather
from ..faults.memcap import MemoryCap
from ..support import eventually
from .harness import wait_bound

LIMIT = 256 << 20
V1ALPHA1_POOLS = Resource(GROUP, "v1alpha1", "inclusterippools", "InClusterIPPool", True)
HOSTILE = b"[" + b",".join([b"[]"] * 12_000_000) + b"]"  # 36 MB of empty lists


async def test_finding_01_36mb_bodies_on_every_webhook_path_leave_the_provider_alive(
    cluster: Cluster, tmp_path: Path
) -> None:
    ns = await cluster.namespace("f01")
    await cluster.pool("InClusterIPPool", "canary", ns, addresses=["10.10.0.0/24"], prefix=24)
    serving = cluster.plane.ca.serving(("127.0.0.1", "localhost"))
    certs = tmp_path / "certs"
    certs.mkdir()
    (certs / "tls.crt").write_bytes(serving.cert_pem)
    (certs / "tls.key").write_bytes(serving.key_pem)
    port, health = free_port(), free_port()
    with MemoryCap(LIMIT, "f01") as cap:
        provider = ProviderProcess(
            "hostile-bodies",
            cluster.plane.kubeconfig_path,
            tmp_path,
            extra=[
                "--webhook-host=127.0.0.1",
                f"--webhook-port={port}",
                f"--webhook-cert-dir={certs}",
                f"--health-probe-bind-address=127.0.0.1:{health}",
            ],
            wrap=cap.wrap,
        )
        await provider.start()
        try:
            await cluster.claim(ns, "before", "canary")
            await wait_bound(cluster, ns, "before", within=60)
            context = ssl.create_default_context(cadata=cluster.plane.ca.cert_pem.decode())
            answers: dict[str, str] = {}
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as http:
                for path in [route.path for route in ROUTES] + [CONVERT_PATH]:
                    try:
                        async with http.post(
                            f"https://127.0.0.1:{port}{path}", data=HOSTILE, ssl=context
                        ) as r:
                            answers[path] = str(r.status)
                    except aiohttp.ClientError as exc:
                        answers[path] = type(exc).__name__
                    assert provider.running, f"the provider died on {path}: {answers}\n{provider.log_tail()}"
            started = time.monotonic()
            await cluster.claim(ns, "after", "canary")
            await wait_bound(cluster, ns, "after", within=20)
            bound_in = time.monotonic() - started
            provider.check_alive()
            print(
                f"hostile bodies: answers {answers}; peak {cap.peak_bytes / (1 << 20):.0f} MiB of a "
                f"{LIMIT >> 20} MiB limit; {cap.oom_kills} OOM kills; next claim bound in {bound_in:.2f} s"
            )
            assert cap.oom_kills == 0
            assert all(status in ("400", "413") for status in answers.values()), answers
            await eventually(lambda: _healthy(health), 10, "/healthz")
        finally:
            await provider.stop()


async def _healthy(port: int) -> bool:
    async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}/healthz") as resp:
        return resp.status == 200


async def test_finding_01_a_large_v1alpha1_list_converts_under_the_memory_limit(
    cluster: Cluster, tmp_path: Path
) -> None:
    """The legitimate large body: kube-apiserver converts a whole list in one ConversionReview. 300 pools of
    2,000 entries each (about 8 MB) listed at v1alpha1 through the apiserver, converted by the provider
    process under the 256 MiB cgroup."""
    ns = await cluster.namespace("f01-list")
    serving = cluster.plane.ca.serving(("127.0.0.1", "localhost"))
    certs = tmp_path / "certs"
    certs.mkdir()
    (certs / "tls.crt").write_bytes(serving.cert_pem)
    (certs / "tls.key").write_bytes(serving.key_pem)
    port = free_port()
    with MemoryCap(LIMIT, "f01-list") as cap:
        provider = ProviderProcess(
            "large-list",
            cluster.plane.kubeconfig_path,
            tmp_path,
            extra=["--webhook-host=127.0.0.1", f"--webhook-port={port}", f"--webhook-cert-dir={certs}"],
            wrap=cap.wrap,
        )
        await provider.start()
        try:
            for crd in crds(f"https://127.0.0.1:{port}", cluster.plane.ca.cert_pem):
                await create_or_replace(cluster.client, CRDS, crd)
            await bounded_gather(
                (
                    cluster.pool(
                        "InClusterIPPool",
                        f"p{i}",
                        ns,
                        addresses=entries(i),
                        excludedAddresses=["10.255.255.1"],  # v1alpha2 only: our conversion stashes it
                        prefix=8,
                    )
                    for i in range(300)
                ),
                limit=4,
            )
            started = time.monotonic()
            listed = await cluster.client.list(V1ALPHA1_POOLS, ns, page_size=None)
            took = time.monotonic() - started
            assert len(listed.items) == 300
            assert all(item["apiVersion"].endswith("/v1alpha1") for item in listed.items)
            assert len(listed.items[7]["spec"]["addresses"]) == 2000
            converted = [item for item in listed.items if "excludedAddresses" not in item["spec"]]
            stashed = "cluster.x-k8s.io/conversion-data"
            assert all(stashed in item["metadata"].get("annotations", {}) for item in converted)
            assert len(converted) == 300, "the provider's /convert did the conversion"
            provider.check_alive()
            assert cap.oom_kills == 0
            print(
                f"v1alpha1 list of 300 pools x 2,000 entries converted in {took:.1f} s; cgroup peak "
                f"{cap.peak_bytes / (1 << 20):.0f} MiB of {LIMIT >> 20} MiB"
            )
        finally:
            for crd in crds(""):
                await create_or_replace(cluster.client, CRDS, crd)
            await provider.stop()


def entries(pool: int) -> list[str]:
    """2,000 single addresses of one pool (about 26 KB of JSON), all inside 10.0.0.0/8."""
    return [f"10.{pool // 50}.{(pool % 50) * 5 + j // 250}.{j % 250}" for j in range(2000)]
