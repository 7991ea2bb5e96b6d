"""A mutable sorted list of disjoint integer intervals, kept in bounded chunks (the allocator's free list).

A flat Python list moves every later element on insert and delete, so updating a list of n intervals
costs O(n) memory moves (about 30 µs per 100k intervals, twice for parallel start/end lists). Here the
intervals live in chunks of at most `2 * load` entries, with a separate list of each chunk's first start
to bisect into. An update then moves at most one chunk (O(load)) and, when a chunk splits or disappears,
the chunk index (O(n / load)): with the default load of 512 both stay in the hundreds of pointers for any
realistic pool. Lookups are two bisects, O(log n). This is the layout of the `sortedcontainers` package,
specialised to point updates on intervals so that it needs no dependency.

Invariants (checked by `check()` in tests): no empty chunk; intervals sorted, disjoint and non-adjacent
across chunk boundaries; `mins[i]` is chunk i's first start; chunks hold at most `2 * load` intervals and,
except the last, at least `load // 2` (so the index stays O(n / load) long).
"""

from bisect import bisect_right
from collections.abc import Iterable, Iterator

DEFAULT_LOAD = 512


class IntervalList:
    """Sorted, disjoint, non-adjacent inclusive intervals supporting point insertion and removal."""

    __slots__ = ("_ends", "_load", "_mins", "_starts")

    def __init__(self, intervals: Iterable[tuple[int, int]] = (), load: int | None = None) -> None:
        """Take intervals already in normal form (sorted, disjoint, non-adjacent): O(n).

        `load` defaults to the module's `DEFAULT_LOAD`, read at call time (tests lower it).
        """
        if load is None:
            load = DEFAULT_LOAD
        if load < 2:
            raise ValueError("load must be at least 2")
        self._load = load
        self._starts: list[list[int]] = []
        self._ends: list[list[int]] = []
        self._mins: list[int] = []
        starts: list[int] = []
        ends: list[int] = []
        for first, last in intervals:
            starts.append(first)
            ends.append(last)
            if len(starts) == load:
                self._append_chunk(starts, ends)
                starts, ends = [], []
        if starts:
            self._append_chunk(starts, ends)

    def _append_chunk(self, starts: list[int], ends: list[int]) -> None:
        self._starts.append(starts)
        self._ends.append(ends)
        self._mins.append(starts[0])

    # -- queries -----------------------------------------------------------------------------------

    def __len__(self) -> int:
        """Number of intervals."""
        return sum(len(chunk) for chunk in self._starts)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        for starts, ends in zip(self._starts, self._ends, strict=True):
            yield from zip(starts, ends, strict=True)

    def first(self) -> tuple[int, int] | None:
        """The lowest interval, or None when empty."""
        if not self._starts:
            return None
        return self._starts[0][0], self._ends[0][0]

    def _locate(self, value: int) -> tuple[int, int] | None:
        """Position (chunk, index) of the last interval starting at or below `value`, if any."""
        c = bisect_right(self._mins, value) - 1
        if c < 0:
            return None
        return c, bisect_right(self._starts[c], value) - 1

    def __contains__(self, value: int) -> bool:
        pos = self._locate(value)
        return pos is not None and value <= self._ends[pos[0]][pos[1]]

    # -- updates -----------------------------------------------------------------------------------

    def pop_lowest(self) -> int:
        """Remove and return the lowest integer in the list; IndexError when empty."""
        if not self._starts:
            raise IndexError("pop from an empty interval list")
        value = self._starts[0][0]
        if value == self._ends[0][0]:
            self._delete(0, 0)
        else:
            self._starts[0][0] = value + 1
            self._mins[0] = value + 1
        return value

    def discard(self, value: int) -> bool:
        """Remove one integer; return whether it was present. Splits its interval when inside it."""
        pos = self._locate(value)
        if pos is None:
            return False
        c, i = pos
        first, last = self._starts[c][i], self._ends[c][i]
        if value > last:
            return False
        if first == last:
            self._delete(c, i)
        elif value == first:
            self._set_start(c, i, value + 1)
        elif value == last:
            self._ends[c][i] = value - 1
        else:
            self._ends[c][i] = value - 1
            self._insert(c, i + 1, value + 1, last)
        return True

    def add(self, value: int) -> bool:
        """Insert one integer, merging with neighbours; return False if it was already present."""
        prev = self._locate(value)
        if prev is None:
            nxt: tuple[int, int] | None = (0, 0) if self._starts else None
        else:
            c, i = prev
            if value <= self._ends[c][i]:
                return False
            if i + 1 < len(self._starts[c]):
                nxt = (c, i + 1)
            else:
                nxt = (c + 1, 0) if c + 1 < len(self._starts) else None
        join_prev = prev is not None and self._ends[prev[0]][prev[1]] == value - 1
        join_next = nxt is not None and self._starts[nxt[0]][nxt[1]] == value + 1
        if prev is not None and join_prev and nxt is not None and join_next:
            self._ends[prev[0]][prev[1]] = self._ends[nxt[0]][nxt[1]]
            self._delete(*nxt)
        elif prev is not None and join_prev:
            self._ends[prev[0]][prev[1]] = value
        elif nxt is not None and join_next:
            self._set_start(nxt[0], nxt[1], value)
        elif prev is None:
            self._insert(0, 0, value, value)
        else:
            self._insert(prev[0], prev[1] + 1, value, value)
        return True

    # -- chunk maintenance -------------------------------------------------------------------------

    def _set_start(self, c: int, i: int, value: int) -> None:
        self._starts[c][i] = value
        if i == 0:
            self._mins[c] = value

    def _insert(self, c: int, i: int, first: int, last: int) -> None:
        if not self._starts:
            self._append_chunk([first], [last])
            return
        starts, ends = self._starts[c], self._ends[c]
        starts.insert(i, first)
        ends.insert(i, last)
        if i == 0:
            self._mins[c] = first
        if len(starts) > 2 * self._load:
            self._split(c)

    def _split(self, c: int) -> None:
        starts, ends = self._starts[c], self._ends[c]
        half = len(starts) // 2
        self._starts.insert(c + 1, starts[half:])
        self._ends.insert(c + 1, ends[half:])
        self._mins.insert(c + 1, starts[half])
        del starts[half:], ends[half:]

    def _delete(self, c: int, i: int) -> None:
        starts, ends = self._starts[c], self._ends[c]
        del starts[i], ends[i]
        if not starts:
            del self._starts[c], self._ends[c], self._mins[c]
            return
        if i == 0:
            self._mins[c] = starts[0]
        if len(starts) < self._load // 2 and len(self._starts) > 1:
            self._merge(c if c + 1 < len(self._starts) else c - 1)

    def _merge(self, c: int) -> None:
        """Join chunk c+1 into chunk c, splitting again if the result is oversized."""
        self._starts[c].extend(self._starts[c + 1])
        self._ends[c].extend(self._ends[c + 1])
        del self._starts[c + 1], self._ends[c + 1], self._mins[c + 1]
        if len(self._starts[c]) > 2 * self._load:
            self._split(c)

    def check(self) -> None:
        """Assert the invariants (for tests)."""
        assert len(self._starts) == len(self._ends) == len(self._mins)
        previous_last: int | None = None
        for c, (starts, ends, low) in enumerate(zip(self._starts, self._ends, self._mins, strict=True)):
            assert starts, "empty chunk"
            assert len(starts) == len(ends) <= 2 * self._load
            assert c == len(self._starts) - 1 or len(starts) >= self._load // 2, "undersized chunk"
            assert low == starts[0]
            for first, last in zip(starts, ends, strict=True):
                assert first <= last
                assert previous_last is None or first > previous_last + 1
                previous_last = last
