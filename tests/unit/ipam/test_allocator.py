"""Lowest-free allocation (§4.3), its bookkeeping, and the chunked free list under it."""

import ipaddress
import random
from typing import Any
from unittest import mock

import pytest
from hypothesis import given
from hypothesis import strategies as st

from incluster_ipam.ipam import _chunked
from incluster_ipam.ipam._chunked import IntervalList
from incluster_ipam.ipam.addresses import IPSet, MixedFamilyError
from incluster_ipam.ipam.allocator import AddressUnavailable, Allocator, PoolExhausted
from incluster_ipam.ipam.pool import IPPoolSpec, PoolCounts, allocatable_set
from tests.unit.ipam.twin import FAST, THOROUGH, expand, interval_lists

V4 = ipaddress.IPv4Address
V6 = ipaddress.IPv6Address


def pool(
    *addresses: str, prefix: int = 24, gateway: str | None = None, excluded: tuple[str, ...] = ()
) -> IPSet:
    return allocatable_set(IPPoolSpec(tuple(addresses), prefix, gateway, False, excluded))


def allocate_text(a: Allocator) -> str:
    return str(ipaddress.ip_address(a.allocate()) if a.version == 4 else V6(a.allocate()))


# -- examples (§4.3, §7) ----------------------------------------------------------------------------------


def test_lowest_address_whatever_the_entry_order() -> None:
    assert allocate_text(Allocator(pool("10.0.1.3", "10.0.1.2"))) == "10.0.1.2"


def test_single_range_first_address() -> None:
    assert allocate_text(Allocator(IPSet.from_entries(["10.0.0.10-10.0.0.20"]))) == "10.0.0.10"


def test_some_addresses_claimed() -> None:
    a = Allocator(IPSet.from_entries(["10.0.0.10-10.0.0.20"]), [V4("10.0.0.10"), V4("10.0.0.11")])
    assert allocate_text(a) == "10.0.0.12"


def test_only_last_address_free() -> None:
    used = [V4(f"10.0.0.{i}") for i in range(10, 20)]
    a = Allocator(IPSet.from_entries(["10.0.0.10-10.0.0.20"]), used)
    assert allocate_text(a) == "10.0.0.20"


def test_exhausted_range() -> None:
    used = [V4(f"10.0.0.{i}") for i in range(10, 21)]
    a = Allocator(IPSet.from_entries(["10.0.0.10-10.0.0.20"]), used)
    with pytest.raises(PoolExhausted, match=r"^no address available$"):
        a.allocate()


def test_single_address_range_and_multiple_ranges() -> None:
    a = Allocator(IPSet.from_entries(["10.0.0.30-10.0.0.31", "10.0.0.10", "10.0.1.0/31"]))
    got = [allocate_text(a) for _ in range(5)]
    assert got == ["10.0.0.10", "10.0.0.30", "10.0.0.31", "10.0.1.0", "10.0.1.1"]
    with pytest.raises(PoolExhausted):
        a.allocate()


def test_reserved_and_excluded_addresses_are_skipped() -> None:
    a = Allocator(
        pool("10.1.1.0-10.1.1.10", excluded=("10.1.1.6", "10.1.1.8", "10.1.1.9"), gateway="10.1.1.1")
    )
    got = [allocate_text(a) for _ in range(6)]
    assert got == ["10.1.1.2", "10.1.1.3", "10.1.1.4", "10.1.1.5", "10.1.1.7", "10.1.1.10"]
    with pytest.raises(PoolExhausted):
        a.allocate()


def test_exhausted_pool_recovers_after_release() -> None:
    a = Allocator(pool("10.0.0.1"))
    first = a.allocate()
    with pytest.raises(PoolExhausted):
        a.allocate()
    assert a.release(first)
    assert a.allocate() == first


def test_release_reuses_immediately_lowest_first() -> None:
    a = Allocator(IPSet.from_entries(["10.0.0.1-10.0.0.10"]))
    got = [a.allocate() for _ in range(10)]
    a.release(got[6])
    a.release(got[2])
    assert a.allocate() == got[2]
    assert a.allocate() == got[6]


def test_ipv6_sequence_in_a_64() -> None:
    a = Allocator(pool("fd00::/64", prefix=64))
    assert [str(V6(a.allocate())) for _ in range(3)] == ["fd00::1", "fd00::2", "fd00::3"]
    assert a.counts().free == 2**64 - 4


def test_huge_pool_counts_and_allocation() -> None:
    a = Allocator(pool("10.0.0.0/8", prefix=8), [V4("10.0.0.1"), V4("10.255.255.254")])
    assert a.allocate() == int(V4("10.0.0.2"))
    assert a.counts() == PoolCounts(total=2**24 - 2, used=3, free=2**24 - 5, out_of_range=0)


