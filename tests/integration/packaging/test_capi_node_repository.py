"""Cluster API's default providers as hack/clusterctl/node-repository.sh lays them out for a cluster with a
node: each components file as clusterctl reads it, naming exactly the image of an archive beside it, pulled
IfNotPresent (no registry here, the image is imported), running a command the image holds, and leaving only
clusterctl variables that have a default (`clusterctl init` must need none set).

No cluster: the files and the archives are read as they are. The script is the one hack/e2e/install.sh runs;
cold it builds three managers (minutes), warm it answers at once."""

from __future__ import annotations

import json
import re
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import pytest
import yaml

from ...e2e.providers import BUILD_TIMEOUT, build

VERSION = "v1.14.2"
PROVIDERS = {  # provider directory: components file, manager image name
    "cluster-api": ("core-components.yaml", "cluster-api-controller"),
    "bootstrap-kubeadm": ("bootstrap-components.yaml", "kubeadm-bootstrap-controller"),
    "control-plane-kubeadm": ("control-plane-components.yaml", "kubeadm-control-plane-controller"),
}
LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
"""libyaml's safe loader when PyYAML has it: the pure-Python one takes ~1 s per file here."""
VARIABLE = re.compile(r"\$\{([^}]*)\}")
WITH_DEFAULT = re.compile(r"[A-Z0-9_]+:?[=-].*")
"""clusterctl's variables: `${NAME:=default}` (or `:-`) has a default; a bare `${NAME}` must be set."""


@dataclass(frozen=True)
class Archive:
    ref_name: str
    entrypoint: list[str]
    files: set[str]


def read_archive(path: Path) -> Archive:
    """The reference, entrypoint and file paths of a single-image OCI archive, read without unpacking it."""
    with tarfile.open(path) as outer:

        def member(name: str) -> IO[bytes]:
            found = outer.extractfile(name)
            assert found is not None, f"{path}: no {name}"
            return found

        def blob(digest: str) -> IO[bytes]:
            return member("blobs/" + digest.replace(":", "/"))

        (entry,) = json.load(member("index.json"))["manifests"]
        manifest = json.load(blob(entry["digest"]))
        config = json.load(blob(manifest["config"]["digest"]))
        files: set[str] = set()
        for layer in manifest["layers"]:
            with tarfile.open(fileobj=blob(layer["digest"]), mode="r|*") as inner:
                files |= {"/" + m.name.removeprefix("./") for m in inner if m.isfile()}
    return Archive(
        entry.get("annotations", {}).get("org.opencontainers.image.ref.name", ""),
        config["config"].get("Entrypoint") or [],
        files,
    )


@pytest.fixture(scope="module")
def repository() -> Path:
    """The script's repository directory (its last stdout line); the script's failure fails the tests."""
    return Path(build("hack/clusterctl/node-repository.sh"))


@pytest.fixture(scope="module")
def archives(repository: Path) -> dict[str, Archive]:
    """Every archive under images/, by the reference its index names."""
    found = [read_archive(p) for p in sorted((repository / "images").glob("*.oci.tar"))]
    return {a.ref_name: a for a in found}


@pytest.mark.timeout(BUILD_TIMEOUT + 300)
@pytest.mark.parametrize("provider", sorted(PROVIDERS))
def test_components_name_an_archived_image_pulled_if_not_present(
    provider: str, repository: Path, archives: dict[str, Archive]
) -> None:
    components_file, image_name = PROVIDERS[provider]
    directory = repository / provider / VERSION
    text = (directory / components_file).read_text()
    metadata = yaml.safe_load((directory / "metadata.yaml").read_text())
    assert metadata["kind"] == "Metadata", metadata
    objects = [o for o in yaml.load_all(text, Loader=LOADER) if o]  # 0.6-1.2 MB each
    kinds = {o["kind"] for o in objects}
    assert {"Namespace", "CustomResourceDefinition", "Deployment", "Certificate"} <= kinds, kinds

    containers = [
        c for o in objects if o["kind"] == "Deployment" for c in o["spec"]["template"]["spec"]["containers"]
    ]
    assert [c["name"] for c in containers] == ["manager"], containers
    (manager,) = containers
    image = f"registry.k8s.io/cluster-api/{image_name}:{VERSION}"
    assert manager["image"] == image
    assert manager["imagePullPolicy"] == "IfNotPresent"
    assert image in archives, f"no archive under {repository / 'images'} names {image}: {sorted(archives)}"
    archive = archives[image]
    assert manager["command"] == archive.entrypoint == ["/manager"], (manager["command"], archive.entrypoint)
    assert "/manager" in archive.files, f"{image} holds only {sorted(archive.files)}"

    variables = VARIABLE.findall(text)
    assert variables, "the release keeps clusterctl's variables (for example CAPI_DIAGNOSTICS_ADDRESS)"
    without_default = sorted({v for v in variables if not WITH_DEFAULT.fullmatch(v)})
    assert not without_default, f"clusterctl init would require {without_default}"
