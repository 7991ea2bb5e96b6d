"""The user's install on a real node: `NodeCluster` (kubelet, containerd, kube-proxy, scheduler, controller
manager), every image imported into its containerd (ours from the Dockerfile, cert-manager's and Cluster
API's built from their modules), then `clusterctl init --ipam in-cluster` from a local repository, which
installs cert-manager from its own release manifest and Cluster API's providers and ours from their
components files, unchanged.

The one test-only difference from a user's machine: our image carries a local name (`localhost/...`) that
the release is rendered with (`hack/release.py --image-repository`), as a user's air-gapped registry would.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from incluster_ipam.devcluster.node import NodeCluster
from incluster_ipam.kube import KubeClient, Resource

from ..integration.support import eventually
from .clusterctl import RELEASE_VERSION, Clusterctl, capi_providers, our_provider
from .providers import ROOT, build

SYSTEM = "capi-ipam-in-cluster-system"
DEPLOYMENT = "capi-ipam-in-cluster-controller-manager"
IMAGE_REPOSITORY = "localhost/incluster-ipam"
IMAGE = f"{IMAGE_REPOSITORY}:v{RELEASE_VERSION}"
BUILT_IMAGE = "localhost/incluster-ipam:dev"  # hack/image/build.sh's name
CERT_MANAGER_VERSION = "v1.21.2"
PODS = Resource("", "v1", "pods", "Pod", True)
DEPLOYMENTS = Resource("apps", "v1", "deployments", "Deployment", True)
LEASES = Resource("coordination.k8s.io", "v1", "leases", "Lease", True)
SECRETS = Resource("", "v1", "secrets", "Secret", True)
CERTIFICATES = Resource("cert-manager.io", "v1", "certificates", "Certificate", True)
SELECTOR = "cluster.x-k8s.io/provider=ipam-in-cluster"


@dataclass
class Installed:
    """A node with everything `clusterctl init` installed."""

    node: NodeCluster
    client: KubeClient
    clusterctl: Clusterctl
    kubeconfig: Path
    kubectl: Path
    repository: Path = Path()
    timings: dict[str, float] = field(default_factory=dict)
    init_output: str = ""

    async def kubectl_run(self, *args: str, limit: float = 120.0) -> str:
        proc = await asyncio.create_subprocess_exec(
            str(self.kubectl),
            f"--kubeconfig={self.kubeconfig}",
            *args,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        out, _ = await asyncio.wait_for(proc.communicate(), limit)
        text = out.decode()
        assert proc.returncode == 0, f"kubectl {' '.join(args)} exited {proc.returncode}:\n{text[-3000:]}"
        return text

    async def provider_pods(self) -> list[dict[str, Any]]:
        pods = await self.client.list(PODS, SYSTEM, label_selector=SELECTOR)
        return [p for p in pods.items if not p["metadata"].get("deletionTimestamp")]

    async def ready_pods(self, count: int = 2, within: float = 180.0) -> list[dict[str, Any]]:
        """Wait until exactly `count` provider pods exist and are Ready (their readiness probe passed)."""

        async def probe() -> list[dict[str, Any]] | None:
            pods = await self.provider_pods()
            ready = [p for p in pods if _condition(p, "Ready")]
            return ready if len(ready) == count and len(pods) == count else None

        return await eventually(probe, within, f"{count} Ready provider pods")

    async def leader(self) -> str:
        """The pod holding the provider's lease (its identity is the pod name plus a suffix)."""

        async def probe() -> str | None:
            for lease in (await self.client.list(LEASES, SYSTEM)).items:
                holder = (lease.get("spec") or {}).get("holderIdentity") or ""
                for pod in await self.provider_pods():
                    if holder.startswith(pod["metadata"]["name"]):
                        return str(pod["metadata"]["name"])
            return None

        return await eventually(probe, 60, "a provider pod to hold the lease")


def _condition(obj: dict[str, Any], kind: str) -> bool:
    conditions = (obj.get("status") or {}).get("conditions") or []
    return any(c.get("type") == kind and c.get("status") == "True" for c in conditions)


