"""v1alpha1 <-> v1alpha2 conversion (spec §2.4) and lossless round trips (§10.3), both IP-pool kinds."""

import json
from typing import Any

import pytest

from incluster_ipam.api.constants import (
    API_VERSION_V1ALPHA1,
    API_VERSION_V1ALPHA2,
    CONVERSION_DATA_ANNOTATION,
)
from incluster_ipam.api.conversion import ConversionError, convert, spec_up
from incluster_ipam.api.models import IPPoolSpecV1Alpha1

KINDS = ["InClusterIPPool", "GlobalInClusterIPPool"]


def obj(
    kind: str, version: str, spec: dict[str, Any], annotations: dict[str, str] | None = None
) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": "pool", "uid": "u-1", "resourceVersion": "7", "labels": {"a": "b"}}
    if kind == "InClusterIPPool":
        metadata["namespace"] = "default"
    if annotations:
        metadata["annotations"] = annotations
    return {
        "apiVersion": version,
        "kind": kind,
        "metadata": metadata,
        "spec": spec,
        "status": {"ipAddresses": {"total": 10, "free": 5, "used": 5, "outOfRange": 0}},
    }


@pytest.mark.parametrize(
    ("v1", "expected"),
    [
        ({"subnet": "1.1.1.0/24"}, {"addresses": ["1.1.1.1-1.1.1.254"], "prefix": 24}),
        ({"subnet": "1.1.1.77/24"}, {"addresses": ["1.1.1.1-1.1.1.254"], "prefix": 24}),
        (
            {
                "subnet": "10.0.0.0/24",
                "start": "10.0.0.10",
                "end": "10.0.0.20",
                "prefix": 16,
                "gateway": "10.0.0.1",
            },
            {"addresses": ["10.0.0.10-10.0.0.20"], "prefix": 16, "gateway": "10.0.0.1"},
        ),
        (
            {"addresses": ["10.0.0.5"], "subnet": "10.0.0.0/30"},
            {"addresses": ["10.0.0.5", "10.0.0.1-10.0.0.2"], "prefix": 30},
        ),
        (
            {"addresses": ["10.0.0.1", "10.0.0.2"], "prefix": 24},
            {"addresses": ["10.0.0.1", "10.0.0.2"], "prefix": 24},
        ),
        ({"start": "10.0.0.1", "prefix": 24}, {"prefix": 24}),
        (
            {"start": "10.0.0.1", "end": "10.0.0.9", "prefix": 24},
            {"addresses": ["10.0.0.1-10.0.0.9"], "prefix": 24},
        ),
        ({"subnet": "fd00::/120"}, {"addresses": ["fd00::1-fd00::fe"], "prefix": 120}),
        ({"subnet": "255.255.255.255/32"}, {"addresses": ["invalid IP-255.255.255.254"], "prefix": 32}),
    ],
)
def test_up_conversion_follows_upstream(v1: dict[str, Any], expected: dict[str, Any]) -> None:
    assert spec_up(IPPoolSpecV1Alpha1.from_dict(v1)).to_dict() == expected


def test_bad_subnet_is_a_spec_subnet_error() -> None:
    with pytest.raises(ConversionError) as info:
        spec_up(IPPoolSpecV1Alpha1(subnet="10.0.0.0"))
    assert (
        str(info.value) == 'spec.subnet: Invalid value: "10.0.0.0": netip.ParsePrefix("10.0.0.0"): no \'/\''
    )


@pytest.mark.parametrize("kind", KINDS)
def test_up_keeps_metadata_status_and_stores_the_v1alpha1_spec(kind: str) -> None:
    source = obj(kind, API_VERSION_V1ALPHA1, {"subnet": "1.1.1.0/24"})
    hub = convert(source, API_VERSION_V1ALPHA2)
    assert hub["apiVersion"] == API_VERSION_V1ALPHA2
    assert hub["spec"] == {"addresses": ["1.1.1.1-1.1.1.254"], "prefix": 24}
    assert hub["status"] == source["status"]
    stored = json.loads(hub["metadata"]["annotations"][CONVERSION_DATA_ANNOTATION])
    assert stored == {"apiVersion": API_VERSION_V1ALPHA1, "kind": kind, "spec": {"subnet": "1.1.1.0/24"}}
    del hub["metadata"]["annotations"]
    assert hub["metadata"] == source["metadata"]
    assert source["apiVersion"] == API_VERSION_V1ALPHA1  # the input is not modified


