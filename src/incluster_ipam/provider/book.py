"""The leader's allocation book: for every pool, which addresses are held, by whom, and who is waiting.

Pure and synchronous. Every operation completes without yielding to the event loop, so on one event loop
the book is serialized per pool for free (§10.11): an address is *reserved* here before any API write and
cannot be handed out twice, whatever the informer cache says.

- `reserve(claim)` takes the lowest free address for a claim and keeps it as pending (idempotent per
  claim) until `confirm()` (the IPAddress exists) or `abandon()` (the create definitively failed).
- `observe()`/`forget()` follow the IPAddress objects the informer sees. An address is held while any
  IPAddress object or pending claim holds it; it is freed only when the last holder goes.
- Pool specs may change: the allocator is retargeted and out-of-range addresses stay held (never reused).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from incluster_ipam.api.constants import PoolFamily, PoolKind
from incluster_ipam.api.models import IPPoolSpec, PrefixPoolSpec
from incluster_ipam.ipam import pool as ip_pool
from incluster_ipam.ipam import prefix as prefix_pool
from incluster_ipam.ipam.addresses import AddressError, IPSet, address_value, format_address
from incluster_ipam.ipam.allocator import Allocator, PoolExhausted
from incluster_ipam.ipam.pool import PoolCounts
from incluster_ipam.ipam.prefix import PrefixExhausted


class PoolSpecError(Exception):
    """The pool's spec cannot be turned into an allocatable set (webhooks off, or an old object)."""


@dataclass(frozen=True)
class Grant:
    """An address reserved for a claim: what goes into the IPAddress spec."""

    address: str
    prefix: int
    gateway: str
    value: int


@dataclass(slots=True)
class _Holders:
    """IPAddress objects (by `namespace/name`) and pending claims holding one address value."""

    addresses: set[str] = field(default_factory=set)
    claims: set[str] = field(default_factory=set)

    def empty(self) -> bool:
        return not self.addresses and not self.claims


