"""Text and JSON for `kubectl ipam`: tables that fit the terminal, utilisation bars, compact counts.

Pure: data in, strings out. The width comes from the caller (`terminal_width`: `COLUMNS`, else the
terminal, else 120 when piped). Text is for people; `-o json` (exact counts, every range) is for scripts.
"""

from __future__ import annotations

import json
import shutil
import textwrap
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from .usage import PoolUsage
from .who import WhoResult

FALLBACK_WIDTH = 120
#: The bar's cells, brackets included, at most (wider bars say nothing more).
MAX_BAR = 22
#: Narrower than this, the bar is left out and only the percentage stays.
MIN_BAR = 7
#: Ranges printed by `show` before "... and N more" (JSON lists all).
MAX_RANGES = 16
ELLIPSIS = "…"


def terminal_width(fallback: int = FALLBACK_WIDTH) -> int:
    """`COLUMNS` when set, else the terminal's width, else `fallback` (output to a pipe or file)."""
    return max(20, shutil.get_terminal_size((fallback, 24)).columns)


# ---- numbers and bars ----------------------------------------------------------------------------------


def count_text(n: int) -> str:
    """A count that fits a column: exact up to 7 digits, powers of two as 2^k, else 2 significant digits
    ("1.8e19"): IPv6 pools count up to 2**128."""
    if n < 10_000_000:
        return str(n)
    if n & (n - 1) == 0:
        return f"2^{n.bit_length() - 1}"
    mantissa, _, exponent = f"{n:.1e}".partition("e")
    return f"{mantissa}e{int(exponent)}"


def percent_text(fraction: float | None) -> str:
    """0%..100%; "<1%" for a little, ">99%" for nearly full (100% only when full), "-" when unknown."""
    if fraction is None:
        return "-"
    if fraction <= 0:
        return "0%"
    if fraction >= 1:
        return "100%"
    value = round(fraction * 100)
    if value < 1:
        return "<1%"
    if value > 99:
        return ">99%"
    return f"{value}%"


def bar(fraction: float | None, width: int, *, ascii_only: bool = False) -> str:
    """A `width`-cell bar, brackets included. Any use shows at least one filled cell, and only a full pool
    fills them all. Empty string when `width` < 3 or the fraction is unknown."""
    inner = width - 2
    if inner < 1 or fraction is None:
        return ""
    fraction = min(max(fraction, 0.0), 1.0)
    filled = round(fraction * inner)
    if fraction > 0:
        filled = max(filled, 1)
    if fraction < 1:
        filled = min(filled, inner - 1)
    full, empty = ("#", ".") if ascii_only else ("█", "░")
    return f"[{full * filled}{empty * (inner - filled)}]"


# ---- tables ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Column:
    header: str
    right: bool = False  # numbers are right-aligned
    min_width: int = 0  # may be truncated down to this (0: never truncated)


def _truncate(text: str, width: int) -> str:
    return text if len(text) <= width else text[: max(width - 1, 0)] + ELLIPSIS


def fit_widths(
    columns: Sequence[Column], rows: Sequence[Sequence[str]], width: int, gap: int = 2
) -> list[int]:
    """Column widths: natural widths when they fit in `width`; else truncatable columns (min_width > 0)
    give up room, the widest first, down to their minimum (the table may still overflow then)."""
    widths = [max([len(c.header), *(len(r[i]) for r in rows)]) for i, c in enumerate(columns)]
    excess = sum(widths) + gap * (len(columns) - 1) - width
    while excess > 0:
        candidates = [i for i, c in enumerate(columns) if c.min_width and widths[i] > c.min_width]
        if not candidates:
            break
        widest = max(candidates, key=lambda i: widths[i])
        widths[widest] -= 1
        excess -= 1
    return widths


def table(columns: Sequence[Column], rows: Sequence[Sequence[str]], width: int, gap: int = 2) -> list[str]:
    """Header and rows, aligned, fitted to `width` (see `fit_widths`); trailing blanks stripped."""
    widths = fit_widths(columns, rows, width, gap)
    lines = []
    for cells in [[c.header for c in columns], *rows]:
        parts = []
        for column, cell, w in zip(columns, cells, widths, strict=True):
            text = _truncate(cell, w)
            parts.append(text.rjust(w) if column.right else text.ljust(w))
        lines.append((" " * gap).join(parts).rstrip())
    return lines


# ---- pools -------------------------------------------------------------------------------------------------


def pool_name(usage: PoolUsage) -> str:
    return (
        f"{usage.kind.kind} {usage.namespace}/{usage.name}"
        if usage.namespace
        else f"{usage.kind.kind} {usage.name}"
    )


def short_kind(kind: str) -> str:
    """A pool kind without the words every one of them has: "GlobalInClusterIPPool" is "GlobalIP"."""
    return kind.replace("InCluster", "").removesuffix("Pool") or kind


def _natural_width(columns: Sequence[Column], rows: Sequence[Sequence[str]]) -> int:
    return sum(fit_widths(columns, rows, 10**9)) + 2 * (len(columns) - 1)


