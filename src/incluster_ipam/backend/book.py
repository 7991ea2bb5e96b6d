"""The leader's allocation book: for every pool, which addresses are held, by whom, and who is waiting.

Pure and synchronous. Every operation completes without yielding to the event loop, so on one event loop
the book is serialized per pool for free (§10.11): an address is *reserved* here before any API write and
cannot be handed out twice, whatever the informer cache says.

- `reserve(claim)` takes the lowest free address for a claim and keeps it as pending (idempotent per
  claim, and never out of the pool's current spec) until `confirm()` (the IPAddress exists) or
  `abandon()` (the create definitively failed).
- `observe()`/`forget()` follow the IPAddress objects. An IPAddress is known by its UID, not its name: two
  incarnations of one name (a claim deleted and re-created, a restore, `clusterctl move`) are two holders,
  and a late event of the earlier one can neither move nor free the address the later one holds. A UID
  that is gone is remembered (a bounded tombstone list), so its late events are ignored.
- An address is held while any IPAddress object or pending claim holds it; it is freed only when the last
  holder goes.
- Pool specs may change: the allocator is retargeted and out-of-range addresses stay held (never reused).
- A claim may ask for one exact address (`reserve(claim, requested)`). When another holder has it, the
  claim queues for it; the moment its last holder goes, the address is reserved for the first claim in
  that queue, so no plain claim can take it in between.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass

from incluster_ipam.api.constants import PoolFamily, PoolKind
from incluster_ipam.api.models import IPPoolSpec, PrefixPoolSpec
from incluster_ipam.api.specs import compile_spec, ip_core_spec
from incluster_ipam.ipam import prefix as prefix_pool
from incluster_ipam.ipam.addresses import AddressError, IPSet, address_value, format_address
from incluster_ipam.ipam.allocator import Allocator, PoolExhausted
from incluster_ipam.ipam.pool import PoolCounts
from incluster_ipam.ipam.prefix import PrefixExhausted
from incluster_ipam.ipam.request import Requested, ip_refusal, prefix_refusal

#: UIDs of IPAddresses known to be gone, per book; older ones are dropped first.
TOMBSTONES = 16384


class PoolSpecError(Exception):
    """The pool's spec cannot be turned into an allocatable set (webhooks off, or an old object)."""


class RequestRefused(Exception):
    """The pool's spec never hands out the requested address; the message says why."""


class RequestTaken(Exception):
    """The requested address is held by someone else: the claim is queued for it (`holders` says who)."""

    def __init__(self, holders: set[str]) -> None:
        super().__init__("is in use")
        self.holders = holders


@dataclass(frozen=True)
class Grant:
    """An address reserved for a claim: what goes into the IPAddress spec."""

    address: str
    prefix: int
    gateway: str
    value: int


@dataclass(frozen=True, slots=True)
class Held:
    """What one IPAddress object holds: its name, its address value and (prefix pools) its length."""

    key: str
    value: int
    length: int


#: A pending claim among a value's holders: this mark and the claim's key (no IPAddress identity, a UID or
#: `key:<key>`, starts with it).
_CLAIM_MARK = "\0"


def identity(address_key: str, uid: str | None) -> str:
    """The book's identity of an IPAddress: its UID, or its key when no UID is known (tests, old objects)."""
    return uid or f"key:{address_key}"


def build_allocatable(spec: IPPoolSpec | PrefixPoolSpec) -> IPSet | prefix_pool.PrefixPool:
    """What `PoolState` allocates from, compiled from a spec (`api.specs.compile_spec`). The costly part of
    building a pool state (linear in the spec's entries): callers may run it off the event loop and hand
    the result in."""
    try:
        return compile_spec(spec)
    except (AddressError, ValueError) as exc:
        raise PoolSpecError(str(exc)) from exc


class Graveyard:
    """Identities of IPAddresses known to be gone (bounded: the oldest are dropped first). Shared by the
    pools of one book, so an IPAddress deleted before its pool's state exists is known dead there too."""

    def __init__(self, size: int = TOMBSTONES) -> None:
        self._size = size
        self._dead: OrderedDict[str, None] = OrderedDict()

    def __contains__(self, who: object) -> bool:
        return who in self._dead

    def bury(self, who: str) -> None:
        self._dead[who] = None
        self._dead.move_to_end(who)
        while len(self._dead) > self._size:
            self._dead.popitem(last=False)

    def revive(self, who: str) -> None:
        """Our own create answered with this identity: it lives (UIDs are never reused; keys might be)."""
        self._dead.pop(who, None)


