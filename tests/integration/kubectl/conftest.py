"""What `make run` starts (`incluster-ipam dev-cluster`: etcd, kube-apiserver with the Cluster API CRDs, the
provider with its webhooks), as a subprocess of its own, plus real pools, claims bound by that provider and
an owner chain claim -> ConfigMap -> Machine -> Cluster (Cluster API's own Machine CRD, fetched by
hack/controlplane/machine-crd.sh). The plugin then runs as a user runs it: the installed `kubectl-ipam`,
and `kubectl ipam` through a real kubectl (hack/kubectl/build.sh) that finds it on PATH.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from incluster_ipam.api.constants import GROUP
from incluster_ipam.devcluster import CURRENT_CAPI
from incluster_ipam.devcluster.assets import ensure_assets
from incluster_ipam.devcluster.process import ManagedProcess
from incluster_ipam.kube import NAMESPACES, KubeClient, Resource
from incluster_ipam.kube.resources import CONFIGMAPS, CRDS

from ..support import eventually

ROOT = Path(__file__).resolve().parents[3]
BIN = Path(sys.executable).parent
PLUGIN = BIN / "kubectl-ipam"
CLI = BIN / "incluster-ipam"

CLAIMS = Resource(GROUP, "v1beta2", "ipaddressclaims", "IPAddressClaim", True)
ADDRESSES = Resource(GROUP, "v1beta2", "ipaddresses", "IPAddress", True)
IP_POOLS = Resource(GROUP, "v1alpha2", "inclusterippools", "InClusterIPPool", True)
GLOBAL_IP_POOLS = Resource(GROUP, "v1alpha2", "globalinclusterippools", "GlobalInClusterIPPool", False)
CLUSTERS = Resource("cluster.x-k8s.io", "v1beta2", "clusters", "Cluster", True)
MACHINES = Resource("cluster.x-k8s.io", "v1beta2", "machines", "Machine", True)


def kubectl_binary() -> Path:
    """The kubectl hack/kubectl/build.sh builds (cached; bootstrap builds it first). Fails loudly."""
    configured = os.environ.get("INCLUSTER_IPAM_KUBECTL")
    if configured:
        path = Path(configured)
    else:
        done = subprocess.run(
            ["bash", str(ROOT / "hack" / "kubectl" / "build.sh")], capture_output=True, text=True, check=False
        )
        if done.returncode != 0:
            raise AssertionError(f"hack/kubectl/build.sh failed ({done.returncode}):\n{done.stderr[-2000:]}")
        path = Path(done.stdout.strip().splitlines()[-1])
    if not os.access(path, os.X_OK):
        raise AssertionError(f"kubectl {path} is missing or not executable (run hack/kubectl/build.sh)")
    return path


@dataclass
class Ran:
    code: int
    out: str
    err: str


@dataclass
class DevCluster:
    """The running `make run` stack, a client to it, and a way to run commands as a user would."""

    kubeconfig: Path
    client: KubeClient
    kubectl: Path
    workdir: Path
    log: Path
    env: dict[str, str] = field(default_factory=dict)

    async def run(self, *argv: str | Path, env: dict[str, str] | None = None, kubeconfig: bool = True) -> Ran:
        """A command with PATH leading to the installed plugin, COLUMNS=120 unless `env` says otherwise,
        and (with `kubeconfig`) KUBECONFIG pointing at the dev cluster."""
        environment = {
            **os.environ,
            "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
            "COLUMNS": "120",
        }
        environment.pop("KUBECONFIG", None)
        if kubeconfig:
            environment["KUBECONFIG"] = str(self.kubeconfig)
        environment.update(env or {})
        proc = await asyncio.create_subprocess_exec(
            *(str(a) for a in argv),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=environment,
        )
        out, err = await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode is not None
        return Ran(proc.returncode, out.decode(), err.decode())

    async def plugin(self, *args: str, env: dict[str, str] | None = None, kubeconfig: bool = True) -> Ran:
        return await self.run(PLUGIN, *args, env=env, kubeconfig=kubeconfig)

    async def namespace(self, prefix: str = "ipam") -> str:
        name = f"{prefix}-{uuid.uuid4().hex[:6]}"
        await self.client.create(
            NAMESPACES, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
        )
        return name

    async def ip_pool(self, namespace: str | None, name: str, **spec: Any) -> None:
        resource = IP_POOLS if namespace else GLOBAL_IP_POOLS
        metadata: dict[str, Any] = {"name": name, **({"namespace": namespace} if namespace else {})}
        body = {"apiVersion": f"{GROUP}/v1alpha2", "kind": resource.kind, "metadata": metadata, "spec": spec}
        await self.client.create(resource, body, namespace)

    async def claim(
        self,
        namespace: str,
        name: str,
        pool: str,
        *,
        kind: str = "InClusterIPPool",
        owner: dict[str, Any] | None = None,
        cluster: str | None = None,
    ) -> None:
        metadata: dict[str, Any] = {"name": name}
        if owner is not None:
            metadata["ownerReferences"] = [owner]
        if cluster is not None:
            metadata["labels"] = {"cluster.x-k8s.io/cluster-name": cluster}
        body = {
            "apiVersion": f"{GROUP}/v1beta2",
            "kind": "IPAddressClaim",
            "metadata": metadata,
            "spec": {"poolRef": {"apiGroup": GROUP, "kind": kind, "name": pool}},
        }
        await self.client.create(CLAIMS, body, namespace)

    async def bound_address(self, namespace: str, claim: str) -> dict[str, Any]:
        """The IPAddress the provider bound to the claim (waits for it)."""

        async def probe() -> dict[str, Any] | None:
            obj = await self.client.get(CLAIMS, claim, namespace)
            ref = ((obj.get("status") or {}).get("addressRef") or {}).get("name")
            return await self.client.get(ADDRESSES, ref, namespace) if ref else None

        return await eventually(probe, 30.0, f"the provider to bind claim {namespace}/{claim}")


async def _install_machine_crd(client: KubeClient) -> None:
    assets = await ensure_assets()
    path = assets.root / "crds" / f"capi-{CURRENT_CAPI}" / "cluster.x-k8s.io_machines.yaml"
    if not path.is_file():
        raise AssertionError(f"{path} is missing: run hack/controlplane/machine-crd.sh {assets.root}")
    await client.create(CRDS, yaml.safe_load(path.read_text()))

    async def served() -> bool:
        try:
            await client.list(MACHINES)
        except Exception:
            return False
        return True

    await eventually(served, 60.0, "the Machine CRD to be served")


@pytest.fixture(scope="session")
async def dev_cluster(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[DevCluster]:
    """`incluster-ipam dev-cluster` as `make run` runs it; fixed ports handed to the OS (tests run beside
    other control planes), everything else as is."""
    workdir = tmp_path_factory.mktemp("make-run")
    kubeconfig = workdir / "kubeconfig"
    log = workdir / "dev-cluster.log"
    argv = [
        str(CLI),
        "dev-cluster",
        "--kubeconfig",
        str(kubeconfig),
        "--workdir",
        str(workdir / "controlplane"),
        "--webhook-port",
        "0",
        "--metrics-bind-address",
        "0",
        "--health-probe-bind-address",
        "0",
    ]
    kubectl = kubectl_binary()
    process = ManagedProcess("incluster-ipam dev-cluster", argv, log)
    await process.start()
    try:

        async def ready() -> bool:
            process.check_alive()
            return "Press Ctrl-C to stop." in log.read_text(errors="replace")

        await eventually(ready, 180.0, f"dev-cluster to be ready (log: {log})")
        async with KubeClient.from_kubeconfig(kubeconfig) as client:
            await _install_machine_crd(client)
            yield DevCluster(kubeconfig, client, kubectl, workdir, log)
        process.check_alive()  # the provider survived every test
    finally:
        await process.stop(grace=30.0)


@dataclass
class Fleet:
    """What the tests look at: one namespace with a pool, a global IPv6 pool, claims bound by the provider,
    one claim owned through a ConfigMap by a Machine of Cluster "prod", one whose owner is gone."""

    ns: str
    other_ns: str
    global_pool: str
    addresses: dict[str, str]  # claim name -> address the provider gave it


@pytest.fixture(scope="session")
async def fleet(dev_cluster: DevCluster) -> Fleet:
    d = dev_cluster
    ns, other = await d.namespace(), await d.namespace()
    global_pool = f"shared-v6-{uuid.uuid4().hex[:4]}"
    await d.ip_pool(ns, "workers", addresses=["10.77.0.10-10.77.0.20"], prefix=24, gateway="10.77.0.1")
    await d.ip_pool(other, "edge", addresses=["192.168.50.0/29"], prefix=24)
    await d.ip_pool(None, global_pool, addresses=["2001:db8:77::/120"], prefix=64)
    cluster = {
        "apiVersion": "cluster.x-k8s.io/v1beta2",
        "kind": "Cluster",
        "metadata": {"name": "prod"},
        "spec": {"paused": False},
    }
    await d.client.create(CLUSTERS, cluster, ns)
    machine = await d.client.create(
        MACHINES,
        {
            "apiVersion": "cluster.x-k8s.io/v1beta2",
            "kind": "Machine",
            "metadata": {"name": "prod-md-0-x7k2p"},
            "spec": {
                "clusterName": "prod",
                "bootstrap": {"dataSecretName": "prod-md-0-x7k2p-bootstrap"},
                "infrastructureRef": {
                    "apiGroup": "infrastructure.example.io",
                    "kind": "ExampleMachine",
                    "name": "vm-1",
                },
            },
        },
        ns,
    )
    vm = await d.client.create(
        CONFIGMAPS,
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": "vm-1",
                "ownerReferences": [
                    {
                        "apiVersion": "cluster.x-k8s.io/v1beta2",
                        "kind": "Machine",
                        "name": machine["metadata"]["name"],
                        "uid": machine["metadata"]["uid"],
                        "controller": True,
                    }
                ],
            },
        },
        ns,
    )
    owner = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "name": "vm-1",
        "uid": vm["metadata"]["uid"],
        "controller": True,
    }
    gone = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "name": "vm-gone",
        "uid": str(uuid.uuid4()),
        "controller": True,
    }
    await d.claim(ns, "vm-1-eth0", "workers", owner=owner)
    await d.claim(ns, "vm-2-eth0", "workers", owner=gone, cluster="prod")
    await d.claim(ns, "lb", "workers")
    await d.claim(ns, "vm-1-eth1", global_pool, kind="GlobalInClusterIPPool", owner=owner)
    await d.claim(other, "edge-1", "edge")
    addresses = {}
    for namespace, name in [
        (ns, "vm-1-eth0"),
        (ns, "vm-2-eth0"),
        (ns, "lb"),
        (ns, "vm-1-eth1"),
        (other, "edge-1"),
    ]:
        addresses[name] = (await d.bound_address(namespace, name))["spec"]["address"]
    return Fleet(ns, other, global_pool, addresses)