def pools_text(
    pools: Sequence[PoolUsage], width: int, *, all_namespaces: bool, ascii_only: bool = False
) -> list[str]:
    """`kubectl ipam pools`: one row per pool, with a bar sized to the room the other columns leave. When
    the table is too wide, kinds are shortened ("GlobalIP"), then names truncated ("…"), then the bar goes."""
    columns = _pool_columns(all_namespaces)
    rows = _pool_rows(pools, all_namespaces, str)
    if _natural_width(columns, rows) + 2 + MIN_BAR > width:
        rows = _pool_rows(pools, all_namespaces, short_kind)
    room = min(MAX_BAR, width - _natural_width(columns, rows) - 2)
    if room < MIN_BAR:
        return table(columns, rows, width)
    lines = table(columns, rows, width)  # fits: the last column is right-aligned, so rows are as wide
    bars = [bar(usage.utilisation, room, ascii_only=ascii_only) for usage in pools]
    return [lines[0], *(f"{line}  {meter}".rstrip() for line, meter in zip(lines[1:], bars, strict=True))]


def _pool_columns(all_namespaces: bool) -> list[Column]:
    columns = [Column("NAMESPACE", min_width=9)] if all_namespaces else []
    return [
        *columns,
        Column("NAME", min_width=8),
        Column("KIND", min_width=8),
        Column("FAMILY"),
        Column("TOTAL", right=True),
        Column("USED", right=True),
        Column("FREE", right=True),
        Column("USE", right=True),
    ]


def _pool_rows(
    pools: Sequence[PoolUsage], all_namespaces: bool, kind_text: Callable[[str], str]
) -> list[list[str]]:
    rows = []
    for usage in pools:
        row = [usage.namespace or "-"] if all_namespaces else []
        if usage.error:
            row += [usage.name, kind_text(usage.kind.kind), "-", "-", count_text(usage.used), "-", "invalid"]
        else:
            row += [
                usage.name,
                kind_text(usage.kind.kind),
                usage.family,
                count_text(usage.total),
                count_text(usage.used),
                count_text(usage.free),
                percent_text(usage.utilisation),
            ]
        rows.append(row)
    return rows


def _wrapped(label: str, items: Sequence[str], width: int, limit: int = MAX_RANGES) -> list[str]:
    shown = list(items[:limit])
    if len(items) > limit:
        shown.append(f"{ELLIPSIS} and {len(items) - limit} more (-o json lists all)")
    text = ", ".join(shown) if shown else "none"
    indent = " " * len(label)
    return textwrap.wrap(
        text,
        width=max(width, len(label) + 20),
        initial_indent=label,
        subsequent_indent=indent,
        break_long_words=False,
        break_on_hyphens=False,
    )


def show_text(usage: PoolUsage, width: int, *, ascii_only: bool = False) -> list[str]:
    """`kubectl ipam show POOL`: counts, ranges, free ranges, then who holds which address."""
    if usage.error:
        head = [f"{pool_name(usage)}: the spec gives no allocatable set: {usage.error}"]
    else:
        facts = [usage.family]
        if usage.prefix is not None:
            facts.append(
                f"/{usage.prefix}" if usage.kind.family.value == "ip" else f"allocates /{usage.prefix}"
            )
        if usage.gateway:
            facts.append(f"gateway {usage.gateway}")
        summary = f"{count_text(usage.used)} used, {count_text(usage.free)} free of {count_text(usage.total)}"
        if usage.out_of_range:
            summary += f", {count_text(usage.out_of_range)} out of range"
        meter = bar(usage.utilisation, MAX_BAR, ascii_only=ascii_only)
        head = [
            f"{pool_name(usage)} ({', '.join(facts)})",
            f"usage:   {summary}  {meter} {percent_text(usage.utilisation)}".rstrip(),
            *_wrapped("ranges:  ", usage.ranges, width),
            *_wrapped("free:    ", usage.free_ranges, width),
        ]
    if not usage.holdings:
        return [*head, "", "no IPAddresses"]
    columns = [
        Column("ADDRESS"),
        Column("NAMESPACE", min_width=6),
        Column("IPADDRESS", min_width=8),
        Column("CLAIM", min_width=8),
        Column("CLUSTER", min_width=6),
        Column(""),
    ]
    rows = [
        [
            h.address,
            h.namespace,
            h.name,
            h.claim or "-",
            h.cluster or "-",
            "" if h.in_range else "out of range",
        ]
        for h in usage.holdings
    ]
    return [*head, "", *table(columns, rows, width)]


# ---- who ---------------------------------------------------------------------------------------------------


def who_text(result: WhoResult) -> list[str]:
    """`kubectl ipam who ADDRESS`: each holder, its claim, the owner chain, the Machine and the Cluster."""
    lines: list[str] = []
    if not result.holders:
        where = (
            f"; it is free in {', '.join(result.allocatable_in)}"
            if result.allocatable_in
            else "; it is in no pool's allocatable range"
        )
        lines.append(f"no IPAddress holds {result.address}{where}")
    for i, holder in enumerate(result.holders):
        if i:
            lines.append("")
        lines.append(f"{holder.address} is held by {holder.ip_address} of {holder.pool}")
        lines.append(f"  claim:     {holder.claim if holder.claim else '- (the IPAddress names no claim)'}")
        lines += [f"  owned by:  {owner}" for owner in holder.owners]
        if holder.machine is None:
            lines.append("  machine:   - (no Machine among the owners)")
        else:
            machine = holder.machine  # the last owner: its details are printed just above
            brief = replace(machine, detail="") if holder.owners and machine == holder.owners[-1] else machine
            lines.append(f"  machine:   {brief}")
        lines.append(f"  cluster:   {holder.cluster if holder.cluster else '- (no Cluster is named)'}")
    lines += [f"note: {note}" for note in result.notes]
    return lines


def to_json(body: Any) -> str:
    return json.dumps(body, indent=2)