class PoolState:
    """Allocation state of one pool (IP or prefix)."""

    def __init__(self, key: str, kind: PoolKind, spec: IPPoolSpec | PrefixPoolSpec) -> None:
        self.key = key
        self.kind = kind
        self._holders: dict[int, _Holders] = {}
        self._address_values: dict[str, int] = {}  # IPAddress key -> value
        self._pending: dict[str, int] = {}  # claim key -> value
        # IPAddress key -> (family, value) of an address of the other family, None when unparsable: never
        # allocatable here, but counted in the status (§5.7: out of range; prefix pools count every object).
        self._others: dict[str, tuple[int, int] | None] = {}
        self.waiting: set[str] = set()  # claim keys waiting for room
        self._allocator: Allocator | None = None
        self._prefix: prefix_pool.PrefixPool | None = None
        self._spec: IPPoolSpec | PrefixPoolSpec = spec
        self.version = 6
        self._apply_spec(spec, initial=True)

    # ---- spec -------------------------------------------------------------------------------------

    @property
    def spec(self) -> IPPoolSpec | PrefixPoolSpec:
        return self._spec

    @property
    def prefix_length(self) -> int:
        if isinstance(self._spec, PrefixPoolSpec):
            return prefix_pool.effective_allocation_prefix_length(self._spec.allocation_prefix_length)
        return self._spec.prefix

    @property
    def gateway(self) -> str:
        return self._spec.gateway

    def _apply_spec(self, spec: IPPoolSpec | PrefixPoolSpec, initial: bool = False) -> None:
        try:
            if isinstance(spec, IPPoolSpec):
                allocatable = ip_pool.allocatable_set(
                    ip_pool.IPPoolSpec(
                        addresses=tuple(spec.addresses or ()),
                        prefix=spec.prefix,
                        gateway=spec.gateway or None,
                        allocate_reserved=spec.allocate_reserved,
                        excluded=tuple(spec.excluded or ()),
                    )
                )
                self._apply_ip(allocatable, initial)
            else:
                self._prefix = prefix_pool.PrefixPool.from_spec(
                    prefix_pool.PrefixPoolSpec(
                        prefixes=tuple(spec.prefixes or ()),
                        allocation_prefix_length=prefix_pool.effective_allocation_prefix_length(
                            spec.allocation_prefix_length
                        ),
                        gateway=spec.gateway or None,
                        excluded=tuple(spec.excluded or ()),
                    )
                )
                self.version = 6
        except (AddressError, ValueError) as exc:
            raise PoolSpecError(str(exc)) from exc
        self._spec = spec

    def _apply_ip(self, allocatable: IPSet, initial: bool) -> None:
        held = list(self._holders)
        if self._allocator is None or initial or self._allocator.version != allocatable.version:
            self._allocator = Allocator(allocatable)
            for value in held:
                self._allocator.reserve(value, allow_out_of_range=True)
        else:
            self._allocator.retarget(allocatable)
        self.version = allocatable.version

    def update_spec(self, spec: IPPoolSpec | PrefixPoolSpec) -> bool:
        """Apply a changed spec; True when the pool may now have room for waiting claims."""
        if spec == self._spec:
            return False
        self._apply_spec(spec)
        return self.has_room()

    # ---- holders ----------------------------------------------------------------------------------

    def _parse(self, address: str) -> int | None:
        try:
            version, value = address_value(address)
        except AddressError:
            return None
        if version != self.version:
            return None
        return value

    def _hold(self, value: int) -> None:
        if self._allocator is not None and not self._allocator.is_allocated(value):
            self._allocator.reserve(value, allow_out_of_range=True)

    def _maybe_free(self, value: int) -> bool:
        holders = self._holders.get(value)
        if holders is None or not holders.empty():
            return False
        del self._holders[value]
        if self._allocator is not None:
            self._allocator.release(value)
        return True

    def observe(self, address_key: str, address: str) -> None:
        """An IPAddress object exists that holds `address` (idempotent). An address of the other family or
        an unparsable one holds nothing allocatable; it is only counted (`counts`)."""
        value = self._parse(address)
        if value is None:
            self.forget(address_key)
            self._others[address_key] = _other(address)
            return
        self._others.pop(address_key, None)
        previous = self._address_values.get(address_key)
        if previous == value:
            return
        if previous is not None:
            self.forget(address_key)
        if value is None:
            return
        self._address_values[address_key] = value
        self._holders.setdefault(value, _Holders()).addresses.add(address_key)
        self._hold(value)

    def forget(self, address_key: str) -> bool:
        """The IPAddress object is gone; True when its address became free."""
        self._others.pop(address_key, None)
        value = self._address_values.pop(address_key, None)
        if value is None:
            return False
        holders = self._holders.get(value)
        if holders is not None:
            holders.addresses.discard(address_key)
        return self._maybe_free(value)

    def holds(self, address_key: str) -> bool:
        return address_key in self._address_values

    def address_of(self, address_key: str) -> str | None:
        """The address an IPAddress object holds, as the book knows it (ahead of a lagging cache)."""
        value = self._address_values.get(address_key)
        return None if value is None else format_address(self.version, value)

    # ---- claims -----------------------------------------------------------------------------------

    def pending(self, claim_key: str) -> Grant | None:
        value = self._pending.get(claim_key)
        return None if value is None else self._grant(value)

    def _grant(self, value: int) -> Grant:
        return Grant(format_address(self.version, value), self.prefix_length, self.gateway, value)

    def reserve(self, claim_key: str) -> Grant:
        """The lowest free address (or sub-prefix) for `claim_key`, held until confirmed or abandoned.

        Raises `PoolExhausted` (and records the claim as waiting) when there is no room.
        """
        existing = self._pending.get(claim_key)
        if existing is not None:
            return self._grant(existing)
        try:
            value = self._take()
        except (PoolExhausted, PrefixExhausted):
            self.waiting.add(claim_key)
            raise PoolExhausted from None
        self.waiting.discard(claim_key)
        self._pending[claim_key] = value
        self._holders.setdefault(value, _Holders()).claims.add(claim_key)
        return self._grant(value)

    def _take(self) -> int:
        if self._allocator is not None:
            return self._allocator.allocate()
        assert self._prefix is not None
        in_use = [(value, self.prefix_length) for value in self._holders]
        return self._prefix.find_free(in_use)

    def confirm(self, claim_key: str, address_key: str) -> None:
        """The claim's IPAddress was created: the IPAddress object now holds the address."""
        value = self._pending.pop(claim_key, None)
        if value is None:
            return
        holders = self._holders.setdefault(value, _Holders())
        holders.claims.discard(claim_key)
        self._address_values[address_key] = value
        holders.addresses.add(address_key)

    def abandon(self, claim_key: str) -> bool:
        """The create definitively failed: drop the reservation; True when the address became free."""
        value = self._pending.pop(claim_key, None)
        if value is None:
            return False
        holders = self._holders.get(value)
        if holders is not None:
            holders.claims.discard(claim_key)
        return self._maybe_free(value)

    # ---- reporting --------------------------------------------------------------------------------

    def has_room(self) -> bool:
        if self._allocator is not None:
            return self._allocator.lowest_free() is not None
        assert self._prefix is not None
        try:
            self._prefix.find_free([(value, self.prefix_length) for value in self._holders])
        except PrefixExhausted:
            return False
        return True

    def counts(self) -> PoolCounts:
        if self._allocator is not None:
            counts = self._allocator.counts()
            foreign = len({other for other in self._others.values() if other is not None})
        else:
            assert self._prefix is not None
            counts = self._prefix.counts([(value, self.prefix_length) for value in self._holders])
            foreign = len(self._others)
        if not foreign:
            return counts
        return PoolCounts(counts.total, counts.used + foreign, counts.free, counts.out_of_range + foreign)

    def shared_addresses(self) -> dict[str, set[str]]:
        """Addresses held by more than one IPAddress object (duplicates planted from outside)."""
        return {
            format_address(self.version, value): set(h.addresses)
            for value, h in self._holders.items()
            if len(h.addresses) > 1
        }


