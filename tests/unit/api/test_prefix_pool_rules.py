"""Prefix-pool admission rules (spec §3.5): defaulting, validation table, update checks, /128 warnings."""

import pytest

from incluster_ipam.api.models import AllocatedAddress, PrefixPoolSpec
from incluster_ipam.api.prefix_validation import (
    WARN_GATEWAY_ALLOCATABLE,
    WARN_HOST_LENGTH,
    default_prefix_pool,
    prefix_pool_status,
    prefix_pool_warnings,
    validate_prefix_pool_update,
)

KIND = "InClusterPrefixPool"


def spec(**fields: object) -> PrefixPoolSpec:
    return PrefixPoolSpec.from_dict(fields)


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({}, "prefixes is required"),
        ({"prefixes": ["fd00::1"]}, "provided entry is not a valid IPv6 CIDR"),
        ({"prefixes": ["fd00::1/64"]}, "CIDR must be network-aligned"),
        ({"prefixes": ["fd00::/65"]}, "CIDR prefix length must be <= allocationPrefixLength (64)"),
        ({"prefixes": ["10.0.0.0/24"]}, "only IPv6 prefixes are supported"),
        ({"prefixes": ["fd00::/64"], "gateway": "10.0.0.1"}, "provided gateway must be IPv6"),
        (
            {"prefixes": ["fd00::/64"], "excludedPrefixes": ["10.0.0.1"]},
            "only IPv6 excluded prefixes are supported",
        ),
        ({"prefixes": ["fd00::/64", "fd01::/64"]}, ""),
        ({"prefixes": ["fd00::/48"], "allocationPrefixLength": 56}, ""),
        ({"prefixes": ["fd00::/48"], "allocationPrefixLength": 96}, ""),
        ({"prefixes": ["fd00::/48"], "allocationPrefixLength": 128}, ""),
        ({"prefixes": ["fd00::/48"], "allocationPrefixLength": 64}, ""),
    ],
)
def test_upstream_validation_table(fields: dict[str, object], error: str) -> None:
    status = prefix_pool_status(KIND, "test", spec(**fields))
    if not error:
        assert status is None
        return
    assert status is not None
    assert (status.code, status.reason) == (422, "Invalid")
    assert error in status.message


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"prefixes": []}, "spec.prefixes: Invalid value: []: prefixes is required"),
        ({"prefixes": None, "gateway": "x"}, "spec.prefixes: Invalid value: null: prefixes is required"),
        (
            {"prefixes": ["fd00::/64"], "allocationPrefixLength": 129, "gateway": "x"},
            "spec.allocationPrefixLength: Invalid value: 129: "
            "allocationPrefixLength must be between 1 and 128",
        ),
        (
            {
                "prefixes": ["fd00::1/48"],
                "allocationPrefixLength": 40,
                "gateway": "nope",
                "excludedPrefixes": ["?"],
            },
            '[spec.prefixes: Invalid value: "fd00::1/48": CIDR must be network-aligned, '
            'spec.prefixes: Invalid value: "fd00::1/48": '
            "CIDR prefix length must be <= allocationPrefixLength (40), "
            'spec.gateway: Invalid value: "nope": ParseAddr("nope"): unable to parse IP, '
            'spec.excludedPrefixes: Invalid value: "?": provided entry is not a valid IP, range, nor CIDR]',
        ),
    ],
)
def test_exact_messages_and_early_stops(fields: dict[str, object], message: str) -> None:
    status = prefix_pool_status(KIND, "test", spec(**fields))
    assert status is not None
    assert status.message == f'InClusterPrefixPool.ipam.cluster.x-k8s.io "test" is invalid: {message}'


def test_defaulting_sets_64_only_when_unset() -> None:
    assert default_prefix_pool(spec(prefixes=["fd00::/48"])).allocation_prefix_length == 64
    assert (
        default_prefix_pool(spec(prefixes=["fd00::/48"], allocationPrefixLength=56)).allocation_prefix_length
        == 56
    )


