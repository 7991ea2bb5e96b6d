"""Pool validation and defaulting through the real kube-apiserver (spec §3.1, §3.4, §3.5).

Every expected message is written out in full: the API server wraps a webhook's denial as
``admission webhook "<name>" denied the request: <message>`` and keeps the status code (422 Invalid for spec
errors). A few upstream rules can never be reached through the API server because the CRD schema refuses the
value first (prefix < 0 or > 128, a negative grace period, allocationPrefixLength > 128); for those the
schema's own message is asserted, which is what upstream's CRDs answer too.
"""

from __future__ import annotations

from typing import Any

import pytest

from incluster_ipam.api.constants import PoolKind
from tests.integration.webhooks.conftest import Answer, Webhooks, pool_body, pool_kind
from tests.unit.api.scenarios import INVALID, VALID

IP_KINDS = [pool_kind("InClusterIPPool"), pool_kind("GlobalInClusterIPPool")]
PREFIX_KINDS = [pool_kind("InClusterPrefixPool"), pool_kind("GlobalInClusterPrefixPool")]

SUBNET = "provided address belongs to a different subnet than others"
BAD_ENTRY = "provided address is not a valid IP, range, nor CIDR"
GATEWAY_MIXED = "provided gateway and addresses are of mixed IP families"

#: Field errors the webhook answers for each upstream scenario (tests/unit/api/scenarios.py INVALID).
IP_WEBHOOK_ERRORS: dict[str, str] = {
    "addresses must be set": "spec.addresses: Invalid value: []: addresses is required",
    "invalid gateway": 'spec.gateway: Invalid value: "invalid": ParseAddr("invalid"): unable to parse IP',
    "addresses in separate subnets": f'spec.addresses: Invalid value: "10.0.1.27": {SUBNET}',
    "invalid address": f'spec.addresses: Invalid value: "garbage": {BAD_ENTRY}',
    "range out of order": f'spec.addresses: Invalid value: "10.0.0.10-10.0.0.5": {BAD_ENTRY}',
    "CIDR with invalid length": f'spec.addresses: Invalid value: "10.0.0.10/33": {BAD_ENTRY}',
    "range below prefix": f'spec.addresses: Invalid value: "10.0.1.0": {SUBNET}',
    "range above prefix": f'spec.addresses: Invalid value: "10.0.2.10-10.0.2.20": {SUBNET}',
    "range start below prefix": f'[spec.addresses: Invalid value: "10.0.1.0": {SUBNET}, '
    f'spec.addresses: Invalid value: "10.0.0.20-10.0.1.20": {SUBNET}]',
    "range end above prefix": f'spec.addresses: Invalid value: "10.0.1.20-10.0.2.20": {SUBNET}',
    "CIDR below prefix": f'spec.addresses: Invalid value: "10.0.1.0": {SUBNET}',
    "CIDR above prefix": f'spec.addresses: Invalid value: "10.0.2.1/24": {SUBNET}',
    "CIDR start below prefix": f'[spec.addresses: Invalid value: "10.0.1.0": {SUBNET}, '
    f'spec.addresses: Invalid value: "10.0.0.0/23": {SUBNET}]',
    "CIDR end above prefix": f'[spec.addresses: Invalid value: "10.0.1.0": {SUBNET}, '
    f'spec.addresses: Invalid value: "10.0.1.0/23": {SUBNET}]',
    "IPv4 addresses, IPv6 gateway": f'spec.gateway: Invalid value: "fd00::1": {GATEWAY_MIXED}',
    "IPv6 addresses, IPv4 gateway": f'spec.gateway: Invalid value: "10.0.0.1": {GATEWAY_MIXED}',
    "mixed address families": '[spec.addresses: Invalid value: ["fd00::1","fd00::100-fd00::200","10.0.1.0",'
    '"10.0.0.2-10.0.0.250"]: provided addresses are of mixed IP families, '
    f'spec.gateway: Invalid value: "10.0.0.1": {GATEWAY_MIXED}]',
    "mixed excluded families": '[spec.excludedAddresses: Invalid value: ["fd00::1","10.0.0.4"]: '
    "provided addresses are of mixed IP families, "
    'spec.excludedAddresses: Invalid value: ["fd00::1","10.0.0.4"]: '
    "addresses and excluded addresses are of mixed IP families]",
    "addresses and excluded addresses of different families": (
        'spec.excludedAddresses: Invalid value: ["fd00::1"]: '
        "addresses and excluded addresses are of mixed IP families"
    ),
}

