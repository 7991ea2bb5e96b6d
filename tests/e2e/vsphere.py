"""A vSphere lab on loopback: our vCenter simulator (hack/vcsim), Cluster API Provider vSphere's manager
(hack/capv) and an IPAM provider, each a process, against one local control plane.

The tests (tests/e2e/test_vsphere.py) and the benchmark (bench/vsphere.py) share it. Nothing here creates an
IPAddressClaim: CAPV does, from each VSphereMachine's `network.devices[].addressesFromPools`, as it does for
real users. Two Cluster API core controllers are not run, and the lab does their one step each that CAPV
relies on: it marks the Cluster's infrastructure provisioned (the Cluster controller) and deletes the claims
whose VSphereVM is gone (kube-controller-manager's garbage collector; see `collect_garbage`).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from incluster_ipam.devcluster import ControlPlane
from incluster_ipam.devcluster.assets import CURRENT_CAPI, ensure_assets
from incluster_ipam.devcluster.controlplane import free_port
from incluster_ipam.devcluster.process import ManagedProcess, log_tail
from incluster_ipam.kube import NAMESPACES, ApiError, KubeClient, Resource
from incluster_ipam.kube.errors import is_not_found
from incluster_ipam.kube.resources import SECRETS

REPO = Path(__file__).resolve().parents[2]
INFRA = "infrastructure.cluster.x-k8s.io"
CORE = "cluster.x-k8s.io"
IPAM = "ipam.cluster.x-k8s.io"
CLUSTER_NAME_LABEL = "cluster.x-k8s.io/cluster-name"

CLUSTERS = Resource(CORE, "v1beta2", "clusters", "Cluster", True)
MACHINES = Resource(CORE, "v1beta2", "machines", "Machine", True)
VSPHERE_CLUSTERS = Resource(INFRA, "v1beta2", "vsphereclusters", "VSphereCluster", True)
VSPHERE_MACHINES = Resource(INFRA, "v1beta2", "vspheremachines", "VSphereMachine", True)
VSPHERE_VMS = Resource(INFRA, "v1beta2", "vspherevms", "VSphereVM", True)
CLAIMS = Resource(IPAM, "v1beta2", "ipaddressclaims", "IPAddressClaim", True)
ADDRESSES = Resource(IPAM, "v1beta2", "ipaddresses", "IPAddress", True)

#: The simulator's inventory (govmomi's VPX model): the VM CAPV clones and where the clones go.
TEMPLATE = "DC0_H0_VM0"
PLACEMENT = {
    "datacenter": "DC0",
    "datastore": "LocalDS_0",
    "folder": "/DC0/vm",
    "resourcePool": "/DC0/host/DC0_C0/Resources",
}
NETWORKS = ("VM Network", "DC0_DVPG0")

#: A pool reference as CAPV's `addressesFromPools` takes it: (kind, name).
PoolRef = tuple[str, str]


async def build(script: str, within: float = 1800.0) -> str:
    """Run one of the repo's cached build scripts (`hack/<name>/build.sh`); its last stdout line.

    Fails loudly with the script's stderr: a component that cannot be built fails the test."""
    proc = await asyncio.create_subprocess_exec(
        "bash",
        str(REPO / script),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), within)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise AssertionError(f"{script} did not finish within {within:.0f} s") from None
    lines = out.decode().strip().splitlines()
    if proc.returncode != 0 or not lines:
        tail = "\n".join(err.decode(errors="replace").splitlines()[-30:])
        raise AssertionError(f"{script} failed (exit {proc.returncode}):\n{tail}")
    return lines[-1]


