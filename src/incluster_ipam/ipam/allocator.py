"""Per-pool, in-memory allocation state: lowest free address first (§4.3, §10.11).

The allocator stores the *free* part of the allocatable set, not the used addresses: a sorted list of
free intervals (`_chunked.IntervalList`). The lowest free address is then the start of the first free
interval, so the cost of `allocate()` does not depend on the pool's size (a /8 or a /64 behaves like a
/24) nor on how many addresses are used below the first gap. Used addresses are everything allocatable
that is not free; addresses outside the allocatable set that are still in use (after the pool shrank, or
adopted from elsewhere) are kept apart as out-of-range: counted as used, never handed out.

Memory follows the number of free intervals (the fragmentation), not the number of used addresses: a
pool filled lowest-first is one interval whatever its usage. Costs, with n free intervals and the
default chunk load L = 512:

- `allocate()`: O(L) worst case, usually O(1) (shrinks the first interval);
- `release()`, `reserve()`, `is_allocated()`: O(log n) bisects plus at most O(L + n/L) pointer moves;
- construction from k in-use addresses: O(k log k) (sort) + O(r + k) (interval difference, r = number
  of allocatable ranges); `retarget()`: O(r + n + m) with m out-of-range addresses.

Not thread-safe by design: the caller serializes all operations on one pool (one pool, one queue).
"""

from collections.abc import Iterable

from incluster_ipam.ipam import _intervals
from incluster_ipam.ipam._chunked import IntervalList
from incluster_ipam.ipam.addresses import AddressLike, IPSet, MixedFamilyError, format_address, to_int
from incluster_ipam.ipam.pool import PoolCounts


class PoolExhausted(Exception):
    """No allocatable address is free."""

    def __init__(self) -> None:
        super().__init__("no address available")


class AddressUnavailable(Exception):
    """`reserve()` was refused: the address is already allocated, or outside the allocatable set.

    `reason` is "allocated" or "out-of-range"; `address` is the address as text.
    """

    ALLOCATED = "allocated"
    OUT_OF_RANGE = "out-of-range"

    def __init__(self, address: str, reason: str) -> None:
        if reason == self.ALLOCATED:
            message = f"address {address} is already allocated"
        else:
            message = f"address {address} is not in the pool's allocatable set"
        super().__init__(message)
        self.address = address
        self.reason = reason