@dataclass(frozen=True)
class Artifacts:
    """Everything built for the install: image archives and the directories clusterctl reads."""

    ours: Path
    cert_manager: Path
    cert_manager_images: Path
    capi: Path

    @property
    def archives(self) -> list[Path]:
        found = [self.ours, *sorted((self.cert_manager_images / "images").glob("*.oci.tar"))]
        found += sorted((self.capi / "images").glob("*.oci.tar"))
        return found


async def artifacts() -> Artifacts:
    ours = Path(await asyncio.to_thread(build, "hack/image/build.sh"))
    cert_manager = Path(await asyncio.to_thread(build, "hack/cert-manager/build.sh"))
    cert_manager_images = Path(await asyncio.to_thread(build, "hack/cert-manager/binaries/build.sh"))
    capi = Path(await asyncio.to_thread(build, "hack/clusterctl/node-repository.sh"))
    archives = Artifacts(ours, cert_manager, cert_manager_images, capi).archives
    assert len(archives) == 7, (
        f"expected 7 image archives (ours, cert-manager's 3, Cluster API's 3): {archives}"
    )
    return Artifacts(ours, cert_manager, cert_manager_images, capi)


async def render_release(repository: Path, version: str) -> None:
    """`make release` of `version` into clusterctl's local repository, image named for the node."""
    await asyncio.to_thread(
        subprocess.run,
        [
            sys.executable,
            str(ROOT / "hack" / "release.py"),
            f"--version={version}",
            f"--out={repository.parent / ('out-' + version)}",
            f"--repository={repository}",
            f"--image-repository={IMAGE_REPOSITORY}",
        ],
        check=True,
        capture_output=True,
    )


async def write_clusterctl(tmp: Path, built: Artifacts) -> Clusterctl:
    """clusterctl's configuration: Cluster API's providers and ours from local repositories, cert-manager
    from its release manifest (clusterctl's own `cert-manager:` override)."""
    binary = Path(await asyncio.to_thread(build, "hack/clusterctl/build.sh"))
    ours = tmp / "repository"
    await render_release(ours, RELEASE_VERSION)
    core = built.capi

    providers = [*capi_providers(core), our_provider(ours)]
    # clusterctl reads a local file only from a repository layout: <base>/<provider>/<version>/<file>.
    manifest = ours / "cert-manager" / CERT_MANAGER_VERSION / "cert-manager.yaml"
    manifest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(built.cert_manager / "cert-manager.yaml", manifest)
    config = tmp / "clusterctl.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "providers": [{"name": n, "type": t, "url": u} for n, t, u in providers],
                "cert-manager": {
                    "url": f"file://{manifest}",
                    "version": CERT_MANAGER_VERSION,
                },
            }
        )
    )
    home = tmp / "home"
    home.mkdir(exist_ok=True)
    return Clusterctl(binary, home, config)


async def installed(tmp: Path) -> AsyncIterator[Installed]:
    """Start the node, import every image, run `clusterctl init --ipam in-cluster`, wait for both replicas."""
    built = await artifacts()
    kubectl = Path(await asyncio.to_thread(build, "hack/kubectl/build.sh"))
    timings: dict[str, float] = {}
    started = time.monotonic()
    async with NodeCluster(images=built.archives) as node:
        await node.ctr("images", "tag", "--force", BUILT_IMAGE, IMAGE)
        timings["node"] = round(time.monotonic() - started, 1)
        clusterctl = await write_clusterctl(tmp, built)
        kubeconfig = node.kubeconfig_path
        async with KubeClient.from_kubeconfig(kubeconfig) as client:
            result = Installed(node, client, clusterctl, kubeconfig, kubectl, tmp / "repository", timings)
            began = time.monotonic()
            out = await clusterctl.run(
                "init",
                "--kubeconfig",
                str(kubeconfig),
                "--ipam",
                "in-cluster",
                "--wait-providers",
                limit=900,
            )
            timings["clusterctl init"] = round(time.monotonic() - began, 1)
            result.init_output = out
            await result.ready_pods()
            timings["both replicas Ready"] = round(time.monotonic() - began, 1)
            try:
                yield result
            finally:
                print(json.dumps({"node install timings (s)": timings, "node": node.timings}))