# -- reserve / release / retarget --------------------------------------------------------------------------


def test_reserve_taken_and_outside() -> None:
    a = Allocator(IPSet.from_entries(["10.0.0.1-10.0.0.5"]))
    assert a.reserve(V4("10.0.0.3")) == int(V4("10.0.0.3"))
    with pytest.raises(AddressUnavailable, match=r"10\.0\.0\.3 is already allocated") as taken:
        a.reserve(V4("10.0.0.3"))
    assert taken.value.reason == AddressUnavailable.ALLOCATED
    with pytest.raises(AddressUnavailable, match="not in the pool's allocatable set") as outside:
        a.reserve(V4("10.0.0.9"))
    assert outside.value.reason == AddressUnavailable.OUT_OF_RANGE
    assert outside.value.address == "10.0.0.9"
    assert not a.is_allocated(V4("10.0.0.9"))
    a.reserve(V4("10.0.0.9"), allow_out_of_range=True)
    assert a.is_allocated(V4("10.0.0.9"))
    with pytest.raises(AddressUnavailable, match="already allocated"):
        a.reserve(V4("10.0.0.9"), allow_out_of_range=True)
    assert a.counts() == PoolCounts(total=5, used=2, free=4, out_of_range=1)
    assert str(a.out_of_range()) == "10.0.0.9"
    assert [a.allocate() for _ in range(4)] == [int(V4(f"10.0.0.{i}")) for i in (1, 2, 4, 5)]


def test_release_unknown_address_is_a_no_op() -> None:
    a = Allocator(IPSet.from_entries(["10.0.0.1-10.0.0.5"]), [V4("10.0.0.1")])
    before = a.counts()
    assert not a.release(V4("10.0.0.2"))  # free already
    assert not a.release(V4("10.0.0.99"))  # never in the pool
    assert a.counts() == before
    assert a.release(V4("10.0.0.1"))
    assert not a.release(V4("10.0.0.1"))


def test_retarget_shrink_marks_out_of_range_and_grow_takes_back() -> None:
    a = Allocator(IPSet.from_entries(["10.0.0.1-10.0.0.10"]))
    for _ in range(5):
        a.allocate()  # .1 - .5
    outside = a.retarget(IPSet.from_entries(["10.0.0.4-10.0.0.20"]))
    assert str(outside) == "10.0.0.1-10.0.0.3"
    assert a.counts() == PoolCounts(total=17, used=5, free=15, out_of_range=3)
    assert a.allocate() == int(V4("10.0.0.6"))  # out-of-range addresses are never handed out
    assert a.is_allocated(V4("10.0.0.1"))
    assert a.release(V4("10.0.0.2"))
    assert a.counts().out_of_range == 2
    a.retarget(IPSet.from_entries(["10.0.0.1-10.0.0.20"]))
    assert a.counts() == PoolCounts(total=20, used=5, free=15, out_of_range=0)
    assert a.allocate() == int(V4("10.0.0.2"))


def test_retarget_rejects_other_family() -> None:
    with pytest.raises(MixedFamilyError):
        Allocator(IPSet.from_entries(["10.0.0.1"])).retarget(IPSet.from_entries(["fd00::1"]))


def test_constructor_records_out_of_range_and_duplicates() -> None:
    a = Allocator(
        IPSet.from_entries(["10.0.0.1-10.0.0.5"]),
        [V4("10.0.0.2"), V4("10.0.0.2"), V4("10.0.0.7"), V4("10.0.0.7"), V4("10.0.0.3")],
    )
    assert a.duplicates() == (int(V4("10.0.0.2")), int(V4("10.0.0.7")))
    assert a.counts() == PoolCounts(total=5, used=3, free=3, out_of_range=1)
    assert str(a.allocated()) == "10.0.0.2-10.0.0.3, 10.0.0.7"
    assert str(a.free()) == "10.0.0.1, 10.0.0.4-10.0.0.5"
    assert a.lowest_free() == int(V4("10.0.0.1"))


def test_family_and_value_checks() -> None:
    a = Allocator(IPSet.from_entries(["10.0.0.1-10.0.0.5"]))
    with pytest.raises(MixedFamilyError):
        a.reserve(V6("::a00:1"))
    with pytest.raises(ValueError, match="not an IPv4"):
        a.reserve(-1)
    with pytest.raises(ValueError, match="not an IPv4"):
        Allocator(IPSet.from_entries(["10.0.0.1"]), [2**32])
    assert "total=5" in repr(a)


