"""What the webhooks need to know about the cluster, as small protocols the caller injects.

The controllers answer them from their informer caches; tests pass in-memory fakes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from incluster_ipam.api.models import AllocatedAddress, Pool


class AddressLookup(Protocol):
    """IPAddresses whose ``spec.poolRef`` is (ipam group, ``kind``, ``name``).

    ``namespace`` is the pool's namespace, or None for a global pool (then: IPAddresses in all namespaces).
    """

    async def __call__(self, kind: str, namespace: str | None, name: str) -> Sequence[AllocatedAddress]: ...


class PoolLookup(Protocol):
    """Pools (of all four kinds) that claims in ``namespace`` can reference; None means every pool.

    A superset is fine: the webhook applies the reachability rule itself (`incluster_ipam.api.overlap`).
    Use `incluster_ipam.api.models.decode_pool` to turn stored objects into `Pool`s.
    """

    async def __call__(self, namespace: str | None) -> Sequence[Pool]: ...
