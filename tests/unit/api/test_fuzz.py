"""Property tests: arbitrary input never escapes as an exception, the rules agree with the address core,
and every valid pool survives a v1alpha1 round trip unchanged."""

import contextlib
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from incluster_ipam.api import goparse
from incluster_ipam.api.constants import (
    API_VERSION_V1ALPHA1,
    API_VERSION_V1ALPHA2,
    POOL_KINDS,
)
from incluster_ipam.api.conversion import ConversionError, convert
from incluster_ipam.api.models import DecodeError, IPPoolSpec, IPPoolSpecV1Alpha1, Pool, PrefixPoolSpec
from incluster_ipam.api.overlap import overlap_warnings
from incluster_ipam.api.prefix_validation import prefix_pool_warnings, validate_prefix_pool
from incluster_ipam.api.specs import prefix_core_spec
from incluster_ipam.api.validation import validate_ip_pool, validate_ip_pool_update
from incluster_ipam.ipam import addresses as addr
from incluster_ipam.ipam import pool as core
from incluster_ipam.ipam import prefix as prefix_core

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

v4 = st.builds(lambda a, b: f"10.0.{a}.{b}", st.integers(0, 3), st.integers(0, 255))
v6 = st.builds(lambda a, b: f"fd00::{a:x}:{b:x}", st.integers(0, 3), st.integers(0, 0xFFFF))
address = st.one_of(v4, v6, st.sampled_from(["::", "::ffff:10.0.0.1", "255.255.255.255", "0.0.0.0"]))
entry = st.one_of(
    address,
    st.builds(lambda a, b: f"{a}-{b}", address, address),
    st.builds(lambda a, n: f"{a}/{n}", address, st.integers(0, 130)),
    st.text(alphabet="0123456789abcdef.:/-% x", max_size=24),
    st.text(max_size=8),
)
json_scalar = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.text(max_size=10), st.floats()
)
json_value = st.recursive(
    json_scalar,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=6,
)


