"""clusterctl on the local control planes: the binary (hack/clusterctl/build.sh), a local repository holding
Cluster API's own providers (hack/clusterctl/core-repository.sh), our release (hack/release.py) and a
minimal infrastructure provider, and `clusterctl init` with it.

A control plane has no node, so no provider's Deployment ever runs: `clusterctl init` installs every
component (CRDs, RBAC, Deployments, webhook configurations) and the provider inventory as on a real
management cluster, and our provider then runs as a process on the host. The one patch to what init installed
(`point_webhooks_at`) is the job cert-manager and the Service do on a real cluster: the release's webhook
configurations and the pool CRDs' conversion are pointed at that process (URL and CA bundle), names and
labels kept.
"""

from __future__ import annotations

import asyncio
import base64
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from incluster_ipam.api.constants import GROUP
from incluster_ipam.devcluster import ControlPlane
from incluster_ipam.kube import ApiError, KubeClient, Resource
from incluster_ipam.kube.resources import CRDS

from ..integration.faults.helpers import GLOBAL_IP_POOLS
from ..integration.support import eventually
from .providers import ROOT, build

CAPI_VERSION = "v1.14.2"
RELEASE_VERSION = "0.1.0"
INFRA_GROUP = "infrastructure.cluster.x-k8s.io"
PROVIDER_LABEL = "cluster.x-k8s.io/provider"
OUR_PROVIDER = "ipam-in-cluster"
CLUSTERCTL_LABEL = "clusterctl.cluster.x-k8s.io"

PROVIDERS = Resource("clusterctl.cluster.x-k8s.io", "v1alpha3", "providers", "Provider", True)
ADMISSION = "admissionregistration.k8s.io"
WEBHOOK_CONFIGURATIONS = (
    Resource(ADMISSION, "v1", "validatingwebhookconfigurations", "ValidatingWebhookConfiguration", False),
    Resource(ADMISSION, "v1", "mutatingwebhookconfigurations", "MutatingWebhookConfiguration", False),
)
TEST_MACHINES = Resource(INFRA_GROUP, "v1beta2", "testmachines", "TestMachine", True)


def test_machine_crd() -> dict[str, Any]:
    """A minimal infrastructure machine kind, shipped as an infrastructure provider's CRD would be."""
    schema = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"testmachines.{INFRA_GROUP}",
            "labels": {"cluster.x-k8s.io/v1beta2": "v1beta2"},
        },
        "spec": {
            "group": INFRA_GROUP,
            "names": {
                "kind": "TestMachine",
                "listKind": "TestMachineList",
                "plural": "testmachines",
                "singular": "testmachine",
            },
            "scope": "Namespaced",
            "versions": [
                {
                    "name": "v1beta2",
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "schema": {"openAPIV3Schema": schema},
                }
            ],
        },
    }


