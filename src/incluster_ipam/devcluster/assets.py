"""Find the cached control-plane binaries and Cluster API CRDs, building them on first use.

The build itself is `hack/controlplane/build.sh` (Go modules pinned in the repo); it prints the cache
directory. `INCLUSTER_IPAM_CONTROLPLANE` short-circuits the lookup (the repo scripts export it).
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from pathlib import Path

import yaml

CURRENT_CAPI = "v1.14.2"
"""Cluster API release whose CRDs serve the current IPAM contract (v1beta2)."""
OLD_CAPI = "v1.10.4"
"""The newest Cluster API release with only the older IPAM contract (v1beta1), for contract tests."""

CAPI_CRD_FILES = (
    "cluster.x-k8s.io_clusters.yaml",
    "ipam.cluster.x-k8s.io_ipaddressclaims.yaml",
    "ipam.cluster.x-k8s.io_ipaddresses.yaml",
)

ENV_VAR = "INCLUSTER_IPAM_CONTROLPLANE"


class AssetsError(RuntimeError):
    """The control-plane binaries or CRDs are missing and could not be built."""


@dataclass(frozen=True)
class Assets:
    """A populated cache directory: `bin/{kube-apiserver,etcd,kube-controller-manager}` and
    `crds/capi-<version>/`."""

    root: Path

    @property
    def kube_apiserver(self) -> Path:
        return self.root / "bin" / "kube-apiserver"

    @property
    def kube_controller_manager(self) -> Path:
        """Optional (not validated): only `ControlPlane(controller_manager=True)` needs it."""
        return self.root / "bin" / "kube-controller-manager"

    @property
    def etcd(self) -> Path:
        return self.root / "bin" / "etcd"

    def capi_crds(self, version: str = CURRENT_CAPI) -> list[dict[str, object]]:
        """The Cluster API CRDs (Cluster, IPAddressClaim, IPAddress) of one release, as dicts."""
        directory = self.root / "crds" / f"capi-{version}"
        docs: list[dict[str, object]] = []
        for name in CAPI_CRD_FILES:
            path = directory / name
            if not path.is_file():
                raise AssetsError(f"Cluster API {version} CRD {name} is not in {directory}")
            docs.append(yaml.safe_load(path.read_text()))
        return docs

    def validate(self) -> Assets:
        for binary in (self.kube_apiserver, self.etcd):
            if not os.access(binary, os.X_OK):
                raise AssetsError(f"{binary} is missing or not executable; run hack/controlplane/build.sh")
        return self


def repo_root() -> Path | None:
    """The source checkout this package runs from, if any (editable install, src layout)."""
    candidate = Path(__file__).resolve().parents[3]
    return candidate if (candidate / "hack" / "controlplane" / "build.sh").is_file() else None


async def cached_build(script: str, env_var: str) -> Path:
    """The cache directory a build script of this repository (`script`, relative to its root) prints on its
    last stdout line, building on first use; `env_var`, when set, names the directory instead."""
    configured = os.environ.get(env_var)
    if configured:
        return Path(configured)
    root = repo_root()
    if root is None:
        raise AssetsError(f"set {env_var} to the cache directory {script} prints")
    proc = await asyncio.create_subprocess_exec("bash", str(root / script), stdout=asyncio.subprocess.PIPE)
    out, _ = await proc.communicate()
    if proc.returncode != 0:
        raise AssetsError(f"{script} failed with exit code {proc.returncode}")
    lines = out.decode().strip().splitlines()
    if not lines:
        raise AssetsError(f"{script} printed no cache directory")
    return Path(lines[-1])


async def ensure_assets() -> Assets:
    """Return the control-plane cache, building it with the repo's build script when the environment does not
    name it."""
    return Assets(await cached_build("hack/controlplane/build.sh", ENV_VAR)).validate()