async def lab_crds(provider_crds: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The CRDs a vSphere lab installs besides the control plane's Cluster API ones: the provider's pools,
    Cluster API's Machine, and CAPV's own (config/default/crd/bases, as hack/capv/build.sh copies them)."""
    capv = Path(await build("hack/capv/build.sh"))
    assets = await ensure_assets()
    await build_quiet(["bash", str(REPO / "hack/controlplane/machine-crd.sh"), str(assets.root)])
    machine = assets.root / "crds" / f"capi-{CURRENT_CAPI}" / "cluster.x-k8s.io_machines.yaml"
    docs = [dict(crd) for crd in provider_crds]
    docs.append(yaml.safe_load(machine.read_text()))
    docs += [yaml.safe_load(p.read_text()) for p in sorted((capv / "crds").glob("*.yaml"))]
    return docs


async def build_quiet(argv: Sequence[str]) -> None:
    proc = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
    )
    _, err = await asyncio.wait_for(proc.communicate(), 600)
    if proc.returncode != 0:
        raise AssertionError(f"{' '.join(argv)} failed:\n{err.decode(errors='replace')[-2000:]}")


# ---- the simulator -----------------------------------------------------------------------------------------


class Simulator:
    """`vcsim serve` (hack/vcsim/main.go): a vCenter on a free loopback port with its own certificate."""

    def __init__(self, binary: Path, workdir: Path) -> None:
        self.binary = binary
        self.info_path = workdir / "vcsim.json"
        self.log_path = workdir / "vcsim.log"
        self.process = ManagedProcess(
            "vcsim",
            [str(binary), "serve", "--listen", "127.0.0.1:0", "--out", str(self.info_path)],
            self.log_path,
        )
        self.info: dict[str, str] = {}

    async def start(self) -> None:
        await self.process.start()
        deadline = time.monotonic() + 60
        while not self.info_path.exists():
            self.process.check_alive()
            if time.monotonic() > deadline:
                raise self.process.failure("wrote no connection info within 60 s")
            await asyncio.sleep(0.05)
        self.info = json.loads(self.info_path.read_text())

    async def stop(self) -> None:
        await self.process.stop()

    async def extra_config(self) -> dict[str, dict[str, str]]:
        """Every VM's `guestinfo.*` extraConfig, read through the vSphere API: {vm name: {key: value}}."""
        proc = await asyncio.create_subprocess_exec(
            str(self.binary),
            "extraconfig",
            "--info",
            str(self.info_path),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(proc.communicate(), 60)
        if proc.returncode != 0:
            raise AssertionError(
                f"vcsim extraconfig failed: {err.decode(errors='replace')}\n"
                f"simulator log:\n{log_tail(self.log_path)}"
            )
        result: dict[str, dict[str, str]] = json.loads(out)
        return result


def metadata_text(extra: Mapping[str, str]) -> str:
    """A VM's `guestinfo.metadata` as text (decoded from base64 as CAPV writes it)."""
    raw = extra.get("guestinfo.metadata", "")
    if extra.get("guestinfo.metadata.encoding", "").startswith("base64"):
        raw = base64.b64decode(raw).decode()
    return raw


def metadata_addresses(extra: Mapping[str, str]) -> list[list[str]] | None:
    """The addresses per network device in a VM's `guestinfo.metadata` (cloud-init network config v2,
    base64 as CAPV writes it), in device order; None if the VM has no metadata yet."""
    if not extra.get("guestinfo.metadata"):
        return None
    doc = yaml.safe_load(metadata_text(extra)) or {}
    ethernets = ((doc.get("network") or {}).get("ethernets")) or {}
    keys = sorted(ethernets, key=lambda k: int(k[2:]) if k[2:].isdigit() else k)
    return [list(ethernets[k].get("addresses") or []) for k in keys]


# ---- CAPV --------------------------------------------------------------------------------------------------


class CapvManager:
    """CAPV's manager as it runs in a pod, minus what a pod gives it: a kubeconfig for the control plane,
    a self-signed serving certificate for its webhook server (which cannot be turned off; its webhooks are
    not registered), the vCenter credentials file, no leader election, diagnostics and health on free
    loopback ports."""

    def __init__(self, cache: Path, plane: ControlPlane, simulator: Simulator, workdir: Path) -> None:
        self.log_path = workdir / "capv.log"
        certs = workdir / "capv-certs"
        certs.mkdir(parents=True, exist_ok=True)
        serving = plane.ca.serving(("127.0.0.1", "localhost"))
        (certs / "tls.crt").write_bytes(serving.cert_pem)
        (certs / "tls.key").write_bytes(serving.key_pem)
        credentials = workdir / "capv-credentials.yaml"
        credentials.write_text(
            yaml.safe_dump({"username": simulator.info["username"], "password": simulator.info["password"]})
        )
        credentials.chmod(0o600)
        self.health_port = free_port()
        argv = [
            str(cache / "bin" / "manager"),
            f"--kubeconfig={plane.kubeconfig_path}",
            "--leader-elect=false",
            f"--credentials-file={credentials}",
            f"--webhook-port={free_port()}",
            f"--webhook-cert-dir={certs}",
            f"--health-addr=127.0.0.1:{self.health_port}",
            f"--diagnostics-address=127.0.0.1:{free_port()}",
            "--insecure-diagnostics",
            "--skip-crd-migration-phases=StorageVersionMigration,CleanupManagedFields",
            "--v=2",
        ]
        self.process = ManagedProcess("capv", argv, self.log_path, env={"POD_NAMESPACE": "capv-system"})

    async def start(self, within: float = 120.0) -> None:
        await self.process.start()
        url = f"http://127.0.0.1:{self.health_port}/readyz"
        deadline = time.monotonic() + within
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as http:
            while True:
                self.process.check_alive()
                with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                    async with http.get(url) as response:
                        if response.status == 200:
                            return
                if time.monotonic() > deadline:
                    raise self.process.failure(f"was not ready within {within:.0f} s")
                await asyncio.sleep(0.2)

    async def stop(self) -> None:
        await self.process.stop(grace=10)

    def log_tail(self, lines: int = 40) -> str:
        return log_tail(self.log_path, lines)


# ---- the lab -----------------------------------------------------------------------------------------------


@dataclass
class Lab:
    """One control plane with the simulator, CAPV and a provider running; builds the objects a vSphere user
    (and Cluster API core) would create, and reads back what CAPV and the simulator made of them."""

    plane: ControlPlane
    client: KubeClient
    simulator: Simulator
    capv: CapvManager
    provider_logs: Callable[[], str]
    global_pools: list[str] = field(default_factory=list)
    vm_names: set[str] = field(default_factory=set)

    def logs(self) -> str:
        """Log tails of CAPV, the provider and the simulator, for assertion messages."""
        return (
            f"\n--- CAPV ---\n{self.capv.log_tail()}\n--- provider ---\n{self.provider_logs()}"
            f"\n--- vcsim ---\n{log_tail(self.simulator.log_path, 10)}"
        )

    def check_alive(self) -> None:
        self.capv.process.check_alive()
        self.simulator.process.check_alive()

    async def namespace(self, stem: str) -> str:
        name = f"{stem}-{os.urandom(4).hex()}"
        await self.client.create(NAMESPACES, {"metadata": {"name": name}})
        return name

    # ---- pools -------------------------------------------------------------------------------------

    async def pool(self, kind: str, name: str, namespace: str | None, **spec: Any) -> None:
        namespaced = kind == "InClusterIPPool"
        resource = Resource(IPAM, "v1alpha2", kind.lower() + "s", kind, namespaced)
        metadata: dict[str, Any] = {"name": name}
        if namespaced:
            metadata["namespace"] = namespace
        else:
            self.global_pools.append(name)
        body = {"apiVersion": f"{IPAM}/v1alpha2", "kind": kind, "metadata": metadata, "spec": spec}
        await self.client.create(resource, body, namespace if namespaced else None)

    async def cleanup(self) -> None:
        """Delete the global pools (they outlive namespaces)."""
        resource = Resource(IPAM, "v1alpha2", "globalinclusterippools", "GlobalInClusterIPPool", False)
        for name in self.global_pools:
            with contextlib.suppress(ApiError):
                await self.client.delete(resource, name)
        self.global_pools.clear()

    # ---- clusters and machines ---------------------------------------------------------------------

    async def cluster(self, namespace: str, name: str, *, paused: bool = False) -> None:
        """A Cluster whose infrastructure is a VSphereCluster pointing at the simulator, marked provisioned
        (the Cluster controller's job once the VSphereCluster is ready; that controller does not run here)."""
        info = self.simulator.info
        cluster = await self.client.create(
            CLUSTERS,
            {
                "apiVersion": f"{CORE}/v1beta2",
                "kind": "Cluster",
                "metadata": {"name": name, "namespace": namespace},
                "spec": {
                    "paused": paused,
                    "infrastructureRef": {"apiGroup": INFRA, "kind": "VSphereCluster", "name": name},
                },
            },
            namespace,
        )
        await self.client.patch(
            CLUSTERS,
            name,
            {"status": {"initialization": {"infrastructureProvisioned": True}}},
            namespace,
            subresource="status",
        )
        owner = {
            "apiVersion": f"{CORE}/v1beta2",
            "kind": "Cluster",
            "name": name,
            "uid": cluster["metadata"]["uid"],
        }
        await self.client.create(
            VSPHERE_CLUSTERS,
            {
                "apiVersion": f"{INFRA}/v1beta2",
                "kind": "VSphereCluster",
                "metadata": {"name": name, "namespace": namespace, "ownerReferences": [owner]},
                "spec": {"server": info["host"], "thumbprint": info["thumbprint"]},
            },
            namespace,
        )

    async def set_paused(self, namespace: str, cluster: str, paused: bool) -> None:
        await self.client.patch(CLUSTERS, cluster, {"spec": {"paused": paused}}, namespace)

    async def machine(
        self, namespace: str, cluster: str, name: str, devices: Sequence[Sequence[PoolRef]]
    ) -> float:
        """A Machine with its bootstrap data Secret and a VSphereMachine owned by it, one network device per
        entry of `devices` (each taking addresses from the pools listed). Returns time.monotonic() at the
        VSphereMachine's create.

        Names are unique across the lab, not only per namespace: the VM gets the machine's name in the one
        folder of the simulator, and CAPV adopts an existing VM found at the same inventory path (two
        VSphereVMs would then fight over one VM)."""
        assert name not in self.vm_names, f"VM name {name} already used in this lab"
        self.vm_names.add(name)
        labels = {CLUSTER_NAME_LABEL: cluster}
        secret = f"{name}-bootstrap"
        await self.client.create(
            SECRETS,
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": secret, "namespace": namespace, "labels": labels},
                "stringData": {"value": "#cloud-config\n", "format": "cloud-config"},
            },
            namespace,
        )
        machine = await self.client.create(
            MACHINES,
            {
                "apiVersion": f"{CORE}/v1beta2",
                "kind": "Machine",
                "metadata": {"name": name, "namespace": namespace, "labels": labels},
                "spec": {
                    "clusterName": cluster,
                    "bootstrap": {"dataSecretName": secret},
                    "infrastructureRef": {"apiGroup": INFRA, "kind": "VSphereMachine", "name": name},
                },
            },
            namespace,
        )
        owner = {
            "apiVersion": f"{CORE}/v1beta2",
            "kind": "Machine",
            "name": name,
            "uid": machine["metadata"]["uid"],
            "controller": True,
            "blockOwnerDeletion": True,
        }
        body = {
            "apiVersion": f"{INFRA}/v1beta2",
            "kind": "VSphereMachine",
            "metadata": {"name": name, "namespace": namespace, "labels": labels, "ownerReferences": [owner]},
            "spec": vsphere_machine_spec(devices),
        }
        started = time.monotonic()
        await self.client.create(VSPHERE_MACHINES, body, namespace)
        return started

    async def delete_machine(self, namespace: str, name: str) -> None:
        """Delete a machine as the Machine controller does: the VSphereMachine first, then, once CAPV has let
        it go (it needs the Machine until then), the Machine."""
        await self.begin_delete_machine(namespace, name)
        await self.finish_delete_machine(namespace, name)

    async def begin_delete_machine(self, namespace: str, name: str) -> None:
        await self.client.delete(VSPHERE_MACHINES, name, namespace)

    async def finish_delete_machine(self, namespace: str, name: str, within: float = 60.0) -> None:
        deadline = time.monotonic() + within
        while await self.get_or_none(VSPHERE_MACHINES, name, namespace) is not None:
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"VSphereMachine {namespace}/{name} not deleted in {within:.0f} s{self.logs()}"
                )
            await asyncio.sleep(0.1)
        await self.client.delete(MACHINES, name, namespace)

    async def collect_garbage(self, namespace: str) -> list[str]:
        """The garbage collector's rule for claims, as kube-controller-manager applies it: delete every claim
        all of whose owners are gone (CAPV's claims have one owner, their VSphereVM). Returns their names."""
        vms = {vm["metadata"]["uid"] for vm in (await self.client.list(VSPHERE_VMS, namespace)).items}
        deleted = []
        for claim in (await self.client.list(CLAIMS, namespace)).items:
            owners = claim["metadata"].get("ownerReferences") or []
            if owners and not any(o.get("uid") in vms for o in owners):
                with contextlib.suppress(ApiError):
                    await self.client.delete(CLAIMS, claim["metadata"]["name"], namespace)
                deleted.append(claim["metadata"]["name"])
        return deleted

    # ---- reading back ------------------------------------------------------------------------------

    async def audit(self) -> dict[str, Any]:
        """`incluster-ipam audit --grace-seconds 0 --json` over the whole cluster, as an operator runs it;
        its JSON report (`clean`, `findings`, `scanned`). Exit code 1 means findings, 2 an error."""
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "incluster_ipam.cli",
            "audit",
            "--kubeconfig",
            str(self.plane.kubeconfig_path),
            "--grace-seconds",
            "0",
            "--json",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(proc.communicate(), 60)
        if proc.returncode not in (0, 1):
            raise AssertionError(f"incluster-ipam audit failed ({proc.returncode}): {err.decode()[-2000:]}")
        report: dict[str, Any] = json.loads(out)
        return report

    async def get_or_none(self, resource: Resource, name: str, namespace: str) -> dict[str, Any] | None:
        try:
            return await self.client.get(resource, name, namespace)
        except ApiError as exc:
            if is_not_found(exc):
                return None
            raise

    async def claims(self, namespace: str) -> dict[str, dict[str, Any]]:
        return {c["metadata"]["name"]: c for c in (await self.client.list(CLAIMS, namespace)).items}

    async def addresses(self, namespace: str) -> dict[str, dict[str, Any]]:
        return {a["metadata"]["name"]: a for a in (await self.client.list(ADDRESSES, namespace)).items}

    async def wait_metadata(
        self, names: Iterable[str], devices: int, within: float = 90.0
    ) -> dict[str, tuple[float, list[list[str]]]]:
        """Poll the simulator until every VM in `names` has addresses on all `devices` in its metadata.
        Returns {vm: (time.monotonic() when first seen, addresses per device)}."""
        pending = set(names)
        seen: dict[str, tuple[float, list[list[str]]]] = {}
        deadline = time.monotonic() + within
        while pending:
            self.check_alive()
            extra = await self.simulator.extra_config()
            now = time.monotonic()
            for name in list(pending):
                addresses = metadata_addresses(extra.get(name, {}))
                if addresses is not None and len(addresses) >= devices and all(addresses[:devices]):
                    seen[name] = (now, addresses)
                    pending.discard(name)
            if not pending:
                break
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"no addresses in the VM metadata of {sorted(pending)} within {within:.0f} s{self.logs()}"
                )
            await asyncio.sleep(0.1)
        return seen


