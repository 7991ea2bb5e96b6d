"""Taking over: the leader's book, built from the caches plus a fresh list of IPAddresses read straight from
the apiserver (a previous leader may have written moments ago, after the caches last heard from it).

- The fresh list is read page by page (a few strings per IPAddress) and retried with back-off, at least the
  server's Retry-After, until a deadline: a leader that cannot list within its renew deadline must give the
  lease up (`TakeoverFailed`) so that a standby leads (finding 2 of the December review).
- Pool states are built one pool at a time off the event loop (`InClusterPools.apply`); the book follows
  the informers from the start (`live`), so nothing that changes meanwhile is missed.
- Listed entries that the cache no longer has, or has under another UID, were deleted while nobody led
  (their DELETED events came before anyone listened): they are marked for a check against the apiserver
  before they are trusted (finding 13).
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from dataclasses import dataclass

from incluster_ipam.capi.objects import (
    Obj,
    address_pool_key,
    address_text,
    key_of,
    pool_key_of,
    prefix_of,
    uid_of,
)
from incluster_ipam.kube import KubeClient, KubeError, Resource
from incluster_ipam.kube.client import LIST_PAGE_SIZE
from incluster_ipam.runtime import Backoff

from .book import PoolBook
from .incluster import InClusterPools, Seed

log = logging.getLogger(__name__)


class TakeoverFailed(Exception):
    """The fresh list could not be read in time: this replica must not keep leading."""


@dataclass(frozen=True)
class Listed:
    """One IPAddress of the fresh list."""

    key: str
    pool_key: str | None
    address: str
    uid: str | None
    prefix: int | None

    @classmethod
    def of(cls, address: Obj) -> Listed:
        return cls(
            key_of(address),
            address_pool_key(address),
            address_text(address),
            uid_of(address),
            prefix_of(address),
        )


async def fresh_list(
    client: KubeClient,
    resource: Resource,
    namespace: str | None,
    deadline: float,
    *,
    page_size: int = LIST_PAGE_SIZE,
) -> list[Listed]:
    """Every IPAddress, read now; retried until `deadline` (event-loop time), then `TakeoverFailed`."""
    loop = asyncio.get_running_loop()
    backoff = Backoff(initial=0.2, cap=2.0)
    while True:
        try:
            listed: list[Listed] = []
            async for page in client.snapshot(resource, namespace, page_size=page_size):
                if page.restarted:
                    listed = []
                listed.extend(Listed.of(item) for item in page.items)
        except KubeError as exc:
            delay = max(backoff.next(), getattr(exc, "retry_after", None) or 0.0)
            if loop.time() + delay > deadline:
                raise TakeoverFailed(f"could not list IPAddresses to take over: {exc}") from exc
            log.warning("taking over: listing IPAddresses failed (%s); retrying in %.1f s", exc, delay)
            await asyncio.sleep(delay)
        else:
            return listed


async def build_book(pools: InClusterPools, listed: list[Listed]) -> None:
    """A new book for `pools`, from the pool caches (built off the loop, one pool at a time) and `listed`;
    marks what must be checked. The book follows the informers from the start."""
    pools.book = PoolBook()
    pools.unplaced, pools.verify, pools.verdicts = {}, set(), {}
    pools.live = True
    by_pool: dict[str, list[Seed]] = defaultdict(list)
    for entry in listed:
        if entry.pool_key is not None:
            by_pool[entry.pool_key].append((entry.key, entry.address, entry.uid, entry.prefix))
    for informer in pools.pools.values():
        cache_keys = informer.keys()  # a snapshot: the cache changes while pools are built
        for cache_key in cache_keys:
            pool = informer.get(cache_key)
            key = pool_key_of(pool) if pool is not None else None
            if pool is None or key is None:
                continue
            await pools.apply(key, pool, create=True)
            state = pools.book.get(key)
            if state is not None:
                for address_key, address, uid, prefix in by_pool.pop(key, []):
                    state.observe(address_key, address, uid, prefix, ahead=True)
            pools.changed(key)
    # Entries of pools without a state (not in the pool cache yet, or invalid for now): the pool's state
    # starts from them too when it is built.
    pools.unplaced = dict(by_pool)
    for entry in listed:
        cached = pools.addresses.get(entry.key) if entry.key in pools.addresses else None
        if cached is None or uid_of(cached) != entry.uid:
            pools.verify.add(entry.key)