#: Scenarios the CRD schema refuses before any webhook is called (same with upstream's CRDs).
IP_SCHEMA_ERRORS: dict[str, str] = {
    "negative prefix": "spec.prefix: Invalid value: -1: "
    "spec.prefix in body should be greater than or equal to 0",
    "invalid prefix": "spec.prefix: Invalid value: 9999: "
    "spec.prefix in body should be less than or equal to 128",
    "negative reuse grace period": "spec.addressReuseGracePeriodSeconds: Invalid value: -1: "
    "spec.addressReuseGracePeriodSeconds in body should be greater than or equal to 0",
}

#: Further webhook answers the upstream table does not cover but the API server can reach.
IP_EXTRA: list[tuple[str, dict[str, Any] | None, str]] = [
    ("no spec at all", None, "spec.addresses: Invalid value: null: addresses is required"),
    (
        "prefix too long for IPv4",
        {"addresses": ["10.0.0.1"], "prefix": 33},
        "spec.prefix: Invalid value: 33: provided prefix is not valid",
    ),
    (
        "unparsable exclusion",
        {"addresses": ["10.0.0.1"], "prefix": 24, "excludedAddresses": ["nope"]},
        f'spec.excludedAddresses: Invalid value: "nope": {BAD_ENTRY}',
    ),
]

PREFIX_WEBHOOK_ERRORS: list[tuple[str, dict[str, Any] | None, str]] = [
    ("prefixes empty", {"prefixes": []}, "spec.prefixes: Invalid value: []: prefixes is required"),
    (
        "not a CIDR",
        {"prefixes": ["2001:db8::1"]},
        'spec.prefixes: Invalid value: "2001:db8::1": provided entry is not a valid IPv6 CIDR',
    ),
    (
        "host bits set",
        {"prefixes": ["2001:db8::1/64"]},
        'spec.prefixes: Invalid value: "2001:db8::1/64": CIDR must be network-aligned',
    ),
    (
        "entry longer than the allocation length",
        {"prefixes": ["2001:db8::/65"]},
        'spec.prefixes: Invalid value: "2001:db8::/65": '
        "CIDR prefix length must be <= allocationPrefixLength (64)",
    ),
    (
        "IPv4 prefix",
        {"prefixes": ["10.0.0.0/24"]},
        'spec.prefixes: Invalid value: "10.0.0.0/24": only IPv6 prefixes are supported',
    ),
    (
        "IPv4 gateway",
        {"prefixes": ["2001:db8::/64"], "gateway": "10.0.0.1"},
        'spec.gateway: Invalid value: "10.0.0.1": provided gateway must be IPv6',
    ),
    (
        "unparsable gateway",
        {"prefixes": ["2001:db8::/64"], "gateway": "nope"},
        'spec.gateway: Invalid value: "nope": ParseAddr("nope"): unable to parse IP',
    ),
    (
        "IPv4 exclusion",
        {"prefixes": ["2001:db8::/64"], "excludedPrefixes": ["10.0.0.1"]},
        'spec.excludedPrefixes: Invalid value: "10.0.0.1": only IPv6 excluded prefixes are supported',
    ),
    (
        "everything wrong at once",
        {
            "prefixes": ["2001:db8::1/48"],
            "allocationPrefixLength": 40,
            "gateway": "nope",
            "excludedPrefixes": ["?"],
        },
        '[spec.prefixes: Invalid value: "2001:db8::1/48": CIDR must be network-aligned, '
        'spec.prefixes: Invalid value: "2001:db8::1/48": '
        "CIDR prefix length must be <= allocationPrefixLength (40), "
        'spec.gateway: Invalid value: "nope": ParseAddr("nope"): unable to parse IP, '
        'spec.excludedPrefixes: Invalid value: "?": provided entry is not a valid IP, range, nor CIDR]',
    ),
]

PREFIX_SCHEMA_ERRORS: list[tuple[str, dict[str, Any] | None, str]] = [
    # the mutating webhook adds spec.allocationPrefixLength, then the schema misses spec.prefixes
    ("no spec at all", None, "spec.prefixes: Required value"),
    (
        "allocation length above 128",
        {"prefixes": ["2001:db8::/64"], "allocationPrefixLength": 129},
        "spec.allocationPrefixLength: Invalid value: 129: "
        "spec.allocationPrefixLength in body should be less than or equal to 128",
    ),
    ("prefixes missing", {"gateway": "2001:db8::1"}, "spec.prefixes: Required value"),
]

