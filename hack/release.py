#!/usr/bin/env python3
"""Render the clusterctl release artifacts: out/ipam-components.yaml and out/metadata.yaml.

    .venv/bin/python hack/release.py [--version v0.1.0] [--image-repository REPO] [--out out]
                                     [--repository DIR]

`ipam-components.yaml` is every object a provider install needs, in apply order: the Namespace, the four pool
CRDs (config/crd/bases, conversion webhook pointed at the in-cluster Service, CA injected by cert-manager),
RBAC (config/rbac), cert-manager Issuer and Certificates (config/certmanager), the Services, the Deployment
and its PodDisruptionBudget (config/webhook, config/manager), the NetworkPolicy (config/network-policy; its
source CIDRs are clusterctl variables with defaults), and both webhook configurations, generated from
`incluster_ipam.webhooks.registration` so they always match the routes the server serves. Every object gets
the label `cluster.x-k8s.io/provider: ipam-in-cluster` (clusterctl adds it too).

The image is a plain `<repository>:<version>` (no clusterctl variable, as upstream): clusterctl parses the
Deployment's image before any variable is substituted (image overrides, `generate provider --describe`) and
rejects `${...}` there. Installers pick another registry with clusterctl's own `images:` setting
(docs/operations.md); `--image-repository` sets the default at release time.

`metadata.yaml` maps this release series to the Cluster API contract it declares (see docs/operations.md:
one build speaks both IPAM contracts; the series declares v1beta1, which clusterctl >= 1.11 accepts as
compatible with v1beta2 and which older clusterctl requires).

`--repository DIR` also lays the two files out as a clusterctl local repository:
`DIR/ipam-in-cluster/<version>/{ipam-components.yaml,metadata.yaml}`.
"""

from __future__ import annotations

import argparse
import copy
import re
import shutil
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from incluster_ipam import __version__
from incluster_ipam.webhooks.registration import ServiceEndpoint, webhook_configurations

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "config"

PROVIDER_LABEL = "ipam-in-cluster"
"""clusterctl's label for the IPAM provider named `in-cluster` (`<type prefix>-<name>`)."""
NAMESPACE = "capi-ipam-in-cluster-system"
NAME_PREFIX = "capi-ipam-in-cluster-"
COMMON_LABELS = {"cluster.x-k8s.io/provider": PROVIDER_LABEL}
WEBHOOK_SERVICE = f"{NAME_PREFIX}webhook-service"
SERVING_CERT = f"{NAME_PREFIX}serving-cert"
INJECT_CA_FROM = "cert-manager.io/inject-ca-from"
IMAGE_PLACEHOLDER = "IMAGE"
DEFAULT_IMAGE_REPOSITORY = "ghcr.io/incluster-ipam/incluster-ipam"
COMPONENTS_FILE = "ipam-components.yaml"
METADATA_FILE = "metadata.yaml"
CONTRACT = "v1beta1"
"""The contract every release series declares (see the module docstring)."""

#: config/ sub-directories, in the order their objects appear in the components file.
SECTIONS = ("default", "crd/bases", "rbac", "certmanager", "webhook", "manager", "network-policy")

Obj = dict[str, Any]


def semver(version: str) -> str:
    """A PEP 440 version as clusterctl's semantic version tag: 0.1.0 -> v0.1.0, 0.1.0.dev0 -> v0.1.0-dev.0,
    1.2.0rc1 -> v1.2.0-rc.1 (a leading v is kept)."""
    match = re.fullmatch(
        r"v?(\d+)\.(\d+)\.(\d+)(?:-?(a|alpha|b|beta|rc)\.?(\d+))?(?:[.-]?dev\.?(\d+))?", version.strip()
    )
    if match is None:
        raise ValueError(f"cannot turn {version!r} into a semantic version")
    major, minor, patch, pre, pre_n, dev = match.groups()
    text = f"v{major}.{minor}.{patch}"
    names = {"a": "alpha", "alpha": "alpha", "b": "beta", "beta": "beta", "rc": "rc"}
    suffixes = []
    if pre:
        suffixes.append(f"{names[pre]}.{pre_n}")
    if dev is not None:
        suffixes.append(f"dev.{dev}")
    return text + ("-" + ".".join(suffixes) if suffixes else "")


