"""A control plane with kube-controller-manager (garbage collector, namespace controller) and our provider
as a process with its webhooks registered: what the deletion and restore workflows run against.

The CRDs the collector acts on (ours, Cluster API's Cluster, Machine, claims and IPAddresses, and a stand-in
infrastructure machine kind) are installed before the controller manager starts: it discovers new kinds only
every 30 s. Owner chains are built the way vSphere, Proxmox and Metal3 build them: Cluster -> Machine ->
infrastructure machine -> claim, every link a controller reference with blockOwnerDeletion, and the claim
labelled with the cluster's name (never `spec.clusterName`).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from incluster_ipam.api.constants import GROUP
from incluster_ipam.api.crds import crds
from incluster_ipam.capi.objects import CLUSTER_NAME_LABEL
from incluster_ipam.devcluster import CURRENT_CAPI, ControlPlane, ensure_assets
from incluster_ipam.devcluster.controlplane import free_port
from incluster_ipam.kube import ApiError, KubeClient, Resource
from incluster_ipam.webhooks.registration import install_webhooks
from tests.integration.faults import invariants
from tests.integration.faults.helpers import CLAIMS, Cluster, ProviderProcess
from tests.integration.support import eventually

ROOT = Path(__file__).resolve().parents[2]
CLUSTERS = Resource("cluster.x-k8s.io", "v1beta2", "clusters", "Cluster", True)
MACHINES = Resource("cluster.x-k8s.io", "v1beta2", "machines", "Machine", True)
INFRA_GROUP = "infrastructure.e2e.example"
INFRA_MACHINES = Resource(INFRA_GROUP, "v1", "e2emachines", "E2EMachine", True)


def infra_machine_crd() -> dict[str, Any]:
    """A stand-in for an infrastructure provider's machine kind (VSphereVM, ProxmoxMachine, Metal3Data)."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"e2emachines.{INFRA_GROUP}"},
        "spec": {
            "group": INFRA_GROUP,
            "scope": "Namespaced",
            "names": {"plural": "e2emachines", "singular": "e2emachine", "kind": "E2EMachine"},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
                    },
                }
            ],
        },
    }


async def machine_crd() -> dict[str, Any]:
    """Cluster API's Machine CRD, fetched into the control-plane cache by hack/controlplane/machine-crd.sh."""
    assets = await ensure_assets()
    script = ROOT / "hack" / "controlplane" / "machine-crd.sh"
    proc = await asyncio.create_subprocess_exec(
        "bash", str(script), str(assets.root), stderr=asyncio.subprocess.PIPE
    )
    _, err = await asyncio.wait_for(proc.communicate(), 300)
    if proc.returncode != 0:
        raise AssertionError(f"hack/controlplane/machine-crd.sh failed:\n{err.decode()[-2000:]}")
    path = assets.root / "crds" / f"capi-{CURRENT_CAPI}" / "cluster.x-k8s.io_machines.yaml"
    loaded: dict[str, Any] = yaml.safe_load(path.read_text())
    return loaded