def _other(address: str) -> tuple[int, int] | None:
    try:
        return address_value(address)
    except AddressError:
        return None


class PoolBook:
    """All pools' states, keyed by pool key (`objects.pool_key`)."""

    def __init__(self) -> None:
        self._pools: dict[str, PoolState] = {}

    def __contains__(self, key: object) -> bool:
        return key in self._pools

    def get(self, key: str) -> PoolState | None:
        return self._pools.get(key)

    def keys(self) -> list[str]:
        return list(self._pools)

    def upsert(
        self,
        key: str,
        kind: PoolKind,
        spec: IPPoolSpec | PrefixPoolSpec,
        addresses: Iterable[tuple[str, str]] = (),
    ) -> tuple[PoolState, bool]:
        """Create the pool's state (seeded with `(address_key, address)` pairs) or apply a new spec.

        Returns the state and whether waiting claims may now have room. Raises `PoolSpecError`.
        """
        state = self._pools.get(key)
        if state is None:
            expected = PoolFamily.IP if isinstance(spec, IPPoolSpec) else PoolFamily.PREFIX
            if kind.family is not expected:
                raise PoolSpecError(f"{kind.kind} cannot carry a {expected.value} pool spec")
            state = PoolState(key, kind, spec)
            for address_key, address in addresses:
                state.observe(address_key, address)
            self._pools[key] = state
            return state, state.has_room()
        return state, state.update_spec(spec)

    def remove(self, key: str) -> PoolState | None:
        return self._pools.pop(key, None)
