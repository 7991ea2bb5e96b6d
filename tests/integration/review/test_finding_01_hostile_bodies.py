"""Finding 1 of the December review, as a cluster would see it: the provider process (`incluster-ipam run`,
webhooks on) under the Deployment's memory limit (a 256 MiB memory cgroup) gets a 36 MB hostile body on
every webhook path, unauthenticated, as any pod could send it. It must stay alive (no OOM kill), and a claim
created right after must be bound promptly. The cgroup's peak usage is printed."""

from __future__ import annotations

import ssl
import time
from pathlib import Path

import aiohttp

from incluster_ipam.devcluster.controlplane import free_port
from incluster_ipam.webhooks.admission import ROUTES
from incluster_ipam.webhooks.server import CONVERT_PATH

from ..faults.helpers import Cluster, ProviderProcess
from ..faults.memcap import MemoryCap
from ..support import eventually
from .harness import wait_bound

LIMIT = 256 << 20
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
