"""The generated CRDs: no drift from crds.py, and the constraints the spec asks for."""

import base64
import importlib.util
import pathlib
from typing import Any

import pytest
import yaml

from incluster_ipam.api.constants import MOVE_HIERARCHY_LABEL, POOL_KINDS
from incluster_ipam.api.crds import crd, crd_file_name, crds

ROOT = pathlib.Path(__file__).resolve().parents[3]


def _generator() -> Any:
    spec = importlib.util.spec_from_file_location("gen_crds", ROOT / "hack" / "gen-crds.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("kind", POOL_KINDS, ids=lambda k: k.kind)
def test_checked_in_yaml_matches_the_generator(kind: Any) -> None:
    path = ROOT / "config" / "crd" / "bases" / crd_file_name(kind)
    assert path.read_text() == _generator().render(crd(kind)), "run hack/gen-crds.py"
    assert yaml.safe_load(path.read_text()) == crd(kind)


def _version(document: dict[str, Any], name: str) -> dict[str, Any]:
    return next(v for v in document["spec"]["versions"] if v["name"] == name)


def _spec_schema(document: dict[str, Any], version: str) -> dict[str, Any]:
    schema: dict[str, Any] = _version(document, version)["schema"]["openAPIV3Schema"]["properties"]["spec"]
    return schema


@pytest.mark.parametrize("kind", POOL_KINDS, ids=lambda k: k.kind)
def test_common_shape(kind: Any) -> None:
    document = crd(kind)
    names = document["spec"]["names"]
    assert names["categories"] == ["cluster-api"]
    assert "shortNames" not in names
    assert names["plural"] == kind.plural
    assert document["metadata"]["labels"] == {MOVE_HIERARCHY_LABEL: ""}
    assert document["spec"]["scope"] == ("Namespaced" if kind.namespaced else "Cluster")
    versions = document["spec"]["versions"]
    assert [v["name"] for v in versions] == list(kind.versions)
    assert [v["name"] for v in versions if v["storage"]] == ["v1alpha2"]
    assert all(v["served"] and v["subresources"] == {"status": {}} for v in versions)
    assert [v.get("deprecated", False) for v in versions] == [v["name"] == "v1alpha1" for v in versions]
    conversion = document["spec"]["conversion"]
    assert conversion["strategy"] == "Webhook"
    assert conversion["webhook"]["conversionReviewVersions"] == ["v1"]
    assert conversion["webhook"]["clientConfig"]["service"]["path"] == "/convert"
    for version in versions:
        status = version["schema"]["openAPIV3Schema"]["properties"]["status"]["properties"]["ipAddresses"]
        assert sorted(status["required"]) == ["free", "outOfRange", "total", "used"]
        assert all(p["type"] == "integer" for p in status["properties"].values())


def test_ip_pool_constraints_and_columns() -> None:
    for kind in POOL_KINDS[:2]:
        document = crd(kind)
        v2 = _spec_schema(document, "v1alpha2")
        assert v2["required"] == ["addresses", "prefix"]
        assert (v2["properties"]["prefix"]["minimum"], v2["properties"]["prefix"]["maximum"]) == (0, 128)
        assert v2["properties"]["addressReuseGracePeriodSeconds"]["minimum"] == 0
        v1 = _spec_schema(document, "v1alpha1")
        assert "required" not in v1
        assert v1["properties"]["prefix"] == {**v1["properties"]["prefix"], "maximum": 128}
        assert "minimum" not in v1["properties"]["prefix"]
        columns = {
            c["name"]: c["jsonPath"] for c in _version(document, "v1alpha1")["additionalPrinterColumns"]
        }
        assert columns["First"] == ".spec.start"  # §10.4: upstream's .spec.first never matches anything
        assert columns["Last"] == ".spec.end"
        assert ("Addresses" in columns) == kind.namespaced
        v2_columns = [c["name"] for c in _version(document, "v1alpha2")["additionalPrinterColumns"]]
        assert v2_columns == ["Addresses", "Total", "Free", "Used", "Ready", "Available"]


def test_prefix_pool_constraints() -> None:
    for kind in POOL_KINDS[2:]:
        spec = _spec_schema(crd(kind), "v1alpha2")
        assert spec["required"] == ["prefixes"]
        length = spec["properties"]["allocationPrefixLength"]
        assert (length["default"], length["minimum"], length["maximum"]) == (64, 1, 128)
        columns = [c["name"] for c in _version(crd(kind), "v1alpha2")["additionalPrinterColumns"]]
        assert columns == ["Prefixes", "Total", "Free", "Used", "Ready", "Available"]


@pytest.mark.parametrize("kind", POOL_KINDS, ids=lambda k: k.kind)
def test_every_version_has_metav1_conditions_and_their_columns(kind: Any) -> None:
    """Both IP-pool versions carry the same conditions, so conversion passes them through unchanged."""
    for version in crd(kind)["spec"]["versions"]:
        status = version["schema"]["openAPIV3Schema"]["properties"]["status"]["properties"]
        conditions = status["conditions"]
        assert conditions["type"] == "array"
        assert conditions["x-kubernetes-list-type"] == "map"
        assert conditions["x-kubernetes-list-map-keys"] == ["type"]
        assert conditions["maxItems"] == 32
        item = conditions["items"]
        assert item["required"] == ["lastTransitionTime", "message", "reason", "status", "type"]
        assert item["properties"]["status"]["enum"] == ["True", "False", "Unknown"]
        assert item["properties"]["observedGeneration"]["minimum"] == 0
        assert item["properties"]["lastTransitionTime"]["format"] == "date-time"
        columns = {c["name"]: c for c in version["additionalPrinterColumns"]}
        assert columns["Ready"]["jsonPath"] == '.status.conditions[?(@.type=="Ready")].status'
        assert columns["Available"]["jsonPath"] == '.status.conditions[?(@.type=="Available")].status'
        assert [c["name"] for c in version["additionalPrinterColumns"]][-2:] == ["Ready", "Available"]


def test_webhook_url_and_ca_injection() -> None:
    documents = crds("https://127.0.0.1:9443/", b"-----BEGIN CERTIFICATE-----\n")
    for document in documents:
        config = document["spec"]["conversion"]["webhook"]["clientConfig"]
        assert config["url"] == "https://127.0.0.1:9443/convert"
        assert base64.b64decode(config["caBundle"]) == b"-----BEGIN CERTIFICATE-----\n"
    assert all(d["spec"]["conversion"] == {"strategy": "None"} for d in crds(""))
    assert crds() == [crd(k) for k in POOL_KINDS]
