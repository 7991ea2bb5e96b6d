"""The pure audit: every finding kind, the clean case, both families, pool-key scoping and grace."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence
from typing import Any

import pytest

from incluster_ipam.audit.findings import FindingKind, ObjectRef, Report, audit

from .objects import (
    GRACE,
    NOW,
    address,
    bound_pair,
    claim,
    cluster,
    ip_pool,
    prefix_pool,
    stamp,
)

Obj = dict[str, Any]

FAMILIES = {
    # pool addresses, prefix, three allocatable addresses, an address outside the allocatable set
    4: (["10.0.0.10-10.0.0.12"], 24, ["10.0.0.10", "10.0.0.11", "10.0.0.12"], "10.0.0.200"),
    6: (["fd00::10-fd00::12"], 64, ["fd00::10", "fd00::11", "fd00::12"], "fd00::200"),
}


def run(
    pools: Sequence[Obj],
    claims: Sequence[Obj] = (),
    addresses: Sequence[Obj] = (),
    **kwargs: Any,
) -> Report:
    kwargs.setdefault("grace_seconds", GRACE)
    return audit(pools, claims, addresses, now=NOW, **kwargs)


def kinds(report: Report) -> list[str]:
    return [f.kind.value for f in report.findings]


def ipaddr(namespace: str, name: str) -> ObjectRef:
    return ObjectRef("IPAddress", namespace, name)


def claimref(namespace: str, name: str) -> ObjectRef:
    return ObjectRef("IPAddressClaim", namespace, name)


# ---- clean ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("family", [4, 6])
def test_bound_claims_in_range_and_a_claim_waiting_on_a_full_pool_are_clean(family: int) -> None:
    entries, prefix, ips, _ = FAMILIES[family]
    objects = [
        obj for i, ip in enumerate(ips) for obj in bound_pair(f"m{i}", "ns", ip, "pool", prefix=prefix)
    ]
    claims, addresses = objects[0::2], objects[1::2]
    waiting = claim("waiting", "ns", "pool")  # the pool is full: unbound, but nothing the provider could do
    report = run([ip_pool("pool", "ns", entries, prefix)], [*claims, waiting], addresses)
    assert report.findings == ()
    assert report.clean
    assert report.notes == ()


def test_objects_of_other_providers_are_ignored() -> None:
    foreign_claim = claim("c", "ns", "their-pool", "MetalPool")
    foreign_address = address("a", "ns", "10.9.9.9", "their-pool", "MetalPool", claim="nobody")
    other_group = address("b", "ns", "10.9.9.9", "pool", group="example.com", claim="nobody")
    assert run([], [foreign_claim], [foreign_address, other_group]).clean


# ---- duplicates -------------------------------------------------------------------------------------


@pytest.mark.parametrize("family", [4, 6])
def test_two_addresses_of_one_pool_holding_the_same_ip_are_a_duplicate(family: int) -> None:
    entries, prefix, ips, _ = FAMILIES[family]
    claims = [claim("a", "ns", "pool", bound="a"), claim("b", "ns", "pool", bound="b")]
    addresses = [address("a", "ns", ips[0], "pool", prefix=prefix), address("b", "ns", ips[0], "pool")]
    report = run([ip_pool("pool", "ns", entries, prefix)], claims, addresses)
    assert kinds(report) == ["duplicate"]
    finding = report.findings[0]
    assert finding.objects == (ipaddr("ns", "a"), ipaddr("ns", "b"))
    assert finding.pool == ObjectRef("InClusterIPPool", "ns", "pool")
    assert finding.address == ips[0]
    assert finding.message == (
        f"{ips[0]} is held by 2 IPAddresses of InClusterIPPool ns/pool: IPAddress ns/a, IPAddress ns/b"
    )


def test_overlapping_sub_prefixes_of_one_prefix_pool_are_a_duplicate() -> None:
    pool = prefix_pool("pp", "ns", ["fd00::/62"])
    claims = [claim(n, "ns", "pp", "InClusterPrefixPool", bound=n) for n in ("a", "b", "c")]
    addresses = [
        address("a", "ns", "fd00::", "pp", "InClusterPrefixPool", prefix=64),
        address("b", "ns", "fd00::", "pp", "InClusterPrefixPool", prefix=64),
        address("c", "ns", "fd00:0:0:1::", "pp", "InClusterPrefixPool", prefix=64),  # distinct: fine
    ]
    report = run([pool], claims, addresses)
    assert kinds(report) == ["duplicate"]
    assert report.findings[0].objects == (ipaddr("ns", "a"), ipaddr("ns", "b"))
    assert "overlapping prefixes fd00::/64 (IPAddress ns/a), fd00::/64 (IPAddress ns/b)" in (
        report.findings[0].message
    )


def test_a_wider_prefix_covering_an_allocated_one_is_a_duplicate_and_out_of_range() -> None:
    pool = prefix_pool("pp", "ns", ["fd00::/56"])
    claims = [claim(n, "ns", "pp", "InClusterPrefixPool", bound=n) for n in ("a", "wide")]
    addresses = [
        address("a", "ns", "fd00:0:0:5::", "pp", "InClusterPrefixPool", prefix=64),
        address("wide", "ns", "fd00::", "pp", "InClusterPrefixPool", prefix=60),
    ]
    report = run([pool], claims, addresses)
    assert kinds(report) == ["duplicate", "out-of-range"]
    assert set(report.findings[0].objects) == {ipaddr("ns", "a"), ipaddr("ns", "wide")}
    assert report.findings[1].objects[0] == ipaddr("ns", "wide")
    assert "fd00::/60 is not allocatable in InClusterPrefixPool ns/pp" in report.findings[1].message


def test_the_same_ip_in_a_namespaced_and_a_global_pool_that_both_contain_it_is_a_cross_pool_duplicate() -> (
    None
):
    pools = [
        ip_pool("local", "ns", ["10.0.0.0/24"], 24),
        ip_pool("shared", None, ["10.0.0.5-10.0.0.9"], 24),
    ]
    claims = [
        claim("a", "ns", "local", bound="a"),
        claim("b", "other", "shared", "GlobalInClusterIPPool", bound="b"),
    ]
    addresses = [
        address("a", "ns", "10.0.0.5", "local"),
        address("b", "other", "10.0.0.5", "shared", "GlobalInClusterIPPool"),
    ]
    report = run(pools, claims, addresses)
    assert kinds(report) == ["duplicate-across-pools"]
    finding = report.findings[0]
    assert set(finding.objects) == {ipaddr("ns", "a"), ipaddr("other", "b")}
    assert finding.address == "10.0.0.5"
    assert "InClusterIPPool ns/local" in finding.message
    assert "GlobalInClusterIPPool shared" in finding.message


def test_two_namespaced_pools_of_one_namespace_sharing_an_ip_are_a_cross_pool_duplicate() -> None:
    pools = [ip_pool("p1", "ns", ["10.0.0.0/24"], 24), ip_pool("p2", "ns", ["10.0.0.0/24"], 24)]
    claims = [claim("a", "ns", "p1", bound="a"), claim("b", "ns", "p2", bound="b")]
    addresses = [address("a", "ns", "10.0.0.7", "p1"), address("b", "ns", "10.0.0.7", "p2")]
    assert kinds(run(pools, claims, addresses)) == ["duplicate-across-pools"]


def test_pools_of_different_namespaces_never_meet_even_with_the_same_ip() -> None:
    pools = [ip_pool("pool", "ns-a", ["10.0.0.0/24"], 24), ip_pool("pool", "ns-b", ["10.0.0.0/24"], 24)]
    objects = [*bound_pair("m", "ns-a", "10.0.0.1", "pool"), *bound_pair("m", "ns-b", "10.0.0.1", "pool")]
    assert run(pools, objects[0::2], objects[1::2]).clean


def test_two_global_pools_sharing_an_ip_are_reported_once() -> None:
    pools = [
        ip_pool("g1", None, ["10.0.0.0/24"], 24),
        ip_pool("g2", None, ["10.0.0.0/24"], 24),
        ip_pool("local", "ns", ["10.1.0.0/24"], 24),  # a namespace scope exists, but is not involved
    ]
    claims = [
        claim("a", "x", "g1", "GlobalInClusterIPPool", bound="a"),
        claim("b", "y", "g2", "GlobalInClusterIPPool", bound="b"),
    ]
    addresses = [
        address("a", "x", "10.0.0.3", "g1", "GlobalInClusterIPPool"),
        address("b", "y", "10.0.0.3", "g2", "GlobalInClusterIPPool"),
        address("c", "ns", "10.1.0.3", "local", claim="c"),
    ]
    claims.append(claim("c", "ns", "local", bound="c"))
    assert kinds(run(pools, claims, addresses)) == ["duplicate-across-pools"]


def test_an_address_outside_one_of_the_pools_is_out_of_range_not_a_cross_pool_duplicate() -> None:
    pools = [ip_pool("p1", "ns", ["10.0.0.0/24"], 24), ip_pool("p2", "ns", ["10.0.0.100-10.0.0.120"], 24)]
    claims = [claim("a", "ns", "p1", bound="a"), claim("b", "ns", "p2", bound="b")]
    addresses = [address("a", "ns", "10.0.0.7", "p1"), address("b", "ns", "10.0.0.7", "p2")]
    report = run(pools, claims, addresses)
    assert kinds(report) == ["out-of-range"]
    assert report.findings[0].objects[0] == ipaddr("ns", "b")


# ---- pool key semantics ---------------------------------------------------------------------------------


def test_a_namespaced_pool_never_counts_addresses_of_another_namespace() -> None:
    pool = ip_pool("pool", "ns-a", ["10.0.0.10"], 24)  # room for exactly one address
    waiting = claim("w", "ns-a", "pool")
    # ns-b has a claim and IPAddress for "its" InClusterIPPool "pool" (which does not exist in ns-b)
    stranger_claim = claim("s", "ns-b", "pool", bound="s")
    stranger = address("s", "ns-b", "10.0.0.10", "pool")
    report = run([pool], [waiting, stranger_claim], [stranger])
    assert kinds(report) == ["out-of-range", "unbound-claim"]
    out_of_range, unbound = report.findings
    assert out_of_range.objects == (ipaddr("ns-b", "s"), ObjectRef("InClusterIPPool", "ns-b", "pool"))
    assert "its pool InClusterIPPool ns-b/pool does not exist" in out_of_range.message
    assert unbound.objects == (claimref("ns-a", "w"), ObjectRef("InClusterIPPool", "ns-a", "pool"))
    assert unbound.message == (
        "IPAddressClaim ns-a/w is unbound although InClusterIPPool ns-a/pool has 1 free address"
    )


def test_a_global_pool_counts_addresses_of_every_namespace() -> None:
    pool = ip_pool("shared", None, ["10.0.0.10"], 24)
    waiting = claim("w", "ns-a", "shared", "GlobalInClusterIPPool")
    taken = bound_pair("t", "ns-b", "10.0.0.10", "shared", "GlobalInClusterIPPool")
    assert run([pool], [waiting, taken[0]], [taken[1]]).clean  # full: the waiting claim is not stuck
    # the same IP from two namespaces in one global pool is a duplicate
    twin = bound_pair("t", "ns-c", "10.0.0.10", "shared", "GlobalInClusterIPPool")
    report = run([pool], [taken[0], twin[0]], [taken[1], twin[1]])
    assert kinds(report) == ["duplicate"]
    assert report.findings[0].objects == (ipaddr("ns-b", "t"), ipaddr("ns-c", "t"))


# ---- out of range ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ip", "reason"),
    [
        ("10.0.1.200", "10.0.1.200 is not allocatable in InClusterIPPool ns/pool"),
        ("10.0.0.1", "10.0.0.1 is not allocatable"),  # the gateway
        ("10.0.0.0", "10.0.0.0 is not allocatable"),  # the network address
        ("10.0.0.15", "10.0.0.15 is not allocatable"),  # excluded
        ("fd00::10", "fd00::10 is not allocatable"),  # other family
        ("10.0.0.300", "address '10.0.0.300' is not a valid IP address"),
    ],
)
def test_addresses_outside_the_allocatable_set_are_out_of_range(ip: str, reason: str) -> None:
    pool = ip_pool("pool", "ns", ["10.0.0.0/24"], 24, gateway="10.0.0.1", excludedAddresses=["10.0.0.15"])
    report = run([pool], [claim("a", "ns", "pool", bound="a")], [address("a", "ns", ip, "pool")])
    assert kinds(report) == ["out-of-range"]
    finding = report.findings[0]
    assert finding.objects == (ipaddr("ns", "a"), ObjectRef("InClusterIPPool", "ns", "pool"))
    assert finding.address == ip
    assert finding.message.startswith("IPAddress ns/a is out of range: ")
    assert reason in finding.message


@pytest.mark.parametrize("family", [4, 6])
def test_out_of_range_in_both_families(family: int) -> None:
    entries, prefix, _, outside = FAMILIES[family]
    pool = ip_pool("pool", "ns", entries, prefix)
    report = run([pool], [claim("a", "ns", "pool", bound="a")], [address("a", "ns", outside, "pool")])
    assert kinds(report) == ["out-of-range"]


def test_addresses_of_a_missing_or_unusable_pool_are_out_of_range() -> None:
    broken = ip_pool("broken", "ns", ["not-an-ip"], 24)
    claims = [claim("a", "ns", "gone", bound="a"), claim("b", "ns", "broken", bound="b")]
    addresses = [address("a", "ns", "10.0.0.1", "gone"), address("b", "ns", "10.0.0.1", "broken")]
    report = run([broken], claims, addresses)
    assert kinds(report) == ["out-of-range", "out-of-range"]
    assert "its pool InClusterIPPool ns/gone does not exist" in report.findings[0].message
    assert "its pool InClusterIPPool ns/broken has an unusable spec" in report.findings[1].message


def test_prefix_pool_addresses_must_be_allocatable_sub_prefixes() -> None:
    pool = prefix_pool("pp", None, ["fd00::/62"], excludedPrefixes=["fd00:0:0:3::/64"])
    kind = "GlobalInClusterPrefixPool"
    claims = [claim(n, "ns", "pp", kind, bound=n) for n in ("ok", "outside", "excluded", "length")]
    addresses = [
        address("ok", "ns", "fd00:0:0:1::", "pp", kind, prefix=64),
        address("outside", "ns", "fd01::", "pp", kind, prefix=64),
        address("excluded", "ns", "fd00:0:0:3::", "pp", kind, prefix=64),
        address("length", "ns", "fd00:0:0:2::", "pp", kind, prefix=65),
    ]
    report = run([pool], claims, addresses)
    assert kinds(report) == ["out-of-range"] * 3
    assert {f.objects[0].name for f in report.findings} == {"outside", "excluded", "length"}


# ---- orphaned ---------------------------------------------------------------------------------------------


def test_an_address_without_its_claim_is_orphaned() -> None:
    pool = ip_pool("pool", "ns", ["10.0.0.0/24"], 24)
    report = run([pool], [], [address("a", "ns", "10.0.0.5", "pool")])
    assert kinds(report) == ["orphaned-address"]
    finding = report.findings[0]
    assert finding.objects == (ipaddr("ns", "a"), claimref("ns", "a"))
    assert finding.message == (
        "IPAddress ns/a (10.0.0.5, InClusterIPPool ns/pool) is orphaned: "
        "its claim IPAddressClaim ns/a does not exist"
    )


def test_an_address_kept_for_a_claim_moved_away_is_a_note_not_a_finding() -> None:
    """clusterctl move leaves global pools' IPAddresses in the source; the provider keeps them."""
    pool = ip_pool("pool", "ns", ["10.0.0.0/24"], 24)
    kept = address("a", "ns", "10.0.0.5", "pool")
    kept["metadata"]["annotations"] = {"ipam.cluster.x-k8s.io/moved-away": "2026-12-02T03:00:00Z"}
    report = run([pool], [], [kept])
    assert kinds(report) == []
    assert any("moved to another management cluster" in note for note in report.notes), report.notes