@dataclass(frozen=True)
class Clusterctl:
    binary: Path
    home: Path
    config: Path

    async def run(self, *args: str, limit: float = 240.0) -> str:
        """Run clusterctl; its combined output. Fails the test with the output on a non-zero exit."""
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(self.home),
            "XDG_CONFIG_HOME": str(self.home / ".config"),
            "CLUSTERCTL_DISABLE_VERSIONCHECK": "true",
        }
        proc = await asyncio.create_subprocess_exec(
            str(self.binary),
            *args,
            "--config",
            str(self.config),
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        try:
            out, _ = await asyncio.wait_for(proc.communicate(), limit)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise
        text = out.decode()
        assert proc.returncode == 0, f"clusterctl {' '.join(args)} exited {proc.returncode}:\n{text[-4000:]}"
        return text

    async def init(self, kubeconfig: Path) -> str:
        return await self.run(
            "init",
            "--kubeconfig",
            str(kubeconfig),
            "--core",
            f"cluster-api:{CAPI_VERSION}",
            "--bootstrap",
            f"kubeadm:{CAPI_VERSION}",
            "--control-plane",
            f"kubeadm:{CAPI_VERSION}",
            "--infrastructure",
            "test:v0.1.0",
            "--ipam",
            f"in-cluster:v{RELEASE_VERSION}",
        )


Provider = tuple[str, str, str]
"""(name, type, url) as clusterctl's configuration lists a provider."""


def repository_url(root: Path, label: str, version: str, file: str) -> str:
    """A file of a clusterctl local repository: <root>/<label>/<version>/<file>."""
    return f"file://{root / label / version / file}"


def capi_providers(core: Path) -> list[Provider]:
    """Cluster API's core, kubeadm bootstrap and kubeadm control-plane providers of a local repository."""
    return [
        (
            "cluster-api",
            "CoreProvider",
            repository_url(core, "cluster-api", CAPI_VERSION, "core-components.yaml"),
        ),
        (
            "kubeadm",
            "BootstrapProvider",
            repository_url(core, "bootstrap-kubeadm", CAPI_VERSION, "bootstrap-components.yaml"),
        ),
        (
            "kubeadm",
            "ControlPlaneProvider",
            repository_url(core, "control-plane-kubeadm", CAPI_VERSION, "control-plane-components.yaml"),
        ),
    ]


def our_provider(repository: Path) -> Provider:
    return (
        "in-cluster",
        "IPAMProvider",
        repository_url(repository, OUR_PROVIDER, f"v{RELEASE_VERSION}", "ipam-components.yaml"),
    )


async def prepare(tmp_path: Path) -> Clusterctl:
    """Build or reuse clusterctl and Cluster API's repository; render our release and the test provider; write
    the clusterctl configuration naming all of them."""
    binary = Path(await asyncio.to_thread(build, "hack/clusterctl/build.sh"))
    core = Path(await asyncio.to_thread(build, "hack/clusterctl/core-repository.sh"))
    ours = tmp_path / "repository"
    await asyncio.to_thread(
        subprocess.run,
        [
            sys.executable,
            str(ROOT / "hack" / "release.py"),
            f"--version={RELEASE_VERSION}",
            f"--out={tmp_path / 'out'}",
            f"--repository={ours}",
        ],
        check=True,
        capture_output=True,
    )
    infra = tmp_path / "repository" / "infrastructure-test" / "v0.1.0"
    infra.mkdir(parents=True)
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "capt-system"}}
    (infra / "infrastructure-components.yaml").write_text(yaml.safe_dump_all([namespace, test_machine_crd()]))
    metadata = {
        "apiVersion": "clusterctl.cluster.x-k8s.io/v1alpha3",
        "kind": "Metadata",
        "releaseSeries": [{"major": 0, "minor": 1, "contract": "v1beta2"}],
    }
    (infra / "metadata.yaml").write_text(yaml.safe_dump(metadata))

    providers = [
        *capi_providers(core),
        (
            "test",
            "InfrastructureProvider",
            repository_url(ours, "infrastructure-test", "v0.1.0", "infrastructure-components.yaml"),
        ),
        our_provider(ours),
    ]
    config = tmp_path / "clusterctl.yaml"
    config.write_text(
        yaml.safe_dump({"providers": [{"name": n, "type": t, "url": u} for n, t, u in providers]})
    )
    home = tmp_path / "home"
    home.mkdir()
    return Clusterctl(binary, home, config)


async def cert_manager_crds() -> list[dict[str, Any]]:
    """cert-manager's CRDs: with them, `clusterctl init` finds cert-manager "already installed" (its check
    creates an Issuer and a Certificate) instead of installing it."""
    directory = Path(await asyncio.to_thread(build, "hack/cert-manager/fetch-crds.sh"))
    return await asyncio.to_thread(load_yaml_files, directory)


def load_yaml_files(directory: Path) -> list[dict[str, Any]]:
    return [yaml.safe_load(p.read_text()) for p in sorted(directory.glob("*.yaml"))]


async def point_webhooks_at(client: KubeClient, plane: ControlPlane, url: str) -> int:
    """What cert-manager's CA injection and the webhook Service do on a real cluster, for a provider running
    on the host: every client config of our release (the pool CRDs' conversion, both webhook
    configurations) gets `url` + the Service's path and the control plane's CA. Returns how many were
    patched; waits until the apiserver calls the process (an invalid pool refused by it)."""
    ca = base64.b64encode(plane.ca.cert_pem).decode()
    selector = f"{PROVIDER_LABEL}={OUR_PROVIDER}"
    patched = 0
    for crd in (await client.list(CRDS, label_selector=selector)).items:
        webhook = ((crd["spec"].get("conversion") or {}).get("webhook")) or {}
        service = (webhook.get("clientConfig") or {}).get("service")
        if service is None:
            continue
        config = {"url": url + service.get("path", "/convert"), "caBundle": ca, "service": None}
        patch = {"spec": {"conversion": {"webhook": {"clientConfig": config}}}}
        await client.patch(CRDS, crd["metadata"]["name"], patch)
        patched += 1
    for resource in WEBHOOK_CONFIGURATIONS:
        for configuration in (await client.list(resource, label_selector=selector)).items:
            for hook in configuration.get("webhooks") or []:
                service = hook["clientConfig"].get("service") or {}
                hook["clientConfig"] = {"url": url + service.get("path", "/"), "caBundle": ca}
                patched += 1
            await client.replace(resource, configuration)

    async def served() -> bool:
        probe = {
            "apiVersion": f"{GROUP}/v1alpha1",
            "kind": "GlobalInClusterIPPool",
            "metadata": {"name": "probe-webhooks"},
            "spec": {"subnet": "192.0.2.0/24", "gateway": "not-an-ip"},
        }
        try:
            await client.create(
                Resource(GROUP, "v1alpha1", GLOBAL_IP_POOLS.plural, GLOBAL_IP_POOLS.kind, False),
                probe,
                dry_run=True,
            )
        except ApiError as exc:
            return "denied the request" in exc.message and "spec.gateway" in exc.message
        return False

    await eventually(served, 60, f"the apiserver to call the webhooks at {url}")
    return patched
