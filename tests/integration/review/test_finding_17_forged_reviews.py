"""Finding 17 of the December review: anyone who can reach the webhook port could POST a hand-made
AdmissionReview for another namespace's pool and read its in-use addresses from the answer ("pool addresses
do not contain allocated addresses: [...]"), or learn from a DELETE review whether it has any.

A review about an existing pool is now answered from the cluster's view only when it carries that pool's
real UID (the apiserver always sends the stored object); otherwise it is refused without a word about the
pool. The shipped NetworkPolicy (config/network-policy/) keeps other pods off the port in the first place."""

from __future__ import annotations

import asyncio
import json
import ssl
import uuid
from pathlib import Path
from typing import Any

import aiohttp

from incluster_ipam.api.constants import GROUP
from incluster_ipam.devcluster.controlplane import free_port

from ..faults.helpers import IP_POOLS, Cluster
from .harness import options, running, wait_bound


def forged(operation: str, namespace: str, name: str, uid: str, spec: dict[str, Any]) -> dict[str, Any]:
    pool = {
        "apiVersion": f"{GROUP}/v1alpha2",
        "kind": "InClusterIPPool",
        "metadata": {"name": name, "namespace": namespace, "uid": uid},
        "spec": spec,
    }
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": str(uuid.uuid4()),
            "kind": {"group": GROUP, "version": "v1alpha2", "kind": "InClusterIPPool"},
            "resource": {"group": GROUP, "version": "v1alpha2", "resource": "inclusterippools"},
            "name": name,
            "namespace": namespace,
            "operation": operation,
            "object": pool if operation != "DELETE" else None,
            "oldObject": {**pool, "spec": {"addresses": ["10.170.0.0/24"], "prefix": 24}},
        },
    }


async def test_finding_17_a_forged_review_learns_nothing_about_another_namespace(
    cluster: Cluster, tmp_path: Path
) -> None:
    victim = await cluster.namespace("f17-victim")
    await cluster.pool("InClusterIPPool", "vp", victim, addresses=["10.170.0.10-10.170.0.20"], prefix=24)
    serving = cluster.plane.ca.serving(("127.0.0.1", "localhost"))
    (tmp_path / "tls.crt").write_bytes(serving.cert_pem)
    (tmp_path / "tls.key").write_bytes(serving.key_pem)
    opts = options(webhook_host="127.0.0.1", webhook_port=free_port(), webhook_cert_dir=tmp_path)
    context = ssl.create_default_context(cadata=cluster.plane.ca.cert_pem.decode())
    async with running(cluster.client, opts) as run, aiohttp.ClientSession() as http:
        await asyncio.wait_for(run.provider.leading.wait(), 60)
        for name in ("v1", "v2"):
            await cluster.claim(victim, name, "vp")
            await wait_bound(cluster, victim, name)
        assert run.provider.webhook_url is not None
        url = run.provider.webhook_url + "/validate-ipam-cluster-x-k8s-io-v1alpha2-inclusterippool"

        async def ask(review: dict[str, Any]) -> str:
            async with http.post(url, json=review, ssl=context) as resp:
                assert resp.status == 200
                return json.dumps(await resp.json())

        await asyncio.sleep(0.5)  # the webhook's caches have seen both IPAddresses
        tiny = {"addresses": ["10.170.0.200"], "prefix": 24}
        guessed = str(uuid.uuid4())
        update = await ask(forged("UPDATE", victim, "vp", guessed, tiny))
        assert "10.170.0.10" not in update, update
        assert "allocated" not in update, update
        delete = await ask(forged("DELETE", victim, "vp", guessed, tiny))
        assert "allocated" not in delete.lower(), delete

        # The apiserver's own reviews carry the stored UID: in-use protection still answers them.
        real = (await cluster.client.get(IP_POOLS, "vp", victim))["metadata"]["uid"]
        genuine = await ask(forged("UPDATE", victim, "vp", real, tiny))
        assert "10.170.0.10-10.170.0.11" in genuine, genuine
        assert await run.finish() == 0
