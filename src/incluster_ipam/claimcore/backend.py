"""The seam between the claim lifecycle and whatever hands out addresses.

A backend answers for the claims whose `spec.poolRef` it owns. The lifecycle calls it in this order for a
new claim: `pool` (is the pool there, paused, going away?), `unusable` (can it be used at all?), `reserve`
(an address, held for this claim until `confirm` or `abandon`), then the IPAddress create, then `confirm`
(it exists) or `abandon` (it certainly does not). A create whose outcome is unknown (a timeout, a 5xx, a
reset) is retried with the same reservation: **`reserve` must be idempotent per claim key**, returning the
reservation it already holds as long as the pool still allows it. For a backend on one event loop that
never awaits inside these methods (the in-cluster pools) that is free; a remote IPAM (NetBox, Infoblox)
must look its reservation up by the claim (a tag, a custom field) before it allocates, since a retry may
come from another process after a leader change.

Everything the backend knows about IPAddresses (which it holds, ahead of the cache) it learns from the
lifecycle (`confirm`, `adopted`, `released`, `gone`) and from its own watches.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from incluster_ipam.capi.contract import PoolRef

__all__ = ["Allocation", "ClaimBackend", "Exhausted", "NotReady", "PoolRef", "Unavailable"]


@dataclass(frozen=True)
class Allocation:
    """An address reserved for a claim: what goes into the IPAddress spec."""

    address: str
    prefix: int
    gateway: str = ""


class Exhausted(Exception):
    """No room in the pool. The claim waits; the backend calls its `wake` for it when room appears."""


class Unavailable(Exception):
    """The requested address cannot be had now; the message says why, worded to follow "requested address
    X". The claim waits; the backend calls its `wake` for it when that may change (the address is freed
    and reserved for it, or the pool's spec changes)."""


class NotReady(Exception):
    """The pool cannot hand out anything now (invalid, being deleted, unreachable); the message says why."""


class ClaimBackend(Protocol):
    """An address backend: the in-cluster pools (`incluster_ipam.backend.InClusterPools`), or another."""

    def pool_key(self, claim: Mapping[str, Any]) -> str | None:
        """The pool this claim asks for, if this backend owns its `spec.poolRef`; None otherwise (the claim
        is left alone: another provider's)."""
        ...

    def pool_of_address(self, address: Mapping[str, Any]) -> str | None:
        """The pool an IPAddress was allocated from, if it is one of this backend's."""
        ...

    def describe(self, pool_key: str) -> str:
        """The pool, named for a message (also when it does not exist)."""
        ...

    def pool(self, pool_key: str) -> PoolRef | None:
        """The pool, as this process knows it now; None when it does not exist."""
        ...

    def unusable(self, pool: PoolRef) -> str | None:
        """Why the pool cannot be used at all now (its spec is invalid, say), worded to follow "pool X";
        None when it can. Checked before anything else of a binding."""
        ...

    async def reserve(self, claim_key: str, pool: PoolRef, requested: str | None = None) -> Allocation:
        """An address for the claim (idempotent per claim key): exactly `requested` when the claim asks for
        one (the annotation's text, any spelling), the backend's choice otherwise. Raises `Exhausted`,
        `Unavailable` (a requested address) or `NotReady`."""
        ...

    async def confirm(self, claim_key: str, pool: PoolRef, address: Mapping[str, Any]) -> None:
        """The claim's IPAddress was created (the create's answer): it holds the reserved address now."""
        ...

    async def abandon(self, claim_key: str) -> None:
        """Drop any reservation the claim holds (its create certainly failed, or the claim is gone)."""
        ...

    def known_address(self, claim_key: str, pool: PoolRef) -> str | None:
        """The address of the claim's IPAddress if the backend knows it ahead of the cache (None if not)."""
        ...

    def holds(self, address_key: str) -> bool:
        """Whether the backend counts an IPAddress of that `namespace/name` as holding an address."""
        ...

    def refusal(self, claim: Mapping[str, Any], pool: PoolRef, address: Mapping[str, Any]) -> str | None:
        """Why an existing IPAddress of the claim's name must not be adopted on the backend's side (its
        address is not one the pool hands out, or somebody else holds it); None when it may be."""
        ...

    def outside(self, pool: PoolRef, address: Mapping[str, Any]) -> bool:
        """Whether the IPAddress's address is one the pool would not hand out now (it shrank)."""
        ...

    async def adopted(self, pool: PoolRef, address: Mapping[str, Any]) -> None:
        """The claim takes this existing IPAddress (read live or from the cache): it holds its address."""
        ...

    async def released(self, address: Mapping[str, Any]) -> None:
        """This IPAddress (by UID) was deleted by the lifecycle: its address may be freed."""
        ...

    async def gone(self, address_key: str, keep_uid: str | None) -> None:
        """The apiserver says no IPAddress of that name exists but the one with `keep_uid` (if any)."""
        ...

    def needs_check(self, address_key: str) -> bool:
        """Whether the lifecycle should ask the apiserver about this IPAddress name before reconciling it
        (the backend has entries it could not confirm, e.g. after taking over)."""
        ...

    def grace_remaining(self, claim: Mapping[str, Any], pool: PoolRef | None, now: float) -> float:
        """Seconds the claim's address must stay held after the claim's `deletionTimestamp` (0: release
        now). `now` is the apiserver's clock, which wrote the deletionTimestamp."""
        ...