def test_a_claim_in_another_namespace_does_not_own_the_address() -> None:
    pool = ip_pool("pool", "ns", ["10.0.0.0/24"], 24)
    report = run(
        [pool], [claim("a", "elsewhere", "pool", bound="a")], [address("a", "ns", "10.0.0.5", "pool")]
    )
    assert "orphaned-address" in kinds(report)


@pytest.mark.parametrize(
    ("the_claim", "reason"),
    [
        (claim("c", "ns", "other-pool", bound="a"), "asks for another pool (InClusterIPPool ns/other-pool)"),
        (claim("c", "ns", "pool", bound="someone-else"), "is bound to IPAddress ns/someone-else"),
        (claim("c", "ns", "pool"), "is unbound and expects IPAddress ns/c"),
    ],
)
def test_an_address_whose_claim_points_elsewhere_is_orphaned(the_claim: Obj, reason: str) -> None:
    pools = [ip_pool("pool", "ns", ["10.0.0.0/24"], 24), ip_pool("other-pool", "ns", ["10.1.0.0/24"], 24)]
    orphan = address("a", "ns", "10.0.0.5", "pool", claim="c")
    report = run(pools, [the_claim], [orphan], grace_seconds=0)
    orphaned = report.of_kind(FindingKind.ORPHANED_ADDRESS)
    assert [f.objects for f in orphaned] == [(ipaddr("ns", "a"), claimref("ns", "c"))]
    assert reason in orphaned[0].message


