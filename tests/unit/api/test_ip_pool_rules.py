"""IP-pool admission rules (spec §3.1-3.3, §10.9) as pure functions, with exact messages."""

import pytest

from incluster_ipam.api.constants import DELETE_FOR_MOVE_ANNOTATION, SKIP_VALIDATE_DELETE_ANNOTATION
from incluster_ipam.api.models import IPPoolSpec
from incluster_ipam.api.validation import (
    ip_pool_status,
    validate_ip_pool,
    validate_ip_pool_update,
    validate_pool_delete,
)
from tests.unit.api.scenarios import INVALID, VALID, Scenario

KIND = "InClusterIPPool"


@pytest.mark.parametrize("scenario", INVALID, ids=lambda s: s.name)
def test_invalid_scenarios_are_rejected_with_upstream_text(scenario: Scenario) -> None:
    status = ip_pool_status(KIND, "my-pool", IPPoolSpec.from_dict(scenario.spec))
    assert status is not None
    assert (status.code, status.reason) == (422, "Invalid")
    assert status.message.startswith('InClusterIPPool.ipam.cluster.x-k8s.io "my-pool" is invalid: ')
    assert scenario.error in status.message


@pytest.mark.parametrize("scenario", VALID, ids=lambda s: s.name)
def test_valid_specs_pass(scenario: Scenario) -> None:
    assert validate_ip_pool(IPPoolSpec.from_dict(scenario.spec)) == []


@pytest.mark.parametrize(
    "spec",
    [
        {"addresses": ["10.0.0.10-10.0.0.20"], "prefix": 0, "gateway": "10.0.0.1"},
        {"addresses": ["10.0.0.10-10.0.0.20"], "gateway": "10.0.0.1"},
    ],
)
def test_prefix_zero_and_missing_prefix_are_valid(spec: dict[str, object]) -> None:
    assert validate_ip_pool(IPPoolSpec.from_dict(spec)) == []


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            {"prefix": 24},
            'InClusterIPPool.ipam.cluster.x-k8s.io "p" is invalid: spec.addresses: Invalid value: null: '
            "addresses is required",
        ),
        (
            {"addresses": ["10.0.0.1", "nope", "10.0.0.300"], "prefix": -2, "gateway": "fd00::1%eth0"},
            'InClusterIPPool.ipam.cluster.x-k8s.io "p" is invalid: ['
            'spec.prefix: Invalid value: ["10.0.0.1","nope","10.0.0.300"]: a valid prefix is required, '
            'spec.addresses: Invalid value: "nope": provided address is not a valid IP, range, nor CIDR, '
            'spec.addresses: Invalid value: "10.0.0.300": '
            "provided address is not a valid IP, range, nor CIDR, "
            'spec.gateway: Invalid value: "fd00::1%eth0": IPv6 zones are not supported in pools]',
        ),
        (
            {"addresses": ["10.0.0.1"], "prefix": 24, "gateway": "10.0.0.01"},
            'InClusterIPPool.ipam.cluster.x-k8s.io "p" is invalid: spec.gateway: Invalid value: "10.0.0.01": '
            'ParseAddr("10.0.0.01"): IPv4 field has octet with leading zero',
        ),
        (
            {"addresses": ["10.0.0.1", "fd00::1"], "prefix": 24, "gateway": "10.0.0.254"},
            'InClusterIPPool.ipam.cluster.x-k8s.io "p" is invalid: ['
            'spec.addresses: Invalid value: ["10.0.0.1","fd00::1"]: '
            "provided addresses are of mixed IP families, "
            'spec.gateway: Invalid value: "10.0.0.254": '
            "provided gateway and addresses are of mixed IP families]",
        ),
        (
            {"addresses": ["10.0.0.1"], "prefix": 33},
            'InClusterIPPool.ipam.cluster.x-k8s.io "p" is invalid: spec.prefix: Invalid value: 33: '
            "provided prefix is not valid",
        ),
        (
            {"addresses": ["10.0.0.1", "10.0.0.2"], "prefix": 32},
            'InClusterIPPool.ipam.cluster.x-k8s.io "p" is invalid: '
            'spec.addresses: Invalid value: "10.0.0.2": '
            "provided address belongs to a different subnet than others",
        ),
    ],
)
def test_exact_messages(spec: dict[str, object], message: str) -> None:
    status = ip_pool_status(KIND, "p", IPPoolSpec.from_dict(spec))
    assert status is not None
    assert status.message == message