def maybe(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(strategy, json_value)


ip_spec_dict = st.fixed_dictionaries(
    {},
    optional={
        "addresses": maybe(st.lists(entry, max_size=4)),
        "prefix": maybe(st.integers(-2, 140)),
        "gateway": maybe(st.one_of(address, st.text(alphabet="0123456789abcdef.:%", max_size=12))),
        "allocateReservedIPAddresses": maybe(st.booleans()),
        "excludedAddresses": maybe(st.lists(entry, max_size=3)),
        "addressReuseGracePeriodSeconds": maybe(st.integers(-5, 5)),
    },
)


def _in_subnet(version: int) -> st.SearchStrategy[str]:
    """Entries near one subnet (10.9.8.0/24 or fd09:8::/120), so that many generated pools are valid."""
    base = "10.9.8." if version == 4 else "fd09:8::"
    fmt = str if version == 4 else (lambda n: f"{n:x}")
    host = st.integers(0, 255).map(lambda n: base + fmt(n))
    size = 32 if version == 4 else 128
    return st.one_of(
        host,
        st.builds(lambda a, b: f"{a}-{b}", host, host),
        st.builds(lambda a, n: f"{a}/{n}", host, st.integers(size - 10, size)),
    )


coherent_ip_spec = st.sampled_from([4, 6]).flatmap(
    lambda version: st.fixed_dictionaries(
        {
            "addresses": st.lists(_in_subnet(version), min_size=1, max_size=4),
            "prefix": st.sampled_from([0, 16, 23, 24, 25, 31, 32, 120, 127, 128, 129]),
        },
        optional={
            "gateway": st.one_of(
                _in_subnet(version).filter(lambda e: "-" not in e and "/" not in e), address
            ),
            "allocateReservedIPAddresses": st.booleans(),
            "excludedAddresses": st.lists(st.one_of(_in_subnet(version), entry), max_size=2),
            "addressReuseGracePeriodSeconds": st.integers(-1, 60),
        },
    )
)


prefix_spec_dict = st.fixed_dictionaries(
    {},
    optional={
        "prefixes": maybe(
            st.lists(st.one_of(entry, st.builds(lambda n: f"fd00::/{n}", st.integers(0, 130))), max_size=3)
        ),
        "allocationPrefixLength": maybe(st.integers(-2, 130)),
        "gateway": maybe(address),
        "excludedPrefixes": maybe(st.lists(entry, max_size=3)),
    },
)


def core_accepts(spec: IPPoolSpec) -> bool:
    """An independent oracle built only from the address core: is this pool usable?"""
    entries = spec.addresses or ()
    if not entries or spec.prefix < 0:
        return False
    if spec.reuse_grace_seconds is not None and spec.reuse_grace_seconds < 0:
        return False
    try:
        ranges = [addr.parse_entry(e) for e in entries]
        excluded = [addr.parse_entry(e) for e in spec.excluded or ()]
        families = {r.version for r in ranges} | {r.version for r in excluded}
        if len(families) != 1:
            return False
        if spec.gateway and addr.parse_address(spec.gateway).version not in families:
            return False
    except addr.AddressError:
        return False
    subnet = core.inferred_subnet(addr.IPSet.from_entries(entries), spec.prefix)
    return subnet is not None and all(subnet.covers(r) for r in ranges)


@FUZZ
@given(ip_spec_dict | coherent_ip_spec)
def test_ip_pool_validation_agrees_with_the_address_core(data: dict[str, Any]) -> None:
    try:
        spec = IPPoolSpec.from_dict(data)
    except DecodeError:
        return
    errors = validate_ip_pool(spec)
    assert (errors == []) == core_accepts(spec), errors
    if not errors:
        allocatable = core.allocatable_set(
            core.IPPoolSpec(
                spec.addresses or (),
                spec.prefix,
                spec.gateway or None,
                spec.allocate_reserved,
                spec.excluded or (),
            )
        )
        assert (
            validate_ip_pool_update("InClusterIPPool", "p", spec, [str(r) for r in allocatable.ranges()[:1]])
            is None
        )
    for error in errors:
        assert str(error)  # formatting never fails


@FUZZ
@given(prefix_spec_dict)
def test_prefix_pool_validation_never_raises_and_valid_pools_compile(data: dict[str, Any]) -> None:
    try:
        spec = PrefixPoolSpec.from_dict(data)
    except DecodeError:
        return
    errors = validate_prefix_pool(spec)
    if not errors:
        prefix_core.PrefixPool.from_spec(prefix_core_spec(spec))  # must not raise
        prefix_pool_warnings(spec)


@FUZZ
@given(st.text(alphabet="0123456789abcdefABCDEF.:%", max_size=45) | st.text(max_size=10))
def test_go_parser_and_address_core_accept_the_same_addresses(text: str) -> None:
    try:
        parsed: goparse.GoAddr | None = goparse.parse_addr(text)
    except goparse.GoParseError:
        parsed = None
    try:
        core_value: addr.Address | None = addr.parse_address(text)
    except addr.AddressError:
        core_value = None
    if parsed is not None and parsed.zone:
        assert core_value is None  # the core refuses zones everywhere
        return
    assert (parsed is None) == (core_value is None), text
    if parsed is not None and core_value is not None:
        assert (parsed.version, parsed.value) == (core_value.version, int(core_value))


valid_hub_spec = st.builds(
    lambda base, n, gw, reserved, excluded, grace: {
        k: v
        for k, v in {
            "addresses": [f"10.1.{base}.{10 + i}" for i in range(n)],
            "prefix": 24,
            "gateway": gw,
            "allocateReservedIPAddresses": reserved or None,
            "excludedAddresses": excluded,
            "addressReuseGracePeriodSeconds": grace,
        }.items()
        if v is not None
    },
    st.integers(0, 255),
    st.integers(1, 4),
    st.sampled_from([None, "10.1.0.1"]),
    st.booleans(),
    st.one_of(st.none(), st.lists(v4, max_size=2)),
    st.one_of(st.none(), st.integers(0, 600)),
)


@FUZZ
@given(coherent_ip_spec | valid_hub_spec, st.sampled_from(["InClusterIPPool", "GlobalInClusterIPPool"]))
def test_valid_pools_round_trip_through_v1alpha1_unchanged(data: dict[str, Any], kind: str) -> None:
    try:
        spec = IPPoolSpec.from_dict(data)
    except DecodeError:
        return
    if validate_ip_pool(spec):
        return
    hub = {
        "apiVersion": API_VERSION_V1ALPHA2,
        "kind": kind,
        "metadata": {"name": "p"},
        "spec": spec.to_dict(),
    }
    spoke = convert(hub, API_VERSION_V1ALPHA1)
    assert convert(spoke, API_VERSION_V1ALPHA2) == hub


v1_spec_dict = st.fixed_dictionaries(
    {},
    optional={
        "addresses": maybe(st.lists(entry, max_size=2)),
        "subnet": maybe(st.one_of(entry, st.builds(lambda a, n: f"{a}/{n}", address, st.integers(0, 40)))),
        "start": maybe(address),
        "end": maybe(address),
        "prefix": maybe(st.integers(0, 128)),
        "gateway": maybe(address),
    },
)


@FUZZ
@given(v1_spec_dict, st.sampled_from(["InClusterIPPool", "GlobalInClusterIPPool"]))
def test_v1alpha1_objects_round_trip_or_fail_cleanly(data: dict[str, Any], kind: str) -> None:
    spoke = {"apiVersion": API_VERSION_V1ALPHA1, "kind": kind, "metadata": {"name": "p"}, "spec": data}
    try:
        hub = convert(spoke, API_VERSION_V1ALPHA2)
    except ConversionError:
        return
    again = convert(convert(hub, API_VERSION_V1ALPHA1), API_VERSION_V1ALPHA2)
    assert again == hub
    back = convert(hub, API_VERSION_V1ALPHA1)
    normalized = {**spoke, "spec": IPPoolSpecV1Alpha1.from_dict(data).to_dict()}
    assert back == normalized


@FUZZ
@given(json_value, st.sampled_from([API_VERSION_V1ALPHA1, API_VERSION_V1ALPHA2, "v1"]))
def test_conversion_of_garbage_only_raises_conversion_error(obj: Any, desired: str) -> None:
    for candidate in (
        obj,
        {"apiVersion": API_VERSION_V1ALPHA1, "kind": "InClusterIPPool", "metadata": obj, "spec": obj},
    ):
        with contextlib.suppress(ConversionError):
            convert(candidate, desired)


@FUZZ
@given(
    st.lists(
        st.tuples(st.sampled_from(POOL_KINDS), st.sampled_from(["a", "b"]), ip_spec_dict | prefix_spec_dict),
        max_size=4,
    )
)
def test_overlap_warnings_never_raise(pools: list[Any]) -> None:
    decoded = []
    for kind, namespace, data in pools:
        try:
            spec = IPPoolSpec.from_dict(data) if kind.family.value == "ip" else PrefixPoolSpec.from_dict(data)
        except DecodeError:
            continue
        decoded.append(Pool(kind, "p", namespace if kind.namespaced else "", spec))
    for pool in decoded:
        for warning in overlap_warnings(pool, decoded):
            assert len(warning) < 256