def test_an_address_named_differently_from_its_claim_but_bound_by_it_is_fine() -> None:
    pool = ip_pool("pool", "ns", ["10.0.0.0/24"], 24)
    report = run(
        [pool],
        [claim("c", "ns", "pool", bound="custom")],
        [address("custom", "ns", "10.0.0.5", "pool", claim="c")],
    )
    assert report.clean


def test_an_address_naming_no_claim_is_orphaned() -> None:
    pool = ip_pool("pool", "ns", ["10.0.0.0/24"], 24)
    report = run([pool], [], [address("a", "ns", "10.0.0.5", "pool", claim="")])
    assert kinds(report) == ["orphaned-address"]
    assert report.findings[0].objects == (ipaddr("ns", "a"),)
    assert "names no claim" in report.findings[0].message


def test_grace_skips_young_orphans_and_recent_deletions_only() -> None:
    pool = ip_pool("pool", "ns", ["10.0.0.0/24"], 24)
    addresses = [
        address("young", "ns", "10.0.0.5", "pool", created=stamp(GRACE - 1)),
        address("deleting", "ns", "10.0.0.6", "pool", deleted=stamp(GRACE - 1)),
        address("stuck", "ns", "10.0.0.7", "pool", deleted=stamp(GRACE + 1)),
        address("old", "ns", "10.0.0.8", "pool", created=stamp(GRACE + 1)),
        address("undated", "ns", "10.0.0.9", "pool", created=None),
    ]
    report = run([pool], [], addresses)
    assert {f.objects[0].name for f in report.findings} == {"stuck", "old", "undated"}
    assert len(run([pool], [], addresses, grace_seconds=0).of_kind(FindingKind.ORPHANED_ADDRESS)) == 5


