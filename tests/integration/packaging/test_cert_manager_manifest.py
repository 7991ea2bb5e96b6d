"""cert-manager's static release manifest as hack/cert-manager/build.sh renders it for a real node
(`clusterctl init` installs it from a local path): it parses, holds the CRDs, the namespace and the three
Deployments, names the images that binaries/build.sh packages, and never makes the kubelet pull. No control
plane: the file is cert-manager's own release output, not ours to admit."""

from __future__ import annotations

import json
import subprocess
import tarfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from .conftest import ROOT

BUILD_TIMEOUT = 900.0
"""Cold: Helm and extractcrd from their Go modules, about 4 minutes on 2 cores (216 s); warm: instant."""

COMPONENTS = {
    "cert-manager": "quay.io/jetstack/cert-manager-controller:v1.21.2",
    "cert-manager-webhook": "quay.io/jetstack/cert-manager-webhook:v1.21.2",
    "cert-manager-cainjector": "quay.io/jetstack/cert-manager-cainjector:v1.21.2",
}
"""Deployment name -> image, as cert-manager's published v1.21.2 manifest names them."""


def _built(script: str) -> Path:
    """The cache directory a hack/cert-manager script prints (built on first use; a failing script fails)."""
    path = ROOT / "hack" / "cert-manager" / script
    done = subprocess.run(
        ["bash", str(path)], capture_output=True, text=True, timeout=BUILD_TIMEOUT, check=False
    )
    assert done.returncode == 0, f"{path} failed:\n{done.stderr[-3000:]}"
    return Path(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def cert_manager_dir() -> Path:
    return _built("build.sh")


@pytest.fixture(scope="module")
def objects(cert_manager_dir: Path) -> list[dict[str, Any]]:
    text = (cert_manager_dir / "cert-manager.yaml").read_text()
    return [doc for doc in yaml.safe_load_all(text) if doc is not None]


def _containers(deployment: dict[str, Any]) -> list[dict[str, Any]]:
    spec = deployment["spec"]["template"]["spec"]
    return [*spec.get("initContainers", []), *spec["containers"]]


def _archive_ref(archive: Path) -> str:
    """The image reference an OCI archive carries (index.json's org.opencontainers.image.ref.name)."""
    with tarfile.open(archive) as tar:
        member = tar.extractfile("index.json")
        assert member is not None, f"{archive} has no index.json"
        index = json.load(member)
    (manifest,) = index["manifests"]
    return str(manifest["annotations"]["org.opencontainers.image.ref.name"])


def test_the_manifest_holds_the_release_objects(objects: list[dict[str, Any]]) -> None:
    kinds = [o["kind"] for o in objects]
    assert kinds[0] == "Namespace"
    assert objects[0]["metadata"]["name"] == "cert-manager"
    crds = {o["spec"]["names"]["kind"] for o in objects if o["kind"] == "CustomResourceDefinition"}
    assert crds == {"Certificate", "CertificateRequest", "Issuer", "ClusterIssuer", "Order", "Challenge"}
    # The CRDs come right after the namespace, before anything that refers to them.
    assert kinds[1:7] == ["CustomResourceDefinition"] * 6
    for kind in ("ValidatingWebhookConfiguration", "MutatingWebhookConfiguration"):
        assert kinds.count(kind) == 1
    # A static manifest: no Helm hooks, no startupapicheck Job, no Helm ownership labels.
    assert "Job" not in kinds
    for obj in objects:
        meta = obj["metadata"]
        assert "helm.sh/hook" not in meta.get("annotations", {}), meta["name"]
        assert meta.get("labels", {}).get("app.kubernetes.io/managed-by") != "Helm", meta["name"]


def test_the_deployments_name_the_release_images_and_never_pull(objects: list[dict[str, Any]]) -> None:
    deployments = {o["metadata"]["name"]: o for o in objects if o["kind"] == "Deployment"}
    assert set(deployments) == set(COMPONENTS)
    for name, deployment in deployments.items():
        assert deployment["metadata"]["namespace"] == "cert-manager"
        containers = _containers(deployment)
        assert [c["image"] for c in containers] == [COMPONENTS[name]], name
        assert {c["imagePullPolicy"] for c in containers} == {"IfNotPresent"}, name
        # The images' entrypoints are the binaries; the chart passes arguments only.
        assert all("command" not in c for c in containers), name


def test_the_built_archives_carry_the_manifest_image_names(objects: list[dict[str, Any]]) -> None:
    """hack/cert-manager/binaries/build.sh packages our own mains as exactly the images the Deployments name
    (a node that imports the archives then never pulls)."""
    images = _built("binaries/build.sh") / "images"
    archives = sorted(images.glob("*.oci.tar"))
    named = {c["image"] for o in objects if o["kind"] == "Deployment" for c in _containers(o)}
    assert {_archive_ref(a) for a in archives} == named == set(COMPONENTS.values())