PREFIX_VALID: list[dict[str, Any]] = [
    {"prefixes": ["2001:db8:1::/64", "2001:db8:2::/64"]},
    {"prefixes": ["2001:db8:3::/48"], "allocationPrefixLength": 56},
    {"prefixes": ["2001:db8:4::/48"], "allocationPrefixLength": 96, "excludedPrefixes": ["2001:db8:4::/96"]},
    {"prefixes": ["2001:db8:5::/48"], "allocationPrefixLength": 64, "gateway": "2001:db8:5::1"},
]

WARN_HOST_LENGTH = (
    "spec.allocationPrefixLength=128 behaves like host-address allocation; consider InClusterIPPool for "
    "single-address semantics"
)
WARN_GATEWAY = (
    "spec.gateway is within spec.prefixes and is not reserved; "
    "with /128 allocationPrefixLength it may also be allocated to claims"
)


def webhook_denial(kind: PoolKind, name: str, fields: str) -> str:
    return (
        f'admission webhook "validation.{kind.singular}.ipam.cluster.x-k8s.io" denied the request: '
        f'{kind.kind}.ipam.cluster.x-k8s.io "{name}" is invalid: {fields}'
    )


def schema_denial(kind: PoolKind, name: str, fields: str) -> str:
    return f'{kind.kind}.ipam.cluster.x-k8s.io "{name}" is invalid: {fields}'


async def create(
    hooks: Webhooks,
    kind: PoolKind,
    name: str,
    spec: dict[str, Any] | None,
    namespace: str,
    *,
    version: str = "v1alpha2",
) -> Answer:
    if not kind.namespaced:
        hooks.track(kind, name)
    return await hooks.api.create(pool_body(kind, name, spec, namespace=namespace, version=version))


async def assert_refused(
    hooks: Webhooks,
    answer: Answer,
    message: str,
    *,
    kind: PoolKind,
    name: str,
    namespace: str,
    label: str = "",
) -> None:
    """422 Invalid with exactly ``message``, and nothing stored."""
    assert (answer.status, answer.body.get("reason"), answer.message) == (422, "Invalid", message), label
    stored = await hooks.api.get(kind, name, namespace if kind.namespaced else None)
    assert stored.status == 404, f"a refused pool must not be stored ({label})"


def test_every_upstream_scenario_has_an_expected_message() -> None:
    assert {s.name for s in INVALID} == IP_WEBHOOK_ERRORS.keys() | IP_SCHEMA_ERRORS.keys()


@pytest.mark.parametrize("kind", IP_KINDS, ids=lambda k: k.kind)
async def test_invalid_ip_pools_are_refused_with_upstream_messages(
    hooks: Webhooks, namespace: str, kind: PoolKind
) -> None:
    name = hooks.global_name("invalid")
    for scenario in INVALID:
        answer = await create(hooks, kind, name, scenario.spec, namespace)
        if scenario.name in IP_SCHEMA_ERRORS:
            expected = schema_denial(kind, name, IP_SCHEMA_ERRORS[scenario.name])
        else:
            expected = webhook_denial(kind, name, IP_WEBHOOK_ERRORS[scenario.name])
        await assert_refused(
            hooks, answer, expected, kind=kind, name=name, namespace=namespace, label=scenario.name
        )
    for label, spec, fields in IP_EXTRA:
        answer = await create(hooks, kind, name, spec, namespace)
        expected = webhook_denial(kind, name, fields)
        await assert_refused(hooks, answer, expected, kind=kind, name=name, namespace=namespace, label=label)


@pytest.mark.parametrize("kind", IP_KINDS, ids=lambda k: k.kind)
async def test_negative_prefix_through_v1alpha1_reaches_the_webhook(
    hooks: Webhooks, namespace: str, kind: PoolKind
) -> None:
    # v1alpha1's schema has no minimum: the converted object reaches the webhook, which answers like upstream
    # (the value printed is the addresses list, upstream's quirk).
    name = hooks.global_name("negative")
    answer = await create(
        hooks, kind, name, {"addresses": ["10.0.0.1"], "prefix": -1}, namespace, version="v1alpha1"
    )
    expected = webhook_denial(
        kind, name, 'spec.prefix: Invalid value: ["10.0.0.1"]: a valid prefix is required'
    )
    await assert_refused(hooks, answer, expected, kind=kind, name=name, namespace=namespace)


