"""The cyclic garbage collector's thresholds for a process that reads collections in bulk.

CPython collects its youngest generation after every 700 net allocations of container objects. A list
page of 2,000 claims decodes into some 60,000 dicts and lists that all stay alive until the page is
stored, so those collections walk live objects only to promote them, and the promotions bring on the full
collections that walk the whole heap (the allocation book's tuples among it). Collecting the youngest
generation every 10,000 allocations instead cut the CPU of reading 100,000 claims and 100,000 IPAddresses
into the stores by a third, 80.6 to 55.2 us per object, as low as with the collector off (`bench/ingest.py
--n 100000`). The older generations keep their defaults, so cycles are still collected, a little later;
the extra garbage a young generation may hold is a few MB at most.
"""

from __future__ import annotations

import gc
from typing import Final

#: Net container allocations between collections of the youngest generation (CPython's default: 700).
YOUNG_THRESHOLD: Final = 10_000


def tune_for_bulk_reads() -> tuple[int, int, int]:
    """Raise the youngest generation's threshold (the older ones are kept); returns the thresholds before."""
    before = gc.get_threshold()
    _, middle, oldest = before
    gc.set_threshold(YOUNG_THRESHOLD, middle, oldest)
    return before
