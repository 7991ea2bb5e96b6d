"""A control plane of its own for the packaging tests, the release artifacts rendered by hack/release.py,
the shipped RBAC installed for real, and clients authenticated as ServiceAccounts (TokenRequest tokens, the
same in-cluster code path the Deployment uses)."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from incluster_ipam.api.crds import crds
from incluster_ipam.devcluster import ControlPlane
from incluster_ipam.kube import NAMESPACES, ApiError, KubeClient, PatchType, Resource, in_cluster_config
from incluster_ipam.kube.resources import CRDS, SERVICE_ACCOUNTS

ROOT = Path(__file__).resolve().parents[3]
NAMESPACE = "capi-ipam-in-cluster-system"
SERVICE_ACCOUNT = "capi-ipam-in-cluster-manager"
FIELD_MANAGER = "incluster-ipam-packaging-tests"

RBAC = "rbac.authorization.k8s.io"
RESOURCES: dict[str, Resource] = {
    "Namespace": NAMESPACES,
    "CustomResourceDefinition": CRDS,
    "ServiceAccount": SERVICE_ACCOUNTS,
    "ClusterRole": Resource(RBAC, "v1", "clusterroles", "ClusterRole", False),
    "ClusterRoleBinding": Resource(RBAC, "v1", "clusterrolebindings", "ClusterRoleBinding", False),
    "Role": Resource(RBAC, "v1", "roles", "Role", True),
    "RoleBinding": Resource(RBAC, "v1", "rolebindings", "RoleBinding", True),
    "Issuer": Resource("cert-manager.io", "v1", "issuers", "Issuer", True),
    "Certificate": Resource("cert-manager.io", "v1", "certificates", "Certificate", True),
    "Service": Resource("", "v1", "services", "Service", True),
    "Deployment": Resource("apps", "v1", "deployments", "Deployment", True),
    "PodDisruptionBudget": Resource("policy", "v1", "poddisruptionbudgets", "PodDisruptionBudget", True),
    "NetworkPolicy": Resource("networking.k8s.io", "v1", "networkpolicies", "NetworkPolicy", True),
    "ValidatingWebhookConfiguration": Resource(
        "admissionregistration.k8s.io",
        "v1",
        "validatingwebhookconfigurations",
        "ValidatingWebhookConfiguration",
        False,
    ),
    "MutatingWebhookConfiguration": Resource(
        "admissionregistration.k8s.io",
        "v1",
        "mutatingwebhookconfigurations",
        "MutatingWebhookConfiguration",
        False,
    ),
}
RBAC_KINDS = ("ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding")


@dataclass(frozen=True)
class Release:
    version: str
    components: Path
    metadata: Path
    repository: Path
    """clusterctl local repository root: <repository>/ipam-in-cluster/<version>/"""
    objects: list[dict[str, Any]]


def clusterctl_defaults(text: str) -> str:
    """The components as `clusterctl init` renders them when no variable is set: `${NAME:=default}`
    becomes its default (clusterctl refuses a variable without one)."""
    return re.sub(r"\$\{[A-Z0-9_]+:=([^}]*)\}", lambda m: m.group(1), text)


@pytest.fixture(scope="session")
def release(tmp_path_factory: pytest.TempPathFactory) -> Release:
    """hack/release.py run as a release would run it (a separate process, default image repository)."""
    out = tmp_path_factory.mktemp("release")
    version = "0.1.0"
    subprocess.run(
        [
            sys.executable,
            str(ROOT / "hack" / "release.py"),
            f"--version={version}",
            f"--out={out / 'out'}",
            f"--repository={out / 'repository'}",
        ],
        check=True,
        capture_output=True,
    )
    components = out / "out" / "ipam-components.yaml"
    objects = [d for d in yaml.safe_load_all(clusterctl_defaults(components.read_text())) if d]
    return Release("v" + version, components, out / "out" / "metadata.yaml", out / "repository", objects)


@pytest.fixture(scope="session")
async def packaging_plane() -> AsyncIterator[ControlPlane]:
    """Other suites register webhooks and run providers on theirs; this one gets the shipped RBAC."""
    async with ControlPlane(extra_crds=crds("")) as plane:
        yield plane


@pytest.fixture(scope="session")
async def admin(packaging_plane: ControlPlane) -> AsyncIterator[KubeClient]:
    async with KubeClient.from_kubeconfig(packaging_plane.kubeconfig_path) as client:
        yield client


async def apply(client: KubeClient, obj: dict[str, Any], *, dry_run: bool = False) -> dict[str, Any]:
    """Server-side apply of one manifest object (as `kubectl apply --server-side [--dry-run=server]`)."""
    resource = RESOURCES[obj["kind"]]
    meta = obj["metadata"]
    return await client.patch(
        resource,
        meta["name"],
        obj,
        meta.get("namespace") if resource.namespaced else None,
        patch_type=PatchType.APPLY,
        field_manager=FIELD_MANAGER,
        force=True,
        dry_run=dry_run,
    )


@pytest.fixture(scope="session")
async def installed_rbac(admin: KubeClient, release: Release) -> list[dict[str, Any]]:
    """The provider's Namespace, ServiceAccount, Roles, ClusterRoles and bindings, exactly as shipped."""
    installed = [o for o in release.objects if o["kind"] == "Namespace" or o["kind"] in RBAC_KINDS]
    for obj in installed:
        await apply(admin, obj)
    return installed


async def service_account_token(plane: ControlPlane, namespace: str, name: str) -> str:
    """Create the ServiceAccount if needed and return a fresh token for it (TokenRequest API)."""
    async with plane.session() as http:
        async with http.post(
            f"/api/v1/namespaces/{namespace}/serviceaccounts",
            json={"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name}},
        ) as resp:
            assert resp.status in (201, 409), await resp.text()
        async with http.post(
            f"/api/v1/namespaces/{namespace}/serviceaccounts/{name}/token",
            json={
                "apiVersion": "authentication.k8s.io/v1",
                "kind": "TokenRequest",
                "spec": {"expirationSeconds": 3600},
            },
        ) as resp:
            assert resp.status == 201, await resp.text()
            token: str = (await resp.json())["status"]["token"]
            return token


def in_cluster_client(plane: ControlPlane, token: str, namespace: str, account_dir: Path) -> KubeClient:
    """A client configured exactly as in a pod: token, CA and namespace files plus KUBERNETES_SERVICE_*."""
    account_dir.mkdir(parents=True, exist_ok=True)
    (account_dir / "token").write_text(token)
    (account_dir / "ca.crt").write_bytes(plane.ca.cert_pem)
    (account_dir / "namespace").write_text(namespace)
    host, port = plane.server.removeprefix("https://").rsplit(":", 1)
    env = {"KUBERNETES_SERVICE_HOST": host, "KUBERNETES_SERVICE_PORT": port}
    return KubeClient(in_cluster_config(env, account_dir=account_dir))


async def create_namespace(client: KubeClient) -> str:
    name = f"pk-{uuid.uuid4().hex[:8]}"
    await client.create(NAMESPACES, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    return name


async def status_of(call: Awaitable[Any]) -> int:
    """The HTTP status an API call fails with (0 when it succeeds)."""
    try:
        await call
    except ApiError as exc:
        return exc.status
    return 0


async def wait_for(probe: Callable[[], Awaitable[Any]], within: float, what: str) -> Any:
    """Poll `probe` until it returns something truthy (returned); fail after `within` seconds."""
    deadline = asyncio.get_running_loop().time() + within
    last = None
    while asyncio.get_running_loop().time() < deadline:
        last = await probe()
        if last:
            return last
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out after {within} s waiting for {what} (last: {last!r})")