def test_empty_pool_is_exhausted() -> None:
    a = Allocator(IPSet.empty(6))
    with pytest.raises(PoolExhausted):
        a.allocate()
    assert a.lowest_free() is None
    assert a.counts() == PoolCounts(0, 0, 0, 0)


def test_random_release_then_refill_lowest_first() -> None:
    """Realistic churn: release random addresses of a full-ish pool; refills come back in ascending order."""
    rng = random.Random(7)
    a = Allocator(pool("10.0.0.0/20", prefix=20))
    taken = [a.allocate() for _ in range(3000)]
    released = sorted(rng.sample(taken, 400))
    for v in released:
        assert a.release(v)
    assert [a.allocate() for _ in range(400)] == released
    assert a.allocate() == taken[-1] + 1


# -- property: any sequence of operations vs a set model -------------------------------------------------


Op = tuple[Any, ...]
UNIVERSE = 48  # addresses 0..47; pools are sets of small ints (IPv4 0.0.0.x, or an IPv6 offset)

ops = st.lists(
    st.one_of(
        st.tuples(st.just("allocate")),
        st.tuples(st.just("release"), st.integers(0, UNIVERSE - 1)),
        st.tuples(st.just("reserve"), st.integers(0, UNIVERSE - 1), st.booleans()),
        st.tuples(st.just("retarget"), interval_lists(UNIVERSE - 1)),
    ),
    max_size=40,
)


def run_against_model(
    version: int, offset: int, pairs: list[tuple[int, int]], initial: list[int], script: list[Op]
) -> None:
    def shifted(ps: list[tuple[int, int]]) -> IPSet:
        return IPSet(version, [(f + offset, la + offset) for f, la in ps])

    allocatable = {v + offset for f, la in pairs for v in range(f, la + 1)}
    used = {v + offset for v in initial}
    a = Allocator(shifted(pairs), [v + offset for v in initial])
    for op in script:
        if op[0] == "allocate":
            free = allocatable - used
            if not free:
                with pytest.raises(PoolExhausted):
                    a.allocate()
            else:
                assert a.allocate() == min(free)
                used.add(min(free))
        elif op[0] == "release":
            x = op[1] + offset
            assert a.release(x) == (x in used)
            used.discard(x)
        elif op[0] == "reserve":
            x, allow = op[1] + offset, op[2]
            if x in used:
                with pytest.raises(AddressUnavailable, match="already allocated"):
                    a.reserve(x, allow_out_of_range=allow)
            elif x in allocatable or allow:
                assert a.reserve(x, allow_out_of_range=allow) == x
                used.add(x)
            else:
                with pytest.raises(AddressUnavailable, match="not in the pool"):
                    a.reserve(x)
        else:
            allocatable = {v + offset for f, la in op[1] for v in range(f, la + 1)}
            assert expand(a.retarget(shifted(op[1]))) == used - allocatable
        counts = a.counts()
        assert counts == PoolCounts(
            total=len(allocatable),
            used=len(used),
            free=len(allocatable - used),
            out_of_range=len(used - allocatable),
        )
        assert expand(a.allocated()) == used
        assert expand(a.free()) == allocatable - used
        assert expand(a.out_of_range()) == used - allocatable
        assert a.lowest_free() == min(allocatable - used, default=None)
        for x in range(offset, offset + UNIVERSE):
            assert a.is_allocated(x) == (x in used)
            assert a.is_free(x) == (x in allocatable - used)


@THOROUGH
@given(interval_lists(UNIVERSE - 1), st.lists(st.integers(0, UNIVERSE - 1), max_size=10), ops)
def test_operations_match_model_ipv4(
    pairs: list[tuple[int, int]], initial: list[int], script: list[Op]
) -> None:
    run_against_model(4, 0, pairs, initial, script)


@FAST
@given(interval_lists(UNIVERSE - 1), st.lists(st.integers(0, UNIVERSE - 1), max_size=10), ops)
def test_operations_match_model_ipv6_big_values(
    pairs: list[tuple[int, int]], initial: list[int], script: list[Op]
) -> None:
    run_against_model(6, 2**128 - UNIVERSE, pairs, initial, script)


@FAST
@given(interval_lists(UNIVERSE - 1), st.lists(st.integers(0, UNIVERSE - 1), max_size=10), ops)
def test_operations_match_model_with_tiny_chunks(
    pairs: list[tuple[int, int]], initial: list[int], script: list[Op]
) -> None:
    """The same model check with chunks of 2-8 intervals, so that splits and merges happen all the time."""
    with mock.patch.object(_chunked, "DEFAULT_LOAD", 4):
        run_against_model(4, 0, pairs, initial, script)