# ---- unbound claims ----------------------------------------------------------------------------------


@pytest.mark.parametrize("family", [4, 6])
def test_an_unbound_claim_whose_pool_has_room_is_reported(family: int) -> None:
    entries, prefix, ips, _ = FAMILIES[family]
    bound = bound_pair("m0", "ns", ips[0], "pool", prefix=prefix)
    report = run([ip_pool("pool", "ns", entries, prefix)], [bound[0], claim("w", "ns", "pool")], [bound[1]])
    assert kinds(report) == ["unbound-claim"]
    finding = report.findings[0]
    assert finding.objects == (claimref("ns", "w"), ObjectRef("InClusterIPPool", "ns", "pool"))
    assert finding.pool == ObjectRef("InClusterIPPool", "ns", "pool")
    assert (
        finding.message
        == "IPAddressClaim ns/w is unbound although InClusterIPPool ns/pool has 2 free addresses"
    )


def test_a_claim_pointing_at_a_missing_address_is_unbound() -> None:
    pool = ip_pool("pool", "ns", ["10.0.0.0/24"], 24)
    report = run([pool], [claim("w", "ns", "pool", bound="vanished")])
    assert kinds(report) == ["unbound-claim"]
    assert "points at IPAddress ns/vanished, which is missing" in report.findings[0].message