def vsphere_machine_spec(devices: Sequence[Sequence[PoolRef]]) -> dict[str, Any]:
    """A VSphereMachine spec cloning the simulator's template, one device per entry, addresses from pools."""
    return {
        "template": TEMPLATE,
        **PLACEMENT,
        "network": {
            "devices": [
                {
                    "networkName": NETWORKS[i % len(NETWORKS)],
                    "addressesFromPools": [{"apiGroup": IPAM, "kind": k, "name": n} for k, n in pools],
                }
                for i, pools in enumerate(devices)
            ]
        },
    }


def condition(obj: Mapping[str, Any] | None, kind: str) -> dict[str, Any] | None:
    """One of an object's `status.conditions` by type."""
    for cond in ((obj or {}).get("status") or {}).get("conditions") or []:
        if cond.get("type") == kind:
            return dict(cond)
    return None


@contextlib.asynccontextmanager
async def vsphere_lab(
    workdir: Path,
    provider_crds: Iterable[Mapping[str, Any]],
    start_provider: Callable[[ControlPlane, Path], Any],
) -> AsyncIterator[Lab]:
    """Start the control plane, the simulator, CAPV and a provider (`start_provider(plane, workdir)` returns
    an object with async `start()`/`stop()` and `log_tail()`); stop them all, also on failure."""
    vcsim_binary = Path(await build("hack/vcsim/build.sh"))
    capv_cache = Path(await build("hack/capv/build.sh"))
    crds = await lab_crds(provider_crds)
    async with contextlib.AsyncExitStack() as stack:
        plane = await stack.enter_async_context(
            ControlPlane(extra_crds=crds, workdir=workdir / "controlplane")
        )
        client = await stack.enter_async_context(KubeClient.from_kubeconfig(plane.kubeconfig_path))
        await client.create(NAMESPACES, {"metadata": {"name": "capv-system"}})
        simulator = Simulator(vcsim_binary, workdir)
        stack.push_async_callback(simulator.stop)
        await simulator.start()
        capv = CapvManager(capv_cache, plane, simulator, workdir)
        stack.push_async_callback(capv.stop)
        await capv.start()
        provider = start_provider(plane, workdir)
        stack.push_async_callback(provider.stop)
        await provider.start()
        lab = Lab(plane, client, simulator, capv, provider.log_tail)
        stack.push_async_callback(lab.cleanup)
        yield lab