CONDITIONS = [
    {
        "type": "Ready",
        "status": "False",
        "observedGeneration": 4,
        "lastTransitionTime": "2026-12-01T10:00:00Z",
        "reason": "InvalidSpec",
        "message": "spec.addresses: bad",
    },
    {"type": "example.com/Other", "status": "True", "lastTransitionTime": "t", "reason": "R", "message": ""},
]


@pytest.mark.parametrize("kind", KINDS)
def test_conditions_pass_through_both_ways_unchanged(kind: str) -> None:
    """Both versions carry status.conditions (same schema), so, like status.ipAddresses, they are copied."""
    source = obj(
        kind, API_VERSION_V1ALPHA2, {"addresses": ["10.0.0.1"], "prefix": 24, "excludedAddresses": []}
    )
    source["status"]["conditions"] = CONDITIONS
    down = convert(source, API_VERSION_V1ALPHA1)
    assert down["status"] == source["status"]
    back = convert(down, API_VERSION_V1ALPHA2)
    assert back["status"] == source["status"]
    old = obj(kind, API_VERSION_V1ALPHA1, {"subnet": "10.0.0.0/30"})
    old["status"]["conditions"] = CONDITIONS
    assert convert(convert(old, API_VERSION_V1ALPHA2), API_VERSION_V1ALPHA1)["status"] == old["status"]


@pytest.mark.parametrize("kind", KINDS)
def test_down_drops_new_fields_into_the_annotation(kind: str) -> None:
    hub_spec = {
        "addresses": ["10.0.0.0/24"],
        "prefix": 24,
        "gateway": "10.0.0.1",
        "allocateReservedIPAddresses": True,
        "excludedAddresses": ["10.0.0.5"],
        "addressReuseGracePeriodSeconds": 30,
    }
    spoke = convert(obj(kind, API_VERSION_V1ALPHA2, hub_spec), API_VERSION_V1ALPHA1)
    assert spoke["spec"] == {"addresses": ["10.0.0.0/24"], "prefix": 24, "gateway": "10.0.0.1"}
    stored = json.loads(spoke["metadata"]["annotations"][CONVERSION_DATA_ANNOTATION])
    assert stored["apiVersion"] == API_VERSION_V1ALPHA2
    assert stored["spec"] == hub_spec


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    "hub_spec",
    [
        {"addresses": ["10.0.0.10-10.0.0.20"], "prefix": 24},
        {"addresses": ["10.0.0.10-10.0.0.20"], "prefix": 24, "gateway": "10.0.0.1", "excludedAddresses": []},
        {
            "addresses": ["fd00::/120"],
            "prefix": 120,
            "allocateReservedIPAddresses": True,
            "excludedAddresses": ["fd00::5"],
            "addressReuseGracePeriodSeconds": 0,
        },
    ],
)
def test_hub_spoke_hub_is_lossless(kind: str, hub_spec: dict[str, Any]) -> None:
    hub = obj(kind, API_VERSION_V1ALPHA2, hub_spec, {"keep": "me"})
    spoke = convert(hub, API_VERSION_V1ALPHA1)
    assert convert(spoke, API_VERSION_V1ALPHA2) == hub


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    "spoke_spec",
    [
        {"subnet": "1.1.1.0/24"},
        {"subnet": "10.0.0.0/24", "start": "10.0.0.10", "gateway": "10.0.0.1"},
        {"addresses": ["10.0.0.3"], "start": "10.0.0.9"},
        {"addresses": ["10.0.0.3"], "prefix": 24},
    ],
)
def test_spoke_hub_spoke_is_lossless(kind: str, spoke_spec: dict[str, Any]) -> None:
    spoke = obj(kind, API_VERSION_V1ALPHA1, spoke_spec)
    hub = convert(spoke, API_VERSION_V1ALPHA2)
    assert convert(hub, API_VERSION_V1ALPHA1) == spoke