class Allocator:
    """Allocation state of one pool: which allocatable addresses are free, which in-use ones are out of range.

    Addresses are accepted as ints in the pool's family or as address objects of that family (an object of
    the other family raises `MixedFamilyError`, an out-of-range int `ValueError`); results are ints.
    """

    __slots__ = ("_allocatable", "_duplicates", "_free", "_free_count", "_out_of_range")

    def __init__(self, allocatable: IPSet, in_use: Iterable[AddressLike] = ()) -> None:
        """Rebuild from the pool's allocatable set and the addresses its IPAddresses hold.

        Duplicate in-use addresses are accepted (recorded once) and reported by `duplicates()`; in-use
        addresses outside `allocatable` become out-of-range.
        """
        self._allocatable = allocatable
        values = sorted(to_int(allocatable.version, a) for a in in_use)
        distinct: list[int] = []
        duplicates: list[int] = []
        for value in values:
            if distinct and distinct[-1] == value:
                if not duplicates or duplicates[-1] != value:
                    duplicates.append(value)
            else:
                distinct.append(value)
        self._duplicates = tuple(duplicates)
        inside = [v for v in distinct if v in allocatable]
        self._out_of_range = set(distinct).difference(inside)
        free = _intervals.difference(allocatable.intervals(), _intervals.from_sorted_points(inside))
        self._free = IntervalList(free)
        self._free_count = _intervals.count(free)

    def _int(self, address: AddressLike) -> int:
        return to_int(self._allocatable.version, address)

    def _text(self, value: int) -> str:
        return format_address(self._allocatable.version, value)

    # -- queries -----------------------------------------------------------------------------------

    @property
    def version(self) -> int:
        return self._allocatable.version

    @property
    def allocatable(self) -> IPSet:
        return self._allocatable

    def is_allocated(self, address: AddressLike) -> bool:
        """Whether the address is in use (inside the allocatable set or out of range)."""
        value = self._int(address)
        if value in self._out_of_range:
            return True
        return value in self._allocatable and value not in self._free

    def is_free(self, address: AddressLike) -> bool:
        """Whether `allocate()` could hand out this address (allocatable and not in use)."""
        return self._int(address) in self._free

    def lowest_free(self) -> int | None:
        """The address the next `allocate()` returns, without taking it."""
        first = self._free.first()
        return None if first is None else first[0]

    def free(self) -> IPSet:
        """Allocatable addresses not in use."""
        return IPSet._normalized(self.version, list(self._free))

    def allocated(self) -> IPSet:
        """All addresses in use, out-of-range ones included."""
        inside = _intervals.difference(self._allocatable.intervals(), list(self._free))
        return IPSet._normalized(self.version, inside).union(self.out_of_range())

    def out_of_range(self) -> IPSet:
        """Addresses in use that lie outside the allocatable set (reported, never handed out)."""
        return IPSet.from_addresses(self.version, self._out_of_range)

    def duplicates(self) -> tuple[int, ...]:
        """Addresses given more than once to the constructor (two IPAddresses, one IP), ascending."""
        return self._duplicates

    def counts(self) -> PoolCounts:
        """Exact counts; `used` counts distinct addresses, out-of-range ones included."""
        total = self._allocatable.count()
        out_of_range = len(self._out_of_range)
        return PoolCounts(
            total=total,
            used=total - self._free_count + out_of_range,
            free=self._free_count,
            out_of_range=out_of_range,
        )

    # -- updates -----------------------------------------------------------------------------------

    def allocate(self) -> int:
        """Take and return the lowest free allocatable address; `PoolExhausted` when none is free."""
        try:
            value = self._free.pop_lowest()
        except IndexError:
            raise PoolExhausted from None
        self._free_count -= 1
        return value

    def reserve(self, address: AddressLike, *, allow_out_of_range: bool = False) -> int:
        """Mark a specific address as in use (adopting an existing IPAddress, or a requested address).

        Raises `AddressUnavailable` when the address is already in use, or when it lies outside the
        allocatable set unless `allow_out_of_range` is set: then it is recorded as out-of-range (in use,
        counted, reported, and allocatable again only if a later `retarget()` takes it back in).
        """
        value = self._int(address)
        if value in self._out_of_range:
            raise AddressUnavailable(self._text(value), AddressUnavailable.ALLOCATED)
        if self._free.discard(value):
            self._free_count -= 1
            return value
        if value in self._allocatable:
            raise AddressUnavailable(self._text(value), AddressUnavailable.ALLOCATED)
        if not allow_out_of_range:
            raise AddressUnavailable(self._text(value), AddressUnavailable.OUT_OF_RANGE)
        self._out_of_range.add(value)
        return value

    def release(self, address: AddressLike) -> bool:
        """Give an address back; return False (and change nothing) if it was not in use.

        A released allocatable address is handed out again by the next `allocate()` that reaches it; a
        released out-of-range address is simply forgotten.
        """
        value = self._int(address)
        if value in self._out_of_range:
            self._out_of_range.discard(value)
            return True
        if value not in self._allocatable or not self._free.add(value):
            return False
        self._free_count += 1
        return True

    def retarget(self, allocatable: IPSet) -> IPSet:
        """Switch to a new allocatable set (the pool spec changed), keeping every in-use address in use.

        In-use addresses outside the new set become out-of-range; out-of-range addresses inside it become
        ordinary used addresses again. Returns the new out-of-range set.
        """
        if allocatable.version != self.version:
            raise MixedFamilyError(f"IPv{allocatable.version} set", f"pool is IPv{self.version}")
        used = self.allocated()
        free = _intervals.difference(allocatable.intervals(), used.intervals())
        outside = used - allocatable
        self._allocatable = allocatable
        self._free = IntervalList(free)
        self._free_count = _intervals.count(free)
        self._out_of_range = {v for first, last in outside.intervals() for v in range(first, last + 1)}
        return outside

    def __repr__(self) -> str:
        c = self.counts()
        return (
            f"<Allocator IPv{self.version} total={c.total} used={c.used} free={c.free} "
            f"out_of_range={c.out_of_range}>"
        )