def test_subnet_is_inferred_from_the_lowest_address_not_the_first_entry() -> None:
    spec = IPPoolSpec.from_dict({"addresses": ["10.0.1.5", "10.0.0.0/23"], "prefix": 23})
    assert validate_ip_pool(spec) == []


def test_gateway_may_lie_outside_addresses_and_subnet() -> None:
    assert (
        validate_ip_pool(
            IPPoolSpec.from_dict({"addresses": ["10.0.0.10"], "prefix": 24, "gateway": "1.1.1.1"})
        )
        == []
    )


POOL = IPPoolSpec.from_dict({"addresses": ["10.0.0.10-10.0.0.20"], "prefix": 24, "gateway": "10.0.0.1"})


@pytest.mark.parametrize(
    ("change", "in_use", "message"),
    [
        ({"addresses": ["10.0.0.15-10.0.0.20"]}, ["10.0.0.10"], "[10.0.0.10-10.0.0.10]"),
        (
            {"addresses": ["10.0.0.15-10.0.0.20"]},
            ["10.0.0.10", "10.0.0.11", "10.0.0.12", "10.0.0.14"],
            "[10.0.0.10-10.0.0.12 10.0.0.14-10.0.0.14]",
        ),
        ({"excludedAddresses": ["10.0.0.12"]}, ["10.0.0.12"], "[10.0.0.12-10.0.0.12]"),
        ({"gateway": "10.0.0.13"}, ["10.0.0.13"], "[10.0.0.13-10.0.0.13]"),
        ({"addresses": ["10.0.0.0/24"]}, ["10.0.0.0", "fd00::5"], "[10.0.0.0-10.0.0.0 fd00::5-fd00::5]"),
    ],
)
def test_update_refuses_dropping_in_use_addresses(
    change: dict[str, object], in_use: list[str], message: str
) -> None:
    new = IPPoolSpec.from_dict({**POOL.to_dict(), **change})
    status = validate_ip_pool_update(KIND, "p", new, in_use)
    assert status is not None
    assert (status.code, status.reason) == (400, "BadRequest")
    assert status.message == "pool addresses do not contain allocated addresses: " + message


def test_update_refuses_turning_off_reserved_addresses_in_use() -> None:
    old = {"addresses": ["10.0.0.0/24"], "prefix": 24, "allocateReservedIPAddresses": True}
    new = IPPoolSpec.from_dict({**old, "allocateReservedIPAddresses": False})
    assert validate_ip_pool_update(KIND, "p", IPPoolSpec.from_dict(old), ["10.0.0.255"]) is None
    status = validate_ip_pool_update(KIND, "p", new, ["10.0.0.255"])
    assert status is not None
    assert status.message.endswith("[10.0.0.255-10.0.0.255]")


def test_update_allows_in_range_changes_and_ignores_unparsable_in_use() -> None:
    new = IPPoolSpec.from_dict({**POOL.to_dict(), "gateway": "10.0.0.254", "prefix": 25})
    assert validate_ip_pool_update(KIND, "p", new, ["10.0.0.10", "not-an-ip", ""]) is None


def test_update_of_an_invalid_spec_is_a_422() -> None:
    status = validate_ip_pool_update(
        KIND, "p", IPPoolSpec.from_dict({"addresses": [], "prefix": 24}), ["10.0.0.1"]
    )
    assert status is not None
    assert status.code == 422


def test_rfc3021_slash31_pool_keeps_both_addresses_usable() -> None:
    new = IPPoolSpec.from_dict({"addresses": ["10.0.0.0/31"], "prefix": 31})
    assert validate_ip_pool_update(KIND, "p", new, ["10.0.0.0", "10.0.0.1"]) is None


@pytest.mark.parametrize(
    ("annotations", "allocated", "refused"),
    [
        ({}, 0, False),
        ({}, 2, True),
        ({SKIP_VALIDATE_DELETE_ANNOTATION: ""}, 2, False),
        ({DELETE_FOR_MOVE_ANNOTATION: ""}, 2, False),
        ({"other": "x"}, 1, True),
    ],
)
def test_delete_protection(annotations: dict[str, str], allocated: int, refused: bool) -> None:
    status = validate_pool_delete(annotations, allocated)
    assert (status is not None) == refused
    if status is not None:
        assert (status.code, status.reason) == (400, "BadRequest")
        assert status.message == (
            "Pool has IPAddresses allocated. Cannot delete Pool until all IPAddresses have been removed."
        )