def load_documents(directory: Path) -> list[Obj]:
    docs: list[Obj] = []
    for path in sorted(directory.glob("*.yaml")):
        docs.extend(d for d in yaml.safe_load_all(path.read_text()) if d)
    return docs


def _add_labels(obj: Obj, labels: Mapping[str, str]) -> None:
    obj.setdefault("metadata", {}).setdefault("labels", {}).update(labels)


def _inject_ca(obj: Obj) -> None:
    obj["metadata"].setdefault("annotations", {})[INJECT_CA_FROM] = f"{NAMESPACE}/{SERVING_CERT}"


def patch_crd(crd: Obj) -> Obj:
    """Point a pool CRD's conversion webhook at the provider's Service and let cert-manager inject its CA."""
    crd = copy.deepcopy(crd)
    conversion = crd["spec"].get("conversion") or {}
    if conversion.get("strategy") == "Webhook":
        service = conversion["webhook"]["clientConfig"]["service"]
        service["name"] = WEBHOOK_SERVICE
        service["namespace"] = NAMESPACE
        _inject_ca(crd)
    return crd


def webhook_objects() -> list[Obj]:
    configurations = webhook_configurations(
        ServiceEndpoint(name=WEBHOOK_SERVICE, namespace=NAMESPACE), name_prefix=NAME_PREFIX
    )
    for configuration in configurations:
        _inject_ca(configuration)
    return configurations


def set_image(obj: Obj, image: str) -> None:
    if obj.get("kind") != "Deployment":
        return
    for container in obj["spec"]["template"]["spec"]["containers"]:
        if container.get("image") == IMAGE_PLACEHOLDER:
            container["image"] = image


def components(image: str, config: Path = CONFIG) -> list[Obj]:
    """Every object of the components file, in apply order, labelled, with `image` in the Deployment."""
    objects: list[Obj] = []
    for section in SECTIONS:
        for doc in load_documents(config / section):
            objects.append(patch_crd(doc) if doc.get("kind") == "CustomResourceDefinition" else doc)
    objects.extend(webhook_objects())
    for obj in objects:
        _add_labels(obj, COMMON_LABELS)
        set_image(obj, image)
    return objects


def metadata(version: str) -> Obj:
    major, minor = (int(part) for part in semver(version)[1:].split(".")[:2])
    return {
        "apiVersion": "clusterctl.cluster.x-k8s.io/v1alpha3",
        "kind": "Metadata",
        "releaseSeries": [{"major": major, "minor": minor, "contract": CONTRACT}],
    }


def dump_all(objects: Iterable[Obj]) -> str:
    return "".join("---\n" + yaml.safe_dump(o, sort_keys=False, width=110) for o in objects)


def write(out: Path, version: str, image_repository: str) -> tuple[Path, Path]:
    tag = semver(version)
    image = f"{image_repository}:{tag}"
    out.mkdir(parents=True, exist_ok=True)
    components_path = out / COMPONENTS_FILE
    metadata_path = out / METADATA_FILE
    components_path.write_text(dump_all(components(image)))
    metadata_path.write_text(yaml.safe_dump(metadata(tag), sort_keys=False))
    return components_path, metadata_path


def lay_out_repository(repository: Path, version: str, files: Iterable[Path]) -> Path:
    """Copy the artifacts to `repository/ipam-in-cluster/<version>/` (clusterctl's local repository)."""
    target = repository / PROVIDER_LABEL / semver(version)
    target.mkdir(parents=True, exist_ok=True)
    for file in files:
        shutil.copy2(file, target / file.name)
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--version", default=__version__, help="release version (default: the package's)")
    parser.add_argument("--image-repository", default=DEFAULT_IMAGE_REPOSITORY)
    parser.add_argument("--out", type=Path, default=ROOT / "out")
    parser.add_argument("--repository", type=Path, default=None, help="also lay out a clusterctl repository")
    args = parser.parse_args(argv)
    files = write(args.out, args.version, args.image_repository)
    for file in files:
        print(file)
    if args.repository is not None:
        print(lay_out_repository(args.repository, args.version, files))
    return 0


if __name__ == "__main__":
    sys.exit(main())