def test_an_unbound_claim_of_a_prefix_pool_with_room_is_reported() -> None:
    pool = prefix_pool("pp", "ns", ["fd00::/63"])  # two /64s
    taken = bound_pair("t", "ns", "fd00::", "pp", "InClusterPrefixPool", prefix=64)
    report = run([pool], [taken[0], claim("w", "ns", "pp", "InClusterPrefixPool")], [taken[1]])
    assert kinds(report) == ["unbound-claim"]
    assert report.findings[0].message.endswith("InClusterPrefixPool ns/pp has 1 free prefix")
    full = bound_pair("u", "ns", "fd00:0:0:1::", "pp", "InClusterPrefixPool", prefix=64)
    waiting = claim("w", "ns", "pp", "InClusterPrefixPool")
    assert run([pool], [taken[0], full[0], waiting], [taken[1], full[1]]).clean


@pytest.mark.parametrize(
    "waiting",
    [
        claim("w", "ns", "pool", created=stamp(GRACE - 1)),  # young
        claim("w", "ns", "pool", deleted=stamp(600)),  # being deleted
        claim("w", "ns", "pool", annotations={"cluster.x-k8s.io/paused": ""}),
        claim("w", "ns", "paused-pool"),
        claim("w", "ns", "missing-pool"),
        claim("w", "ns", "pool", cluster="paused-cluster"),
    ],
    ids=["young", "deleting", "paused", "pool-paused", "pool-missing", "cluster-paused"],
)
def test_unbound_claims_the_provider_leaves_alone_are_not_reported(waiting: Obj) -> None:
    pools = [
        ip_pool("pool", "ns", ["10.0.0.0/24"], 24),
        ip_pool("paused-pool", "ns", ["10.0.0.0/24"], 24, annotations={"cluster.x-k8s.io/paused": ""}),
    ]
    report = run(pools, [waiting], clusters=[cluster("paused-cluster", "ns", paused=True)])
    assert report.clean


