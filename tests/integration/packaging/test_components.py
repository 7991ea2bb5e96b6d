"""The release artifacts are accepted by the real consumers: the apiserver (server-side dry run of every
object in ipam-components.yaml, with cert-manager's CRDs installed from its Go module) and clusterctl v1.14.2
(built from Cluster API's Go module, reading a local provider repository)."""

from __future__ import annotations

import asyncio
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from incluster_ipam.devcluster import ControlPlane
from incluster_ipam.kube import KubeClient

from .conftest import ROOT, Release, apply

CLUSTERCTL_BUILD_TIMEOUT = 1800.0
"""The cold clusterctl build takes about 4 minutes on 2 cores (docs/operations.md); cached afterwards."""


def _script_output(script: Path, timeout: float) -> str:
    """Run one of the repo's fetch/build scripts (cached outside the repo) and return its last stdout line."""
    done = subprocess.run(["bash", str(script)], capture_output=True, text=True, timeout=timeout, check=False)
    assert done.returncode == 0, f"{script} failed:\n{done.stderr[-3000:]}"
    return done.stdout.strip().splitlines()[-1]


def _load_crds(directory: Path) -> list[dict[str, Any]]:
    return [yaml.safe_load(p.read_text()) for p in sorted(directory.glob("*.yaml"))]


@pytest.fixture(scope="session")
async def cert_manager_crds(packaging_plane: ControlPlane) -> list[dict[str, Any]]:
    script = ROOT / "hack" / "cert-manager" / "fetch-crds.sh"
    directory = Path(await asyncio.to_thread(_script_output, script, 300))
    docs = await asyncio.to_thread(_load_crds, directory)
    await packaging_plane.install_crds(docs)
    return docs


@pytest.mark.timeout(120)
async def test_every_component_passes_a_server_side_dry_run(
    admin: KubeClient,
    release: Release,
    installed_rbac: list[dict[str, Any]],
    cert_manager_crds: list[dict[str, Any]],
) -> None:
    assert {crd["spec"]["names"]["kind"] for crd in cert_manager_crds} >= {"Issuer", "Certificate"}
    # The Namespace exists for real (installed_rbac); everything else is validated, defaulted and admitted by
    # the apiserver without being stored.
    accepted = set()
    for obj in release.objects:
        answer = await apply(admin, obj, dry_run=True)  # raises ApiError when refused
        assert (answer["kind"], answer["metadata"]["name"]) == (obj["kind"], obj["metadata"]["name"])
        accepted.add((obj["kind"], obj["metadata"]["name"]))
    assert len(accepted) == len(release.objects) == 23
    deployment = next(o for o in release.objects if o["kind"] == "Deployment")
    dry = await apply(admin, deployment, dry_run=True)
    container = dry["spec"]["template"]["spec"]["containers"][0]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert dry["spec"]["template"]["spec"]["serviceAccountName"] == "capi-ipam-in-cluster-manager"


@pytest.fixture(scope="session")
async def clusterctl() -> Path:
    """clusterctl from hack/clusterctl (built on first use, then reused from the cache)."""
    script = ROOT / "hack" / "clusterctl" / "build.sh"
    return Path(await asyncio.to_thread(_script_output, script, CLUSTERCTL_BUILD_TIMEOUT))


def _clusterctl(
    binary: Path, home: Path, *args: str, variables: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "CLUSTERCTL_DISABLE_VERSIONCHECK": "true",
        **(variables or {}),
    }
    return subprocess.run(
        [str(binary), *args], env=env, capture_output=True, text=True, timeout=120, check=False
    )


@pytest.mark.timeout(CLUSTERCTL_BUILD_TIMEOUT + 120)
async def test_clusterctl_generates_the_provider_from_a_local_repository(
    clusterctl: Path, release: Release, tmp_path: Path
) -> None:
    version_dir = release.repository / "ipam-in-cluster" / release.version
    assert sorted(p.name for p in version_dir.iterdir()) == ["ipam-components.yaml", "metadata.yaml"]
    config = tmp_path / "clusterctl.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "providers": [
                    {
                        "name": "in-cluster",
                        "type": "IPAMProvider",
                        "url": f"file://{version_dir / 'ipam-components.yaml'}",
                    }
                ]
            }
        )
    )
    generated = _clusterctl(
        clusterctl,
        tmp_path,
        "generate",
        "provider",
        "--ipam",
        f"in-cluster:{release.version}",
        "--config",
        str(config),
    )
    assert generated.returncode == 0, generated.stderr
    objects = [d for d in yaml.safe_load_all(generated.stdout) if d]
    ours = {(o["kind"], o["metadata"]["name"]) for o in release.objects}
    assert {(o["kind"], o["metadata"]["name"]) for o in objects} == ours
    for obj in objects:
        labels = obj["metadata"]["labels"]
        assert labels["cluster.x-k8s.io/provider"] == "ipam-in-cluster"
        assert "clusterctl.cluster.x-k8s.io" in labels  # clusterctl's own processing ran
    deployment = next(o for o in objects if o["kind"] == "Deployment")
    image = deployment["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image.endswith(f"/incluster-ipam:{release.version}")
    assert _webhook_sources(objects) == ["0.0.0.0/0", "::/0"]  # the variables' defaults

    narrowed = _clusterctl(
        clusterctl,
        tmp_path,
        "generate",
        "provider",
        "--ipam",
        f"in-cluster:{release.version}",
        "--config",
        str(config),
        variables={
            "CAPI_IPAM_WEBHOOK_SOURCE_CIDR": "192.0.2.0/28",
            "CAPI_IPAM_WEBHOOK_SOURCE_CIDR_V6": "2001:db8::/64",
        },
    )
    assert narrowed.returncode == 0, narrowed.stderr
    assert _webhook_sources([d for d in yaml.safe_load_all(narrowed.stdout) if d]) == [
        "192.0.2.0/28",
        "2001:db8::/64",
    ]

    described = _clusterctl(
        clusterctl,
        tmp_path,
        "generate",
        "provider",
        "--ipam",
        f"in-cluster:{release.version}",
        "--config",
        str(config),
        "--describe",
    )
    assert described.returncode == 0, described.stderr
    assert "TargetNamespace:    capi-ipam-in-cluster-system" in described.stdout
    assert image in described.stdout

    # clusterctl's image override (the documented way to use a mirror), with "latest" resolved through
    # metadata.yaml: the release series' contract must be one this clusterctl accepts.
    latest = tmp_path / "latest.yaml"
    latest.write_text(
        yaml.safe_dump(
            {
                "providers": [
                    {
                        "name": "in-cluster",
                        "type": "IPAMProvider",
                        "url": f"file://{release.repository}/ipam-in-cluster/latest/ipam-components.yaml",
                    }
                ],
                "images": {"ipam-in-cluster": {"repository": "mirror.example.com/capi"}},
            }
        )
    )
    mirrored = _clusterctl(
        clusterctl, tmp_path, "generate", "provider", "--ipam", "in-cluster", "--config", str(latest)
    )
    assert mirrored.returncode == 0, mirrored.stderr
    assert f"image: mirror.example.com/capi/incluster-ipam:{release.version}" in mirrored.stdout


def _webhook_sources(objects: list[dict[str, Any]]) -> list[str]:
    policy = next(o for o in objects if o["kind"] == "NetworkPolicy")
    webhook = next(rule for rule in policy["spec"]["ingress"] if rule["ports"][0]["port"] == 9443)
    return [peer["ipBlock"]["cidr"] for peer in webhook["from"]]
