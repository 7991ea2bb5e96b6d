"""Requested addresses in the allocation book, against a brute-force twin: a claim gets exactly the address
it asks for when the pool hands it out and nobody holds it; otherwise it is refused or queued, and a queued
claim gets the address the moment its last holder goes, before any plain claim can."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from incluster_ipam.api.constants import IN_CLUSTER_IP_POOL, IN_CLUSTER_PREFIX_POOL
from incluster_ipam.api.models import IPPoolSpec, PrefixPoolSpec
from incluster_ipam.backend.book import PoolBook, PoolState, RequestRefused, RequestTaken
from incluster_ipam.ipam.allocator import PoolExhausted
from incluster_ipam.ipam.request import Requested, parse_request

KEY = "InClusterIPPool/ns/pool"
# 10.0.0.0/29 with the gateway .1: the pool hands out .2-.6; .0 and .7 are network and broadcast.
ALLOCATABLE = [f"10.0.0.{n}" for n in range(2, 7)]


def ip_state() -> PoolState:
    spec = IPPoolSpec(addresses=("10.0.0.0/29",), prefix=29, gateway="10.0.0.1")
    state, _ = PoolBook().upsert(KEY, IN_CLUSTER_IP_POOL, spec)
    return state


def req(text: str) -> Requested:
    return parse_request(text)


class Twin:
    """The rules, by brute force over the five addresses."""

    def __init__(self) -> None:
        self.pending: dict[str, str] = {}
        self.live: dict[str, str] = {}
        self.queue: list[tuple[str, str]] = []

    def held(self) -> set[str]:
        return set(self.pending.values()) | set(self.live.values())

    def free(self, address: str) -> None:
        for claim, wanted in list(self.queue):
            if wanted == address and address not in self.held():
                self.queue.remove((claim, wanted))
                self.pending[claim] = address

    def unqueue(self, claim: str) -> None:
        self.queue = [(c, a) for c, a in self.queue if c != claim]

    def drop_pending(self, claim: str) -> None:
        address = self.pending.pop(claim, None)
        if address is not None:
            self.free(address)

    def reserve(self, claim: str, requested: str | None) -> str:
        mine = self.pending.get(claim)
        if mine is not None and (requested is None or requested == mine):
            self.unqueue(claim)
            return mine
        self.drop_pending(claim)
        if requested is None:
            self.unqueue(claim)
            for address in ALLOCATABLE:
                if address not in self.held():
                    self.pending[claim] = address
                    return address
            raise PoolExhausted
        if requested not in ALLOCATABLE:
            self.unqueue(claim)
            raise RequestRefused
        if requested in self.held():
            if (claim, requested) not in self.queue:
                self.unqueue(claim)
                self.queue.append((claim, requested))
            raise RequestTaken(set())
        self.unqueue(claim)
        self.pending[claim] = requested
        return requested


OPS = st.lists(
    st.tuples(
        st.sampled_from(["plain", "ask", "confirm", "forget", "withdraw"]),
        st.integers(0, 5),
        st.integers(0, 7),
    ),
    max_size=80,
)


@settings(max_examples=300, deadline=None)
@given(OPS)
def test_requested_and_plain_claims_mixed_match_the_twin_and_never_share(
    ops: list[tuple[str, int, int]],
) -> None:
    state, twin = ip_state(), Twin()
    for op, n, host in ops:
        claim = f"ns/c{n}"
        if claim in twin.live and op in ("plain", "ask", "withdraw"):
            continue  # a bound claim is never reserved for again
        if op in ("plain", "ask"):
            requested = f"10.0.0.{host}" if op == "ask" else None
            expected: object
            try:
                expected = twin.reserve(claim, requested)
            except (PoolExhausted, RequestRefused, RequestTaken) as exc:
                expected = type(exc)
            got: object
            try:
                got = state.reserve(claim, req(requested) if requested else None).address
            except (PoolExhausted, RequestRefused, RequestTaken) as exc:
                got = type(exc)
            assert got == expected, (op, claim, requested)
        elif op == "confirm" and claim in twin.pending:
            state.confirm(claim, claim)
            twin.live[claim] = twin.pending.pop(claim)
        elif op == "forget" and claim in twin.live:
            state.forget(claim)
            twin.free(twin.live.pop(claim))
        elif op == "withdraw" and claim not in twin.live:
            state.withdraw(claim)
            twin.unqueue(claim)
            twin.drop_pending(claim)
        for c, _ in twin.queue:
            assert state.queued_for(c) is not None
        held = list(twin.pending.values()) + list(twin.live.values())
        assert len(held) == len(set(held)), held
        assert {state.pending(c).address for c in twin.pending} == set(twin.pending.values())  # type: ignore[union-attr]
        assert state.counts().used == len(held)


def test_a_queued_claim_gets_the_address_before_a_plain_claim_can() -> None:
    state = ip_state()
    state.reserve("ns/a", req("10.0.0.4"))
    state.confirm("ns/a", "ns/a")
    with pytest.raises(RequestTaken) as taken:
        state.reserve("ns/vip", req("10.0.0.4"))
    assert taken.value.holders == {"ns/a"}
    assert "ns/vip" in state.waiting
    assert state.forget("ns/a") is True
    # the plain claims take everything else, never .4
    assert [state.reserve(f"ns/p{i}").address for i in range(4)] == [
        "10.0.0.2",
        "10.0.0.3",
        "10.0.0.5",
        "10.0.0.6",
    ]
    with pytest.raises(PoolExhausted):
        state.reserve("ns/p9")
    assert state.reserve("ns/vip", req("10.0.0.4")).address == "10.0.0.4"
    assert "ns/vip" not in state.waiting


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("10.0.0.1", "is the pool's gateway"),
        ("10.0.0.0", "is a reserved address of the subnet 10.0.0.0/29"),
        ("10.0.0.7", "is a reserved address of the subnet 10.0.0.0/29"),
        ("10.0.1.9", "is outside the pool's addresses"),
        ("fd00::1", "is an IPv6 address; the pool hands out IPv4 addresses"),
        ("10.0.0.4/24", "has prefix length /24; the pool's prefix is /29"),
    ],
)
def test_refusals_say_why(text: str, reason: str) -> None:
    with pytest.raises(RequestRefused, match=reason.replace("(", r"\(").replace(")", r"\)")):
        ip_state().reserve("ns/c", req(text))


def test_an_excluded_address_is_refused_and_a_spec_change_wakes_the_claim() -> None:
    spec = IPPoolSpec(addresses=("10.0.0.0/29",), prefix=29, excluded=("10.0.0.5",))
    state, _ = PoolBook().upsert(KEY, IN_CLUSTER_IP_POOL, spec)
    with pytest.raises(RequestRefused, match="excluded"):
        state.reserve("ns/c", req("10.0.0.5"))
    assert "ns/c" in state.waiting
    assert state.update_spec(IPPoolSpec(addresses=("10.0.0.0/29",), prefix=29)) is True
    assert state.reserve("ns/c", req("10.0.0.5")).address == "10.0.0.5"


def test_any_ipv6_spelling_is_written_canonically() -> None:
    spec = IPPoolSpec(addresses=("fd00::/120",), prefix=120)
    state, _ = PoolBook().upsert(KEY, IN_CLUSTER_IP_POOL, spec)
    assert state.reserve("ns/c", req("FD00:0000::00a0")).address == "fd00::a0"
    assert ipaddress.ip_address("fd00::a0")


def test_a_prefix_pool_hands_out_a_requested_prefix_and_refuses_bad_ones() -> None:
    spec = PrefixPoolSpec(prefixes=("fd00::/62",), allocation_prefix_length=64)
    state, _ = PoolBook().upsert("InClusterPrefixPool/ns/p", IN_CLUSTER_PREFIX_POOL, spec)
    grant = state.reserve("ns/a", req("fd00:0:0:2::/64"))
    assert (grant.address, grant.prefix) == ("fd00:0:0:2::", 64)
    assert state.reserve("ns/b", req("fd00:0:0:3::")).address == "fd00:0:0:3::"
    with pytest.raises(RequestTaken):
        state.reserve("ns/c", req("fd00:0:0:2::/64"))
    for text, reason in [
        ("fd00:0:0:1::/63", "has prefix length /63"),
        ("fd00:0:0:1::5/64", "is not the first address"),
        ("fd00:0:0:9::/64", "is outside the pool's prefixes"),
    ]:
        with pytest.raises(RequestRefused, match=reason):
            state.reserve("ns/d", req(text))
    assert state.reserve("ns/plain").address == "fd00::"
    state.confirm("ns/a", "ns/a")
    state.forget("ns/a")
    assert state.pending("ns/c") is not None  # handed to the queued claim
    assert state.reserve("ns/c", req("fd00:0:0:2::/64")).address == "fd00:0:0:2::"
