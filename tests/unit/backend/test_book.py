"""The allocation book never gives one address to two holders, and frees it only with its last holder."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from incluster_ipam.api.constants import IN_CLUSTER_IP_POOL, IN_CLUSTER_PREFIX_POOL
from incluster_ipam.api.models import IPPoolSpec, PrefixPoolSpec
from incluster_ipam.backend.book import PoolBook, PoolSpecError
from incluster_ipam.ipam.allocator import PoolExhausted

KEY = "InClusterIPPool/ns/pool"


def spec(*addresses: str, prefix: int = 24, gateway: str = "", excluded: tuple[str, ...] = ()) -> IPPoolSpec:
    return IPPoolSpec(addresses=addresses, prefix=prefix, gateway=gateway, excluded=excluded)


def test_reserve_hands_out_lowest_free_and_is_idempotent_per_claim() -> None:
    state, room = PoolBook().upsert(KEY, IN_CLUSTER_IP_POOL, spec("10.0.0.10-10.0.0.12", gateway="10.0.0.1"))
    assert room
    first = state.reserve("ns/a")
    assert (first.address, first.prefix, first.gateway) == ("10.0.0.10", 24, "10.0.0.1")
    assert state.reserve("ns/a") == first
    assert state.reserve("ns/b").address == "10.0.0.11"


def test_seeded_addresses_are_skipped_and_exhaustion_records_the_waiter() -> None:
    state, _ = PoolBook().upsert(
        KEY, IN_CLUSTER_IP_POOL, spec("10.0.0.10-10.0.0.11"), [("ns/x", "10.0.0.10"), ("ns/y", "10.0.0.11")]
    )
    with pytest.raises(PoolExhausted):
        state.reserve("ns/c")
    assert state.waiting == {"ns/c"}
    assert state.forget("ns/x") is True
    assert state.reserve("ns/c").address == "10.0.0.10"
    assert state.waiting == set()


def test_an_address_held_twice_is_freed_only_when_both_holders_are_gone() -> None:
    state, _ = PoolBook().upsert(KEY, IN_CLUSTER_IP_POOL, spec("10.0.0.10"))
    state.observe("ns/x", "10.0.0.10")
    state.observe("ns/squatter", "10.0.0.10")
    assert state.forget("ns/x") is False
    with pytest.raises(PoolExhausted):
        state.reserve("ns/c")
    assert state.forget("ns/squatter") is True
    assert state.reserve("ns/c").address == "10.0.0.10"


def test_a_late_delete_event_does_not_free_a_reused_address() -> None:
    state, _ = PoolBook().upsert(KEY, IN_CLUSTER_IP_POOL, spec("10.0.0.10"))
    grant = state.reserve("ns/a")
    state.confirm("ns/a", "ns/a")
    assert state.forget("ns/a") is True  # our own delete succeeded
    again = state.reserve("ns/b")
    assert again.address == grant.address
    assert state.forget("ns/a") is False  # the watch event for the old object arrives late
    assert state.pending("ns/b") == again
    with pytest.raises(PoolExhausted):
        state.reserve("ns/c")


def test_abandon_frees_and_confirm_keeps() -> None:
    state, _ = PoolBook().upsert(KEY, IN_CLUSTER_IP_POOL, spec("10.0.0.10-10.0.0.11"))
    state.reserve("ns/a")
    assert state.abandon("ns/a") is True
    assert state.reserve("ns/b").address == "10.0.0.10"
    state.confirm("ns/b", "ns/b")
    state.observe("ns/b", "10.0.0.10")  # the informer catches up: no change
    assert state.counts().used == 1


def test_spec_shrink_keeps_in_use_addresses_out_of_range_and_growth_reports_room() -> None:
    book = PoolBook()
    state, _ = book.upsert(KEY, IN_CLUSTER_IP_POOL, spec("10.0.0.10-10.0.0.11"), [("ns/x", "10.0.0.11")])
    _, room = book.upsert(KEY, IN_CLUSTER_IP_POOL, spec("10.0.0.10"))
    assert room is True
    assert state.counts().out_of_range == 1
    state.reserve("ns/a")
    with pytest.raises(PoolExhausted):
        state.reserve("ns/b")
    _, room = book.upsert(KEY, IN_CLUSTER_IP_POOL, spec("10.0.0.10-10.0.0.12"))
    assert room is True
    assert state.reserve("ns/b").address == "10.0.0.12"  # .11 is still held by ns/x


def test_invalid_spec_is_a_pool_spec_error_and_keeps_the_old_state() -> None:
    book = PoolBook()
    with pytest.raises(PoolSpecError):
        book.upsert(KEY, IN_CLUSTER_IP_POOL, spec("not-an-ip"))
    state, _ = book.upsert(KEY, IN_CLUSTER_IP_POOL, spec("10.0.0.10"))
    with pytest.raises(PoolSpecError):
        book.upsert(KEY, IN_CLUSTER_IP_POOL, spec("10.0.0.10-10.0.0.1"))
    assert state.reserve("ns/a").address == "10.0.0.10"


def test_prefix_pool_hands_out_lowest_free_sub_prefix() -> None:
    state, _ = PoolBook().upsert(
        "InClusterPrefixPool/ns/p",
        IN_CLUSTER_PREFIX_POOL,
        PrefixPoolSpec(prefixes=("fd00::/62",)),
        [("ns/x", "fd00::")],
    )
    grant = state.reserve("ns/a")
    assert (grant.address, grant.prefix) == ("fd00:0:0:1::", 64)
    assert state.counts().used == 2


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(["reserve", "confirm", "abandon", "forget"]), st.integers(0, 9)),
        max_size=60,
    )
)
def test_no_two_live_holders_ever_share_an_address(ops: list[tuple[str, int]]) -> None:
    state, _ = PoolBook().upsert(
        KEY, IN_CLUSTER_IP_POOL, spec("10.0.0.1-10.0.0.6", prefix=29, gateway="10.0.0.1")
    )
    pending: dict[str, str] = {}
    live: dict[str, str] = {}  # IPAddress key -> address
    for op, n in ops:
        claim = f"ns/c{n}"
        if op == "reserve" and claim not in live:
            try:
                pending[claim] = state.reserve(claim).address
            except PoolExhausted:
                continue
        elif op == "confirm" and claim in pending:
            state.confirm(claim, claim)
            live[claim] = pending.pop(claim)
        elif op == "abandon" and claim in pending:
            state.abandon(claim)
            del pending[claim]
        elif op == "forget" and claim in live:
            state.forget(claim)
            del live[claim]
        held = list(pending.values()) + list(live.values())
        assert len(held) == len(set(held)), held
        assert "10.0.0.1" not in held
        assert state.counts().used == len(held)
