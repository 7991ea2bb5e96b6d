"""Limits of our own on pool specs (finding 5 of the December review), enforced by the validating webhooks.

Validating a pool and building its allocatable set costs time linear in its entries, and the provider does
both for every admission and when it takes over; etcd's object limit alone would allow about 100,000
entries per list. Each list of a pool spec may hold at most `MAX_ENTRIES` entries: ranges and CIDRs
express large pools in one entry each, so real pools stay far below it. Upstream has no such limit.
"""

from __future__ import annotations

from incluster_ipam.api.errors import FieldError, too_many

MAX_ENTRIES = 50_000


def entry_limit_errors(lists: dict[str, tuple[str, ...] | None]) -> list[FieldError]:
    """A `Too many` error for each list (by field path) over the limit."""
    return [
        too_many(path, len(entries), MAX_ENTRIES)
        for path, entries in lists.items()
        if entries is not None and len(entries) > MAX_ENTRIES
    ]