def allocated(address: str, prefix: int | None = 64) -> AllocatedAddress:
    return AllocatedAddress("ip", "ns1", address, prefix)


def test_update_rejects_orphaned_allocations_sorted() -> None:
    old = spec(prefixes=["fd00::/62"])
    new = spec(prefixes=["fd00:0:0:1::/64"])
    in_use = [allocated("fd00:0:0:2::"), allocated("fd00::"), allocated("fd00:0:0:1::")]
    status = validate_prefix_pool_update(KIND, "p", old, new, in_use)
    assert status is not None
    assert (status.code, status.reason) == (400, "BadRequest")
    assert status.message == "existing allocations become non-allocatable: [fd00:0:0:2:: fd00::]"


def test_update_rejects_exclusion_over_allocation_and_prefixless_or_bad_addresses() -> None:
    old = spec(prefixes=["fd30::/62"])
    new = spec(prefixes=["fd30::/62"], excludedPrefixes=["fd30::/64"])
    status = validate_prefix_pool_update(KIND, "p", old, new, [allocated("fd30::")])
    assert status is not None
    assert status.message == "existing allocations become non-allocatable: [fd30::]"
    # Allocations the old spec did not allow either (no prefix, unparsable, another length) are already
    # stranded: they do not lock the pool for edits (finding 12 of the December review; upstream refuses).
    assert (
        validate_prefix_pool_update(KIND, "p", old, old, [allocated("fd30::", None), allocated("junk")])
        is None
    )
    assert validate_prefix_pool_update(KIND, "p", old, old, [allocated("fd30:0:0:1::", 56)]) is None
    status = validate_prefix_pool_update(
        KIND, "p", old, new, [allocated("fd30::"), allocated("junk"), allocated("fd30:0:0:1::", 56)]
    )
    assert status is not None
    assert status.message.endswith("[fd30::]")


def test_update_allows_policy_changes_for_in_range_allocations() -> None:
    old = spec(prefixes=["fd20::/62"])
    new = spec(prefixes=["fd20::/62"], excludedPrefixes=["fd20:0:0:2::/64"], gateway="fd20:0:0:1::1")
    assert validate_prefix_pool_update(KIND, "p", old, new, [allocated("fd20::")]) is None


def test_allocation_length_is_immutable_but_unset_equals_64() -> None:
    old = spec(prefixes=["fd00::/48"], allocationPrefixLength=56)
    status = validate_prefix_pool_update(
        KIND, "p", old, spec(prefixes=["fd00::/48"], allocationPrefixLength=64), []
    )
    assert status is not None
    assert (status.code, status.message) == (400, "spec.allocationPrefixLength is immutable")
    unset = spec(prefixes=["fd00::/48"])
    assert (
        validate_prefix_pool_update(
            KIND, "p", unset, spec(prefixes=["fd00::/48"], allocationPrefixLength=64), []
        )
        is None
    )


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        (
            {"prefixes": ["fd40::/64"], "allocationPrefixLength": 128, "gateway": "fd40::1"},
            [WARN_HOST_LENGTH, WARN_GATEWAY_ALLOCATABLE],
        ),
        ({"prefixes": ["fd60::/64"], "allocationPrefixLength": 128}, [WARN_HOST_LENGTH]),
        (
            {"prefixes": ["fd40::/64"], "allocationPrefixLength": 128, "gateway": "fd41::1"},
            [WARN_HOST_LENGTH],
        ),
        ({"prefixes": ["fd50::/64"], "gateway": "fd50::1"}, []),
    ],
)
def test_host_length_warnings(fields: dict[str, object], expected: list[str]) -> None:
    assert prefix_pool_warnings(spec(**fields)) == expected


def test_warning_texts_are_upstreams() -> None:
    assert WARN_HOST_LENGTH == (
        "spec.allocationPrefixLength=128 behaves like host-address allocation; consider InClusterIPPool for "
        "single-address semantics"
    )
    assert WARN_GATEWAY_ALLOCATABLE == (
        "spec.gateway is within spec.prefixes and is not reserved; "
        "with /128 allocationPrefixLength it may also be allocated to claims"
    )