def test_a_claim_waiting_for_a_missing_cluster_is_reported_with_the_reason() -> None:
    pool = ip_pool("pool", "ns", ["10.0.0.0/24"], 24)
    report = run([pool], [claim("w", "ns", "pool", cluster="c1")], clusters=[cluster("c1", "other-ns")])
    assert kinds(report) == ["unbound-claim"]
    assert "its Cluster ns/c1 does not exist" in report.findings[0].message
    # with an unpaused Cluster the plain message; with clusters unknown (None), no Cluster check at all
    report = run([pool], [claim("w", "ns", "pool", cluster="c1")], clusters=[cluster("c1", "ns")])
    assert report.findings[0].message.endswith("has 254 free addresses")
    assert kinds(run([pool], [claim("w", "ns", "pool", cluster="c1")], clusters=None)) == ["unbound-claim"]


def test_grace_zero_reports_a_claim_created_just_now() -> None:
    pool = ip_pool("pool", "ns", ["10.0.0.0/24"], 24)
    fresh = claim("w", "ns", "pool", created=stamp(0))
    assert run([pool], [fresh]).clean
    assert kinds(run([pool], [fresh], grace_seconds=0)) == ["unbound-claim"]


# ---- namespace scope --------------------------------------------------------------------------------------


def test_a_namespace_scoped_audit_reports_only_that_namespace() -> None:
    pools = [ip_pool("pool", "ns-a", ["10.0.0.0/24"], 24), ip_pool("pool", "ns-b", ["10.0.0.0/24"], 24)]
    addresses = [address("x", "ns-a", "10.0.0.5", "pool"), address("y", "ns-b", "10.0.0.5", "pool")]
    everything = run(pools, [], addresses)
    assert [f.objects[0].namespace for f in everything.findings] == ["ns-a", "ns-b"]
    scoped = run(pools, [], addresses, namespace="ns-b")
    assert [f.objects[0] for f in scoped.findings] == [ipaddr("ns-b", "y")]