@pytest.mark.parametrize("kind", IP_KINDS, ids=lambda k: k.kind)
async def test_valid_ip_pools_are_accepted_and_stored_unchanged(
    hooks: Webhooks, namespace: str, kind: PoolKind
) -> None:
    for index, scenario in enumerate(VALID):
        name = hooks.global_name(f"valid-{index}")
        answer = await create(hooks, kind, name, scenario.spec, namespace)
        assert answer.status == 201, (scenario.name, answer.body)
        assert answer.body["spec"] == scenario.spec, scenario.name


@pytest.mark.parametrize("kind", PREFIX_KINDS, ids=lambda k: k.kind)
async def test_invalid_prefix_pools_are_refused_with_upstream_messages(
    hooks: Webhooks, namespace: str, kind: PoolKind
) -> None:
    name = hooks.global_name("invalid")
    for label, spec, fields in PREFIX_WEBHOOK_ERRORS:
        answer = await create(hooks, kind, name, spec, namespace)
        expected = webhook_denial(kind, name, fields)
        await assert_refused(hooks, answer, expected, kind=kind, name=name, namespace=namespace, label=label)
    for label, spec, fields in PREFIX_SCHEMA_ERRORS:
        answer = await create(hooks, kind, name, spec, namespace)
        expected = schema_denial(kind, name, fields)
        await assert_refused(hooks, answer, expected, kind=kind, name=name, namespace=namespace, label=label)


@pytest.mark.parametrize("kind", PREFIX_KINDS, ids=lambda k: k.kind)
async def test_valid_prefix_pools_are_accepted(hooks: Webhooks, namespace: str, kind: PoolKind) -> None:
    for index, spec in enumerate(PREFIX_VALID):
        name = hooks.global_name(f"valid-{index}")
        answer = await create(hooks, kind, name, spec, namespace)
        assert answer.status == 201, (spec, answer.body)
        assert answer.body["spec"] == {"allocationPrefixLength": 64, **spec}


@pytest.mark.parametrize("kind", PREFIX_KINDS, ids=lambda k: k.kind)
async def test_mutating_webhook_defaults_allocation_length_to_64(
    hooks: Webhooks, namespace: str, kind: PoolKind
) -> None:
    # An explicit 0 is not touched by the CRD default, and the schema (minimum 1) would refuse it: only the
    # mutating webhook, which runs before schema validation, can turn it into 64.
    name = hooks.global_name("defaulted")
    answer = await create(
        hooks, kind, name, {"prefixes": ["2001:db8:10::/48"], "allocationPrefixLength": 0}, namespace
    )
    assert answer.status == 201, answer.body
    stored = await hooks.api.get(kind, name, namespace if kind.namespaced else None)
    assert stored.body["spec"] == {"prefixes": ["2001:db8:10::/48"], "allocationPrefixLength": 64}


@pytest.mark.parametrize("kind", PREFIX_KINDS, ids=lambda k: k.kind)
async def test_host_length_pools_come_back_with_warnings(
    hooks: Webhooks, namespace: str, kind: PoolKind
) -> None:
    name = hooks.global_name("host-length")
    net = "2001:db8:20" if kind.namespaced else "2001:db8:21"  # a global pool is compared with every pool
    spec = {"prefixes": [f"{net}::/64"], "allocationPrefixLength": 128, "gateway": f"{net}::1"}
    answer = await create(hooks, kind, name, spec, namespace)
    assert answer.status == 201, answer.body
    assert answer.warnings == [WARN_HOST_LENGTH, WARN_GATEWAY]

    # on update too; a gateway outside the prefixes leaves only the first warning
    updated = {**answer.body, "spec": {**spec, "gateway": "2001:db8:ffff::1"}}
    answer = await hooks.api.replace(updated)
    assert answer.status == 200, answer.body
    assert answer.warnings == [WARN_HOST_LENGTH]


@pytest.mark.parametrize("kind", PREFIX_KINDS, ids=lambda k: k.kind)
async def test_allocation_length_is_immutable(hooks: Webhooks, namespace: str, kind: PoolKind) -> None:
    name = hooks.global_name("immutable")
    answer = await create(hooks, kind, name, {"prefixes": ["2001:db8:30::/48"]}, namespace)
    assert answer.status == 201, answer.body
    changed = {**answer.body, "spec": {**answer.body["spec"], "allocationPrefixLength": 56}}
    answer = await hooks.api.replace(changed)
    assert (answer.status, answer.body.get("reason"), answer.message) == (
        400,
        "BadRequest",
        f'admission webhook "validation.{kind.singular}.ipam.cluster.x-k8s.io" denied the request: '
        "spec.allocationPrefixLength is immutable",
    )