class PoolState:
    """Allocation state of one pool (IP or prefix)."""

    def __init__(
        self,
        key: str,
        kind: PoolKind,
        spec: IPPoolSpec | PrefixPoolSpec,
        built: IPSet | prefix_pool.PrefixPool | None = None,
        graveyard: Graveyard | None = None,
    ) -> None:
        self.key = key
        self.kind = kind
        # Address value -> its holders: IPAddress identities and `_CLAIM_MARK`-prefixed pending claims. A
        # tuple, not sets: nearly every value has exactly one holder, and a 1-tuple takes a fifth of the
        # room of an empty set (100,000 addresses: over 40 MB less).
        self._holders: dict[int, tuple[str, ...]] = {}
        self._objects: dict[str, Held] = {}  # IPAddress identity -> what it holds
        self._by_key: dict[str, str] = {}  # IPAddress key -> identity of its latest incarnation
        # Identities learned ahead of the watch (our create's answer, a live read): the watch may still
        # deliver events of an earlier incarnation of the name, which must not displace them.
        self._ahead: set[str] = set()
        self._dead = graveyard if graveyard is not None else Graveyard()  # identities known to be gone
        self._pending: dict[str, int] = {}  # claim key -> value
        # IPAddress identity -> (family, value) of an address of the other family, None when unparsable:
        # never allocatable here, but counted in the status (§5.7).
        self._others: dict[str, tuple[str, tuple[int, int] | None]] = {}
        self.waiting: set[str] = set()  # claim keys waiting for room (or for their requested address)
        # Claims queued for an address someone else holds, first come first served (insertion order).
        self._wanted: dict[str, Requested] = {}
        self._allocator: Allocator | None = None
        self._prefix: prefix_pool.PrefixPool | None = None
        self._spec: IPPoolSpec | PrefixPoolSpec = spec
        self.version = 6
        self._apply_spec(spec, built, initial=True)

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

    def _apply_spec(
        self,
        spec: IPPoolSpec | PrefixPoolSpec,
        built: IPSet | prefix_pool.PrefixPool | None = None,
        initial: bool = False,
    ) -> None:
        allocatable = built if built is not None else build_allocatable(spec)
        if isinstance(spec, IPPoolSpec) != isinstance(allocatable, IPSet):
            raise PoolSpecError("the built allocatable set does not match the spec's family")
        if isinstance(allocatable, IPSet):
            self._apply_ip(allocatable, initial)
        else:
            self._prefix = allocatable
            self.version = 6
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

    def update_spec(
        self, spec: IPPoolSpec | PrefixPoolSpec, built: IPSet | prefix_pool.PrefixPool | None = None
    ) -> bool:
        """Apply a changed spec (with its allocatable set when already built); True when waiting claims
        should look again (there may be room, or a requested address may have become allocatable)."""
        if spec == self._spec:
            return False
        self._apply_spec(spec, built)
        return self.has_room() or bool(self.waiting)

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

    def _add_holder(self, value: int, entry: str) -> None:
        entries = self._holders.get(value, ())
        if entry not in entries:
            self._holders[value] = (*entries, entry)

    def _drop_holder(self, value: int, entry: str) -> None:
        """Drop one holder of `value`; the value stays listed (as held by nobody) until `_maybe_free`."""
        entries = self._holders.get(value)
        if entries is not None and entry in entries:
            self._holders[value] = tuple(e for e in entries if e != entry)

    def _maybe_free(self, value: int) -> bool:
        holders = self._holders.get(value)
        if holders is None or holders:
            return False
        del self._holders[value]
        if self._allocator is not None:
            self._allocator.release(value)
        self._hand_over()
        return True

    def _hand_over(self) -> None:
        """Reserve every queued requested address that is free now for the first claim queued for it (the
        claim stays in `waiting` until its own `reserve` picks the reservation up)."""
        for claim_key, requested in list(self._wanted.items()):
            if claim_key in self._wanted and self._is_free(requested.value):
                del self._wanted[claim_key]
                self._take_exactly(claim_key, requested.value)

    def _length(self, prefix: int | None) -> int:
        """The length an IPAddress blocks: its own `spec.prefix` in prefix pools (upstream masks each one
        with it), the allocation length when it has none; unused in IP pools."""
        if self._prefix is None:
            return 0
        if isinstance(prefix, int) and not isinstance(prefix, bool) and 0 <= prefix <= 128:
            return prefix
        return self.prefix_length

    def observe(
        self,
        address_key: str,
        address: str,
        uid: str | None = None,
        prefix: int | None = None,
        *,
        ahead: bool = False,
    ) -> None:
        """An IPAddress object exists that holds `address` (idempotent). An address of the other family or
        an unparsable one holds nothing allocatable; it is only counted (`counts`). Events of an IPAddress
        that is known to be gone are ignored. `ahead`: learned from a live read, not from the watch."""
        who = identity(address_key, uid)
        if who in self._dead:
            return
        current = self._by_key.get(address_key)
        if ahead:
            self._ahead.add(who)
            self._by_key[address_key] = who
        elif current is None or current == who or current not in self._ahead:
            self._by_key[address_key] = who
            self._ahead.discard(who)
        value = self._parse(address)
        if value is None:
            self._release_object(who)
            self._others[who] = (address_key, _other(address))
            return
        self._others.pop(who, None)
        held = Held(address_key, value, self._length(prefix))
        previous = self._objects.get(who)
        if previous == held:
            return
        if previous is not None:
            self._release_object(who)
        self._objects[who] = held
        self._add_holder(value, who)
        self._hold(value)

    def _release_object(self, who: str) -> bool:
        self._ahead.discard(who)
        held = self._objects.pop(who, None)
        if held is None:
            return False
        self._drop_holder(held.value, who)
        return self._maybe_free(held.value)

    def forget(self, address_key: str, uid: str | None = None) -> bool:
        """That IPAddress object is gone; True when its address became free. Without a UID, every
        incarnation of the name is gone (a GET by name answered 404)."""
        if uid is None:
            return self.forget_key(address_key)
        who = identity(address_key, uid)
        self._bury(who)
        if self._by_key.get(address_key) == who:
            del self._by_key[address_key]
        self._others.pop(who, None)
        return self._release_object(who)

    def forget_key(self, address_key: str) -> bool:
        """No IPAddress of this name exists any more (any incarnation); True when an address became free."""
        freed = False
        gone = [who for who, held in self._objects.items() if held.key == address_key]
        gone += [who for who, (key, _) in self._others.items() if key == address_key]
        for who in gone:
            self._bury(who)
            self._others.pop(who, None)
            freed = self._release_object(who) or freed
        self._by_key.pop(address_key, None)
        return freed

    def _bury(self, who: str) -> None:
        self._dead.bury(who)

    def holds(self, address_key: str) -> bool:
        who = self._by_key.get(address_key)
        return who is not None and (who in self._objects or who in self._others)

    def identities(self, address_key: str) -> set[str]:
        """Every identity the book holds under this name (normally one)."""
        found = {who for who, held in self._objects.items() if held.key == address_key}
        return found | {who for who, (key, _) in self._others.items() if key == address_key}

    def address_of(self, address_key: str) -> str | None:
        """The address an IPAddress object holds, as the book knows it (ahead of a lagging cache)."""
        who = self._by_key.get(address_key)
        held = self._objects.get(who) if who is not None else None
        return None if held is None else format_address(self.version, held.value)

    def holders_of(self, address: str) -> set[str]:
        """Keys of the IPAddress objects holding `address`, plus pending claims (`claim:<key>`)."""
        value = self._parse(address)
        holders = self._holders.get(value) if value is not None else None
        if holders is None:
            return set()
        claims = {f"claim:{e[len(_CLAIM_MARK) :]}" for e in holders if e.startswith(_CLAIM_MARK)}
        return claims | {self._objects[who].key for who in holders if who in self._objects}

    def is_allocatable(self, address: str, prefix: int | None = None) -> bool:
        """Whether `address` (a sub-prefix of `prefix` in prefix pools) is inside the pool's current spec:
        in its addresses, not excluded, not the gateway, not reserved."""
        value = self._parse(address)
        if value is None:
            return False
        if self._allocator is not None:
            return value in self._allocator.allocatable
        assert self._prefix is not None
        return self._prefix.is_allocatable(value, prefix if prefix is not None else self.prefix_length)

    # ---- claims -----------------------------------------------------------------------------------

    def pending(self, claim_key: str) -> Grant | None:
        value = self._pending.get(claim_key)
        return None if value is None else self._grant(value)

    @property
    def pending_count(self) -> int:
        return len(self._pending)

    def _grant(self, value: int) -> Grant:
        return Grant(format_address(self.version, value), self.prefix_length, self.gateway, value)

    def _still_allocatable(self, value: int) -> bool:
        if self._allocator is not None:
            return value in self._allocator.allocatable
        assert self._prefix is not None
        return self._prefix.is_allocatable(value, self.prefix_length)

    def reserve(self, claim_key: str, requested: Requested | None = None) -> Grant:
        """The lowest free address (or sub-prefix) for `claim_key`, or exactly `requested`, held until
        confirmed or abandoned.

        A reservation kept across a create of unknown outcome is handed back only while the pool's
        current spec still allows it (and it is the requested address, if one is asked for); otherwise it
        is dropped and a fresh one taken. Raises `PoolExhausted` (and records the claim as waiting) when
        there is no room; for a requested address, `RequestRefused` when the spec rules it out and
        `RequestTaken` when someone else holds it (the claim is queued for it).
        """
        existing = self._pending.get(claim_key)
        if existing is not None:
            if self._still_allocatable(existing) and (requested is None or requested.value == existing):
                self._wanted.pop(claim_key, None)
                self.waiting.discard(claim_key)
                return self._grant(existing)
            self.abandon(claim_key)
        if requested is not None:
            return self._reserve_requested(claim_key, requested)
        self._wanted.pop(claim_key, None)
        try:
            value = self._take()
        except (PoolExhausted, PrefixExhausted):
            self.waiting.add(claim_key)
            raise PoolExhausted from None
        self.waiting.discard(claim_key)
        self._pending[claim_key] = value
        self._add_holder(value, _CLAIM_MARK + claim_key)
        return self._grant(value)

    def refusal(self, requested: Requested) -> str | None:
        """Why this pool's spec never hands out `requested` (None when it may)."""
        if self._allocator is not None:
            fits = requested.length is None or requested.length == self.prefix_length
            if requested.version == self.version and fits and requested.value in self._allocator.allocatable:
                return None
            assert isinstance(self._spec, IPPoolSpec)
            return ip_refusal(ip_core_spec(self._spec), requested) or "is not allocatable in the pool"
        assert self._prefix is not None
        return prefix_refusal(self._prefix, requested)

    def _reserve_requested(self, claim_key: str, requested: Requested) -> Grant:
        refusal = self.refusal(requested)
        if refusal is not None:
            self._wanted.pop(claim_key, None)
            self.waiting.add(claim_key)  # a spec change may allow it
            raise RequestRefused(refusal)
        if not self._is_free(requested.value):
            if self._wanted.get(claim_key) != requested:
                self._wanted.pop(claim_key, None)
                self._wanted[claim_key] = requested  # to the back of the queue only when it asks anew
            self.waiting.add(claim_key)
            raise RequestTaken(self.holders_of(format_address(self.version, requested.value)))
        self._wanted.pop(claim_key, None)
        self.waiting.discard(claim_key)
        self._take_exactly(claim_key, requested.value)
        return self._grant(requested.value)

    def _is_free(self, value: int) -> bool:
        """Whether nobody holds `value` (IP pools: the address; prefix pools: any of its sub-prefix)."""
        if self._allocator is not None:
            return self._allocator.is_free(value)
        assert self._prefix is not None
        last = value + (1 << (128 - self.prefix_length)) - 1
        return not self._prefix.blocked(self._in_use()).overlaps_range(value, last)

    def _take_exactly(self, claim_key: str, value: int) -> None:
        if self._allocator is not None:
            self._allocator.reserve(value)
        self._pending[claim_key] = value
        self._add_holder(value, _CLAIM_MARK + claim_key)

    def _in_use(self) -> list[tuple[int, int]]:
        """Prefix pools: every held sub-prefix with the length it blocks (pending ones at the allocation
        length)."""
        length = self.prefix_length
        used = [(held.value, held.length) for held in self._objects.values()]
        used += [(value, length) for value in self._pending.values()]
        return used

    def _take(self) -> int:
        if self._allocator is not None:
            return self._allocator.allocate()
        assert self._prefix is not None
        return self._prefix.find_free(self._in_use())

    def confirm(self, claim_key: str, address_key: str, uid: str | None = None) -> None:
        """The claim's IPAddress was created: the IPAddress object now holds the address."""
        value = self._pending.pop(claim_key, None)
        if value is None:
            return
        self._drop_holder(value, _CLAIM_MARK + claim_key)
        who = identity(address_key, uid)
        self._dead.revive(who)
        self._by_key[address_key] = who
        self._ahead.add(who)
        self._objects[who] = Held(address_key, value, self.prefix_length if self._prefix else 0)
        self._add_holder(value, who)

    def abandon(self, claim_key: str) -> bool:
        """The create definitively failed: drop the reservation; True when the address became free."""
        value = self._pending.pop(claim_key, None)
        if value is None:
            return False
        self._drop_holder(value, _CLAIM_MARK + claim_key)
        return self._maybe_free(value)

    def withdraw(self, claim_key: str) -> bool:
        """The claim is gone (or asks elsewhere): no reservation, no place in a queue, not waiting. True
        when an address became free."""
        self._wanted.pop(claim_key, None)
        self.waiting.discard(claim_key)
        return self.abandon(claim_key)

    def queued_for(self, claim_key: str) -> str | None:
        """The requested address the claim is queued for, if any."""
        requested = self._wanted.get(claim_key)
        return None if requested is None else format_address(self.version, requested.value)

    # ---- reporting --------------------------------------------------------------------------------

    def has_room(self) -> bool:
        if self._allocator is not None:
            return self._allocator.lowest_free() is not None
        assert self._prefix is not None
        try:
            self._prefix.find_free(self._in_use())
        except PrefixExhausted:
            return False
        return True

    def is_empty(self) -> bool:
        """Nothing held and nothing pending: the state can be dropped with its pool."""
        return not self._objects and not self._others and not self._pending

    def counts(self) -> PoolCounts:
        """Status counts: `used` is the number of IPAddress objects (as upstream) plus pending
        reservations; `free` is what can still be handed out (§10.2)."""
        objects = len(self._objects) + len(self._others) + len(self._pending)
        if self._allocator is not None:
            counts = self._allocator.counts()
            foreign = len({other for _, other in self._others.values() if other is not None})
            return PoolCounts(counts.total, objects, counts.free, counts.out_of_range + foreign)
        assert self._prefix is not None
        counts = self._prefix.counts(self._in_use())
        foreign = len(self._others)
        if not foreign:
            return counts
        return PoolCounts(counts.total, counts.used + foreign, counts.free, counts.out_of_range + foreign)


