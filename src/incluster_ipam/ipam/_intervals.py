"""Set algebra on sorted lists of inclusive integer intervals.

An interval list here is a list of `(first, last)` pairs with `first <= last`, sorted, disjoint and
non-adjacent (`last + 1 < next first`): the normal form that `IPSet` and the allocator keep. Every
function takes and returns that normal form (except `normalize`, which produces it) in linear time.
"""

from collections.abc import Iterable, Sequence

Interval = tuple[int, int]


def normalize(pairs: Iterable[Interval]) -> list[Interval]:
    """Sort and merge overlapping or adjacent intervals: O(n log n)."""
    merged: list[Interval] = []
    for first, last in sorted(pairs):
        if merged and first <= merged[-1][1] + 1:
            if last > merged[-1][1]:
                merged[-1] = (merged[-1][0], last)
        else:
            merged.append((first, last))
    return merged


def from_sorted_points(points: Iterable[int]) -> list[Interval]:
    """Group ascending, duplicate-free integers into maximal runs: O(n)."""
    runs: list[Interval] = []
    for p in points:
        if runs and p == runs[-1][1] + 1:
            runs[-1] = (runs[-1][0], p)
        else:
            runs.append((p, p))
    return runs


def union(a: Sequence[Interval], b: Sequence[Interval]) -> list[Interval]:
    """Intervals covered by `a` or `b`: O(len(a) + len(b))."""
    out: list[Interval] = []
    i = j = 0
    while i < len(a) or j < len(b):
        if j >= len(b) or (i < len(a) and a[i][0] <= b[j][0]):
            first, last = a[i]
            i += 1
        else:
            first, last = b[j]
            j += 1
        if out and first <= out[-1][1] + 1:
            if last > out[-1][1]:
                out[-1] = (out[-1][0], last)
        else:
            out.append((first, last))
    return out


def intersection(a: Sequence[Interval], b: Sequence[Interval]) -> list[Interval]:
    """Intervals covered by both `a` and `b`: O(len(a) + len(b))."""
    out: list[Interval] = []
    i = j = 0
    while i < len(a) and j < len(b):
        first = max(a[i][0], b[j][0])
        last = min(a[i][1], b[j][1])
        if first <= last:
            out.append((first, last))
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return out


def difference(a: Sequence[Interval], b: Sequence[Interval]) -> list[Interval]:
    """Intervals covered by `a` but not by `b`: O(len(a) + len(b))."""
    out: list[Interval] = []
    j = 0
    for first, last in a:
        cur = first
        while j < len(b) and b[j][1] < cur:
            j += 1
        k = j
        while k < len(b) and b[k][0] <= last:
            if b[k][0] > cur:
                out.append((cur, b[k][0] - 1))
            cur = max(cur, b[k][1] + 1)
            if cur > last:
                break
            k += 1
        if cur <= last:
            out.append((cur, last))
        # b[k] may reach into the next interval of a, so resume there rather than after it.
        j = k
    return out


def count(pairs: Iterable[Interval]) -> int:
    """Number of integers covered (exact, unbounded)."""
    return sum(last - first + 1 for first, last in pairs)


def cidr_blocks(first: int, last: int, bits: int) -> list[tuple[int, int]]:
    """Fewest aligned blocks `(network, prefix_length)` covering `first..last` in a `bits`-wide space.

    Each step takes the largest block that starts at `first`: limited by the alignment of `first` (its
    trailing zero bits) and by how much of the range is left.
    """
    blocks: list[tuple[int, int]] = []
    while first <= last:
        align = (first & -first).bit_length() - 1 if first else bits
        fit = (last - first + 1).bit_length() - 1
        host = min(align, fit)
        blocks.append((first, bits - host))
        first += 1 << host
    return blocks
