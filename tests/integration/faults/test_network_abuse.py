"""Hostile network clients on the webhook and metrics ports (the December review's scenario 5, for findings
1, 5 and 10), against the leader of two `incluster-ipam run` replicas, the leader under the Deployment's
memory limit (a 256 MiB memory cgroup):

a. three 12 MB bodies of empty JSON lists POSTed to `/convert`, one after another;
b. six concurrent AdmissionReviews of a pool with 100,000 entries;
c. 2,000 `/metrics` requests, 200 at a time, each with a random bearer token;
d. 200 connections that send their request one byte every 5 s (slowloris).

During each phase 50 claims are created and deleted. After each: the leader is alive (no OOM kill), still
holds the lease and never failed to renew it, a canary claim is bound, and a normal pool create (admitted by
the leader's webhook through the apiserver) succeeds. Peak memory and timings are printed.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from incluster_ipam.api.constants import GROUP
from incluster_ipam.api.crds import crds
from incluster_ipam.devcluster import ControlPlane
from incluster_ipam.devcluster.controlplane import free_port
from incluster_ipam.webhooks.registration import install_webhooks, uninstall_webhooks

from ..review.harness import wait_bound
from . import invariants
from .helpers import Cluster, ProviderProcess, bounded_gather, eventually, pool_body
from .memcap import MemoryCap

LIMIT = 256 << 20
DEFAULT_ELECTION = [
    "--leader-elect-lease-duration=15",
    "--leader-elect-renew-deadline=10",
    "--leader-elect-retry-period=2",
]
VALIDATE = f"/validate-{GROUP.replace('.', '-')}-v1alpha2-inclusterippool"


@pytest.fixture(scope="module")
async def plane(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[ControlPlane]:
    async with ControlPlane(extra_crds=crds(""), workdir=tmp_path_factory.mktemp("abuse-cp")) as cp:
        yield cp


def replica(
    name: str, cluster: Cluster, tmp_path: Path, certs: Path, cap: MemoryCap | None
) -> ProviderProcess:
    return ProviderProcess(
        name,
        cluster.plane.kubeconfig_path,
        tmp_path,
        leader_elect=True,
        extra=[
            *DEFAULT_ELECTION,
            "--webhook-host=127.0.0.1",
            f"--webhook-port={free_port()}",
            f"--webhook-cert-dir={certs}",
            f"--diagnostics-address=127.0.0.1:{free_port()}",
            f"--health-probe-bind-address=127.0.0.1:{free_port()}",
        ],
        wrap=cap.wrap if cap is not None else None,
    )


def flag(process: ProviderProcess, name: str) -> str:
    return next(a.split("=", 1)[1] for a in reversed(process.argv()) if a.startswith(f"--{name}="))


def big_review(namespace: str) -> bytes:
    entries = [f"10.{i // 65536 % 256}.{i // 256 % 256}.{i % 256}" for i in range(100_000)]
    pool = pool_body(
        "InClusterIPPool", f"big-{uuid.uuid4().hex[:6]}", namespace, {"addresses": entries, "prefix": 8}
    )
    review = {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": str(uuid.uuid4()),
            "kind": {"group": GROUP, "version": "v1alpha2", "kind": "InClusterIPPool"},
            "operation": "CREATE",
            "namespace": namespace,
            "name": pool["metadata"]["name"],
            "object": pool,
        },
    }
    return json.dumps(review).encode()


async def test_network_abuse(cluster: Cluster, tmp_path: Path) -> None:
    ns = await cluster.namespace("abuse")
    certs = tmp_path / "certs"
    certs.mkdir()
    serving = cluster.plane.ca.serving(("127.0.0.1", "localhost"))
    (certs / "tls.crt").write_bytes(serving.cert_pem)
    (certs / "tls.key").write_bytes(serving.key_pem)
    trusted = ssl.create_default_context(cadata=cluster.plane.ca.cert_pem.decode())
    anything = ssl.create_default_context()
    anything.check_hostname = False
    anything.verify_mode = ssl.CERT_NONE
    with MemoryCap(LIMIT, "abuse") as cap:
        leader = replica("abuse-a", cluster, tmp_path, certs, cap)
        standby = replica("abuse-b", cluster, tmp_path, certs, None)
        await leader.start()
        await eventually(cluster.lease_holder, 60, "a leader")
        assert await cluster.lease_holder() == "abuse-a"
        await standby.start()
        webhook = f"https://127.0.0.1:{flag(leader, 'webhook-port')}"
        diagnostics = f"https://{flag(leader, 'diagnostics-address')}"
        try:
            await install_webhooks(cluster.client, webhook, cluster.plane.ca.cert_pem)
            await cluster.pool("InClusterIPPool", "canary", ns, addresses=["10.160.0.0/20"], prefix=20)
            report: dict[str, str] = {}
            serial = 0

            async def churn_50() -> None:
                nonlocal serial
                names = [f"churn-{serial}-{i}" for i in range(50)]
                serial += 1
                await bounded_gather((cluster.claim(ns, n, "canary") for n in names), limit=10)
                for name in names:
                    await wait_bound(cluster, ns, name, within=60)
                await bounded_gather((cluster.delete_claim(ns, n) for n in names), limit=10)

            async def phase(name: str, attack: object) -> None:
                started = time.monotonic()
                results = await asyncio.gather(attack, churn_50())  # type: ignore[arg-type]
                took = time.monotonic() - started
                leader.check_alive()
                assert cap.oom_kills == 0, f"{name}: the leader was OOM-killed"
                assert await cluster.lease_holder() == "abuse-a", f"{name}: the lease moved"
                assert "failed to renew" not in leader.log_tail(2000), f"{name}: a renewal failed"
                began = time.monotonic()
                canary = f"canary-{name}"
                await cluster.claim(ns, canary, "canary")
                await wait_bound(cluster, ns, canary, within=5)
                bound = time.monotonic() - began
                began = time.monotonic()
                await cluster.pool(
                    "InClusterIPPool",
                    f"normal-{name}",
                    ns,
                    addresses=[f"10.{170 + serial}.0.0/24"],
                    prefix=24,
                )
                admitted = time.monotonic() - began
                report[name] = (
                    f"{results[0]}; {took:.1f} s; canary bound in {bound:.2f} s, a pool admitted in "
                    f"{admitted:.2f} s; cgroup peak {cap.peak_bytes / (1 << 20):.0f} MiB"
                )

            async def convert_bodies() -> str:
                body = b"[" + b",".join([b"[]"] * 4_000_000) + b"]"
                statuses: Counter[int] = Counter()
                async with aiohttp.ClientSession() as http:
                    for _ in range(3):
                        async with http.post(f"{webhook}/convert", data=body, ssl=trusted) as resp:
                            statuses[resp.status] += 1
                return f"answers {dict(statuses)}"

            async def big_reviews() -> str:
                body = big_review(ns)
                async with aiohttp.ClientSession() as http:

                    async def one() -> str:
                        async with http.post(webhook + VALIDATE, data=body, ssl=trusted) as resp:
                            answer = await resp.json()
                            return str(answer["response"]["status"]["code"])

                    codes = await asyncio.gather(*(one() for _ in range(6)))
                return f"review answers {Counter(codes)}"

            async def random_tokens() -> str:
                statuses: Counter[int] = Counter()
                connector = aiohttp.TCPConnector(limit=200, ssl=anything)
                async with aiohttp.ClientSession(connector=connector) as http:

                    async def one() -> None:
                        headers = {"Authorization": f"Bearer {uuid.uuid4()}"}
                        async with http.get(f"{diagnostics}/metrics", headers=headers) as resp:
                            statuses[resp.status] += 1

                    await bounded_gather((one() for _ in range(2000)), limit=200)
                return f"metrics answers {dict(statuses)}"

            async def slowloris() -> str:
                host, port = webhook.removeprefix("https://").split(":")
                writers = []
                for _ in range(200):
                    _, writer = await asyncio.open_connection(host, int(port), ssl=anything)
                    writers.append(writer)
                request = f"POST {VALIDATE} HTTP/1.1\r\nHost: {host}\r\n".encode()
                for index in range(3):
                    for writer in writers:
                        writer.write(request[index : index + 1])
                    await asyncio.sleep(5)
                for writer in writers:
                    writer.close()
                return "200 slow connections for 15 s"

            await phase("a-convert", convert_bodies())
            await phase("b-big-reviews", big_reviews())
            await phase("c-random-tokens", random_tokens())
            await phase("d-slowloris", slowloris())
            for name, line in report.items():
                print(f"network abuse {name}: {line}")
            await invariants.settle(cluster.client, ns)
        finally:
            await uninstall_webhooks(cluster.client)
            await standby.stop()
            await leader.stop()