@pytest.mark.parametrize("kind", KINDS)
def test_new_fields_survive_a_v1alpha1_read_modify_write(kind: str) -> None:
    hub = obj(
        kind,
        API_VERSION_V1ALPHA2,
        {"addresses": ["10.0.0.0/24"], "prefix": 24, "excludedAddresses": ["10.0.0.9"]},
    )
    spoke = convert(hub, API_VERSION_V1ALPHA1)
    spoke["spec"]["gateway"] = "10.0.0.254"  # a v1alpha1 client edits the pool
    back = convert(spoke, API_VERSION_V1ALPHA2)
    assert back["spec"] == {
        "addresses": ["10.0.0.0/24"],
        "prefix": 24,
        "gateway": "10.0.0.254",
        "excludedAddresses": ["10.0.0.9"],
    }
    assert CONVERSION_DATA_ANNOTATION not in back["metadata"].get("annotations", {})


@pytest.mark.parametrize("kind", KINDS)
def test_stored_v1alpha1_spec_is_restored_only_while_consistent(kind: str) -> None:
    hub = convert(obj(kind, API_VERSION_V1ALPHA1, {"subnet": "1.1.1.0/24"}), API_VERSION_V1ALPHA2)
    hub["spec"]["addresses"] = ["1.1.1.10-1.1.1.20"]  # edited through v1alpha2: the stored subnet is stale
    spoke = convert(hub, API_VERSION_V1ALPHA1)
    assert spoke["spec"] == {"addresses": ["1.1.1.10-1.1.1.20"], "prefix": 24}
    assert "annotations" not in spoke["metadata"]


def test_upstream_annotation_with_full_v1alpha1_object_is_understood() -> None:
    stored = json.dumps(
        {
            "apiVersion": API_VERSION_V1ALPHA1,
            "kind": "GlobalInClusterIPPool",
            "spec": {"subnet": "1.1.1.0/24", "start": "1.1.1.1", "end": "1.1.1.254", "prefix": 24},
            "status": {},
        }
    )
    hub = obj(
        "GlobalInClusterIPPool",
        API_VERSION_V1ALPHA2,
        {"addresses": ["1.1.1.1-1.1.1.254"], "prefix": 24},
        {CONVERSION_DATA_ANNOTATION: stored},
    )
    spoke = convert(hub, API_VERSION_V1ALPHA1)
    assert spoke["spec"] == {"subnet": "1.1.1.0/24", "start": "1.1.1.1", "end": "1.1.1.254", "prefix": 24}


@pytest.mark.parametrize(
    "garbage",
    [
        "{not json",
        '"a string"',
        '{"apiVersion": "x/v1", "spec": {}}',
        json.dumps(
            {"apiVersion": API_VERSION_V1ALPHA2, "kind": "InClusterIPPool", "spec": {"excludedAddresses": 5}}
        ),
    ],
)
def test_garbage_annotation_is_ignored_and_dropped(garbage: str) -> None:
    spoke = obj(
        "InClusterIPPool",
        API_VERSION_V1ALPHA1,
        {"addresses": ["10.0.0.1"], "prefix": 24},
        {CONVERSION_DATA_ANNOTATION: garbage},
    )
    hub = convert(spoke, API_VERSION_V1ALPHA2)
    assert hub["spec"] == {"addresses": ["10.0.0.1"], "prefix": 24}
    assert "annotations" not in hub["metadata"]


def test_same_version_passes_through_and_unknown_things_fail() -> None:
    prefix_pool = obj("InClusterPrefixPool", API_VERSION_V1ALPHA2, {"prefixes": ["fd00::/48"]})
    assert convert(prefix_pool, API_VERSION_V1ALPHA2) == prefix_pool
    with pytest.raises(ConversionError):
        convert(prefix_pool, API_VERSION_V1ALPHA1)
    with pytest.raises(ConversionError):
        convert(obj("Other", API_VERSION_V1ALPHA1, {}), API_VERSION_V1ALPHA2)
    with pytest.raises(ConversionError):
        convert(obj("InClusterIPPool", API_VERSION_V1ALPHA1, {"prefix": "24"}), API_VERSION_V1ALPHA2)
    with pytest.raises(ConversionError):
        convert([], API_VERSION_V1ALPHA2)