def _other(address: str) -> tuple[int, int] | None:
    try:
        return address_value(address)
    except AddressError:
        return None


class PoolBook:
    """All pools' states, keyed by pool key (`objects.pool_key`)."""

    def __init__(self) -> None:
        self._pools: dict[str, PoolState] = {}
        self.graveyard = Graveyard()

    def bury(self, address_key: str, uid: str | None) -> None:
        """An IPAddress is gone whose pool has no state yet: its late events must not hold anything."""
        self.graveyard.bury(identity(address_key, uid))

    def __contains__(self, key: object) -> bool:
        return key in self._pools

    def get(self, key: str) -> PoolState | None:
        return self._pools.get(key)

    def keys(self) -> list[str]:
        return list(self._pools)

    def states(self) -> list[PoolState]:
        return list(self._pools.values())

    def upsert(
        self,
        key: str,
        kind: PoolKind,
        spec: IPPoolSpec | PrefixPoolSpec,
        addresses: Iterable[tuple[str, str] | tuple[str, str, str | None, int | None]] = (),
        built: IPSet | prefix_pool.PrefixPool | None = None,
    ) -> tuple[PoolState, bool]:
        """Create the pool's state (seeded with `(address_key, address[, uid, prefix])` tuples) or apply a
        new spec; `built` is the spec's allocatable set when the caller computed it already.

        Returns the state and whether waiting claims may now have room. Raises `PoolSpecError`.
        """
        state = self._pools.get(key)
        if state is None:
            expected = PoolFamily.IP if isinstance(spec, IPPoolSpec) else PoolFamily.PREFIX
            if kind.family is not expected:
                raise PoolSpecError(f"{kind.kind} cannot carry a {expected.value} pool spec")
            state = PoolState(key, kind, spec, built, self.graveyard)
            for entry in addresses:
                state.observe(*entry)
            self._pools[key] = state
            return state, state.has_room()
        return state, state.update_spec(spec, built)

    def remove(self, key: str) -> PoolState | None:
        """Drop a deleted pool's state, unless reservations are still pending in it (their creates may
        land yet): then it stays, and a pool re-created under the same name continues from it."""
        state = self._pools.get(key)
        if state is None or state.pending_count:
            return None
        return self._pools.pop(key)