def test_a_scoped_audit_still_counts_other_namespaces_in_global_pools() -> None:
    pool = ip_pool("shared", None, ["10.0.0.10"], 24)
    waiting = claim("w", "ns-a", "shared", "GlobalInClusterIPPool")
    other = address("t", "ns-b", "10.0.0.10", "shared", "GlobalInClusterIPPool")  # orphaned, but not in scope
    assert run([pool], [waiting], [other], namespace="ns-a").clean
    # a duplicate between ns-a and ns-b in a global pool involves ns-a: reported
    mine = address("m", "ns-a", "10.0.0.10", "shared", "GlobalInClusterIPPool")
    report = run(
        [pool],
        [claim("m", "ns-a", "shared", "GlobalInClusterIPPool", bound="m")],
        [mine, other],
        namespace="ns-a",
    )
    assert kinds(report) == ["duplicate"]


def test_unknown_usage_of_global_pools_is_a_note_not_a_guess() -> None:
    pools = [ip_pool("shared", None, ["10.0.0.0/24"], 24), ip_pool("local", "ns", ["10.1.0.0/24"], 24)]
    claims = [claim("g", "ns", "shared", "GlobalInClusterIPPool"), claim("l", "ns", "local")]
    report = run(pools, claims, [], namespace="ns", global_usage_complete=False)
    assert [f.objects[0] for f in report.findings] == [claimref("ns", "l")]
    assert len(report.notes) == 1
    assert "1 unbound claim(s) of global pools were not judged" in report.notes[0]


# ---- all together, ordering and serialisation ------------------------------------------------------------


def test_findings_are_sorted_by_kind_and_serialise_to_json_dicts() -> None:
    pool = ip_pool("pool", "ns", ["10.0.0.10-10.0.0.20"], 24)
    claims = [
        claim("d1", "ns", "pool", bound="d1"),
        claim("d2", "ns", "pool", bound="d2"),
        claim("w", "ns", "pool"),
    ]
    addresses = [
        address("orphan", "ns", "10.0.0.12", "pool"),
        address("d1", "ns", "10.0.0.10", "pool"),
        address("d2", "ns", "10.0.0.10", "pool"),
        address("far", "ns", "10.0.0.99", "pool", claim="w2"),
    ]
    report = run([pool], claims, addresses)
    assert kinds(report) == [
        "duplicate",
        "out-of-range",
        "orphaned-address",
        "orphaned-address",
        "unbound-claim",
    ]
    as_dict = report.findings[0].to_dict()
    assert as_dict == {
        "kind": "duplicate",
        "message": report.findings[0].message,
        "objects": [
            {"kind": "IPAddress", "namespace": "ns", "name": "d1"},
            {"kind": "IPAddress", "namespace": "ns", "name": "d2"},
        ],
        "pool": {"kind": "InClusterIPPool", "namespace": "ns", "name": "pool"},
        "address": "10.0.0.10",
    }


def test_the_findings_module_does_no_io() -> None:
    """The pure half must not pull in the Kubernetes client, asyncio or any network module."""
    code = (
        "import sys, incluster_ipam.audit.findings\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('asyncio', 'aiohttp', 'kubernetes_asyncio', 'socket', 'ssl', 'subprocess') "
        "or m.startswith(('incluster_ipam.kube', 'incluster_ipam.runtime', 'incluster_ipam.audit.command'))"
        ")\n"
        "print(bad)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