# -- the chunked free list on its own --------------------------------------------------------------------


# A dense little universe, so that chunks of 2-8 intervals overflow (split) and drain (merge) often.
list_ops = st.lists(
    st.tuples(st.sampled_from(["add", "add", "discard", "discard", "pop"]), st.integers(0, 80)),
    max_size=150,
)


@THOROUGH
@given(st.lists(st.integers(0, 80), max_size=60), list_ops, st.sampled_from([2, 3, 4, 8]))
def test_interval_list_matches_set(initial: list[int], script: list[tuple[str, int]], load: int) -> None:
    model = set(initial)
    runs: list[tuple[int, int]] = []
    for v in sorted(model):
        if runs and runs[-1][1] == v - 1:
            runs[-1] = (runs[-1][0], v)
        else:
            runs.append((v, v))
    il = IntervalList(runs, load=load)
    il.check()
    for op, v in script:
        if op == "add":
            assert il.add(v) == (v not in model)
            model.add(v)
        elif op == "discard":
            assert il.discard(v) == (v in model)
            model.discard(v)
        elif model:
            assert il.pop_lowest() == min(model)
            model.remove(min(model))
        else:
            with pytest.raises(IndexError):
                il.pop_lowest()
        il.check()
        assert {x for f, la in il for x in range(f, la + 1)} == model
        assert all((x in il) == (x in model) for x in (v - 1, v, v + 1))
        first = il.first()
        assert (first[0] if first else None) == min(model, default=None)


@pytest.mark.parametrize("load", [2, 3, 4, 8])
def test_interval_list_random_stress(load: int) -> None:
    """Seeded churn over a fragmented universe: chunks split and merge constantly; invariants hold."""
    rng = random.Random(load)
    il, model = IntervalList(load=load), set()
    max_chunks = splits = 0
    for step in range(4000):
        v = rng.randrange(400)
        roll = rng.random()
        chunks_before = len(il._starts)
        if roll < 0.55:
            assert il.add(v) == (v not in model)
            model.add(v)
        elif roll < 0.95:
            assert il.discard(v) == (v in model)
            model.discard(v)
        elif model:
            assert il.pop_lowest() == min(model)
            model.remove(min(model))
        splits += len(il._starts) > chunks_before
        max_chunks = max(max_chunks, len(il._starts))
        if step % 50 == 0:
            il.check()
            assert {x for f, la in il for x in range(f, la + 1)} == model
    il.check()
    assert {x for f, la in il for x in range(f, la + 1)} == model
    assert splits > 10, "the stress did not exercise chunk splits"
    assert max_chunks > 5


def test_allocator_random_stress_with_tiny_chunks() -> None:
    """Seeded allocate/release/reserve churn with 4-interval chunks vs a set model."""
    rng = random.Random(11)
    with mock.patch.object(_chunked, "DEFAULT_LOAD", 4):
        allocatable = IPSet(4, [(0, 99), (150, 299), (310, 310), (320, 399)])
        members = expand(allocatable)
        used = set(rng.sample(range(420), 120))
        a = Allocator(allocatable, used)
        max_chunks = 0
        for _ in range(5000):
            roll, v = rng.random(), rng.randrange(420)
            if roll < 0.3:
                free = members - used
                if free:
                    assert a.allocate() == min(free)
                    used.add(min(free))
            elif roll < 0.7:
                assert a.release(v) == (v in used)
                used.discard(v)
            elif v not in used:
                a.reserve(v, allow_out_of_range=True)
                used.add(v)
            max_chunks = max(max_chunks, len(a._free._starts))
        assert expand(a.allocated()) == used
        assert a.counts() == PoolCounts(len(members), len(used), len(members - used), len(used - members))
        a._free.check()
        assert max_chunks > 5, "the stress did not spread the free list over several chunks"


def test_interval_list_grows_and_shrinks_many_chunks() -> None:
    il = IntervalList(load=8)
    for v in range(0, 400, 2):  # 200 separate intervals -> many chunk splits
        il.add(v)
        il.check()
    assert len(il) == 200
    for v in range(100, 300, 2):  # drain the middle chunks one interval at a time -> merges
        assert il.discard(v)
        il.check()
    assert len(il) == 100
    for v in range(1, 399, 2):  # fill every gap left of 100 and right of 300: two intervals remain
        if not 100 <= v < 300:
            il.add(v)
    il.check()
    assert list(il) == [(0, 99), (300, 398)]
    for v in range(0, 399, 3):
        il.discard(v)
    il.check()


def test_interval_list_rejects_tiny_load() -> None:
    with pytest.raises(ValueError, match="load"):
        IntervalList(load=1)