def owner_ref(obj: dict[str, Any]) -> dict[str, Any]:
    """A controller reference with blockOwnerDeletion, as Cluster API and its providers set them."""
    return {
        "apiVersion": obj["apiVersion"],
        "kind": obj["kind"],
        "name": obj["metadata"]["name"],
        "uid": obj["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


@dataclass
class Stack:
    plane: ControlPlane
    cluster: Cluster
    provider: ProviderProcess

    @property
    def client(self) -> KubeClient:
        return self.cluster.client

    async def capi_cluster(self, namespace: str, name: str) -> dict[str, Any]:
        body = {
            "apiVersion": CLUSTERS.api_version,
            "kind": "Cluster",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"paused": False},  # the schema wants at least one field
        }
        return await self.client.create(CLUSTERS, body, namespace)

    async def machine_with_claims(
        self, namespace: str, cluster: dict[str, Any], name: str, pools: list[tuple[str, str]]
    ) -> list[str]:
        """Machine (owned by the Cluster) -> E2EMachine -> one claim per (pool, kind); the claims' names."""
        cluster_name = cluster["metadata"]["name"]
        labels = {CLUSTER_NAME_LABEL: cluster_name}
        infra_ref = {"apiGroup": INFRA_GROUP, "kind": "E2EMachine", "name": name}
        machine = await self.client.create(
            MACHINES,
            {
                "apiVersion": MACHINES.api_version,
                "kind": "Machine",
                "metadata": {
                    "name": name,
                    "namespace": namespace,
                    "labels": labels,
                    "ownerReferences": [{**owner_ref(cluster), "controller": False}],
                },
                "spec": {
                    "clusterName": cluster_name,
                    "bootstrap": {"dataSecretName": f"{name}-bootstrap"},
                    "infrastructureRef": infra_ref,
                },
            },
            namespace,
        )
        infra = await self.client.create(
            INFRA_MACHINES,
            {
                "apiVersion": INFRA_MACHINES.api_version,
                "kind": "E2EMachine",
                "metadata": {
                    "name": name,
                    "namespace": namespace,
                    "labels": labels,
                    "ownerReferences": [owner_ref(machine)],
                },
                "spec": {},
            },
            namespace,
        )
        names = []
        for index, (pool, kind) in enumerate(pools):
            claim_name = f"{name}-{index}"
            await self.client.create(
                CLAIMS,
                {
                    "apiVersion": CLAIMS.api_version,
                    "kind": "IPAddressClaim",
                    "metadata": {
                        "name": claim_name,
                        "namespace": namespace,
                        "labels": labels,
                        "ownerReferences": [owner_ref(infra)],
                    },
                    "spec": {"poolRef": {"apiGroup": GROUP, "kind": kind, "name": pool}},
                },
                namespace,
            )
            names.append(claim_name)
        return names

    async def settle(self, namespace: str | None, label: str) -> invariants.Verdict:
        """Audit (grace 0) plus the recount of every pool's status, until clean; prints one line."""
        verdict = await invariants.settle(self.client, namespace, within=60.0, label=label)
        print(f"{label}: {invariants.summary(verdict)}", flush=True)
        return verdict

    async def gone(self, resource: Resource, name: str, namespace: str | None, within: float) -> float:
        """Wait until the object is gone; seconds taken."""
        started = time.monotonic()

        async def absent() -> bool:
            try:
                await self.client.get(resource, name, namespace)
            except ApiError as exc:
                if exc.status == 404:
                    return True
                raise
            return False

        await eventually(absent, within, f"{resource.kind} {namespace}/{name} to be gone")
        return time.monotonic() - started


async def wait_webhook_port(port: int, provider: ProviderProcess, within: float = 60.0) -> None:
    deadline = time.monotonic() + within
    while True:
        provider.check_alive()
        with contextlib.suppress(OSError):
            _reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            await writer.wait_closed()
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"the provider's webhook server did not listen:\n{provider.log_tail()}")
        await asyncio.sleep(0.1)


@contextlib.asynccontextmanager
async def gc_stack(workdir: Path) -> AsyncIterator[Stack]:
    """The control plane with the controller manager, the provider process with webhooks registered."""
    started = time.monotonic()
    extra = [*crds(""), await machine_crd(), infra_machine_crd()]
    async with ControlPlane(extra_crds=extra, workdir=workdir / "cp", controller_manager=True) as plane:
        certs = workdir / "certs"
        certs.mkdir()
        serving = plane.ca.serving(("127.0.0.1", "localhost"))
        (certs / "tls.crt").write_bytes(serving.cert_pem)
        (certs / "tls.key").write_bytes(serving.key_pem)
        port = free_port()
        provider = ProviderProcess(
            "provider",
            plane.kubeconfig_path,
            workdir,
            extra=["--webhook-host=127.0.0.1", f"--webhook-port={port}", f"--webhook-cert-dir={certs}"],
        )
        async with KubeClient.from_kubeconfig(plane.kubeconfig_path) as client:
            await provider.start()
            try:
                await wait_webhook_port(port, provider)
                await install_webhooks(
                    client, f"https://127.0.0.1:{port}", plane.ca.cert_pem, wait_seconds=60
                )
                print(
                    f"stack up in {time.monotonic() - started:.1f} s (control plane "
                    f"{plane.startup_seconds:.1f} s, of which kube-controller-manager "
                    f"{plane.controller_manager_seconds:.1f} s)",
                    flush=True,
                )
                yield Stack(plane, Cluster(plane, client), provider)
            finally:
                await provider.stop()
