"""Bars, counts, percentages and tables that fit the terminal width."""

from __future__ import annotations

import pytest

from incluster_ipam.kubectl import render
from incluster_ipam.kubectl.render import Column, bar, count_text, percent_text, table
from incluster_ipam.kubectl.usage import usages

from .objects import address, pool


@pytest.mark.parametrize("width", [3, 5, 7, 12, 22])
@pytest.mark.parametrize("fraction", [0.0, 0.001, 0.25, 0.5, 0.999, 1.0])
def test_a_bar_has_exactly_its_width(width: int, fraction: float) -> None:
    assert len(bar(fraction, width)) == width


def test_bar_cells() -> None:
    assert bar(0.0, 12) == "[░░░░░░░░░░]"
    assert bar(0.5, 12) == "[█████░░░░░]"
    assert bar(1.0, 12, ascii_only=True) == "[##########]"
    # Any use shows; only a full pool fills the bar.
    assert bar(0.0001, 12, ascii_only=True) == "[#.........]"
    assert bar(0.9999, 12, ascii_only=True) == "[#########.]"
    assert bar(0.5, 2) == ""
    assert bar(None, 12) == ""


def test_counts_fit_a_column_even_for_ipv6() -> None:
    assert count_text(0) == "0"
    assert count_text(9_999_999) == "9999999"
    assert count_text(2**64) == "2^64"
    assert count_text(2**128) == "2^128"
    assert count_text(2**64 - 1) == "1.8e19"
    assert count_text(12_345_678) == "1.2e7"


def test_percentages_never_round_to_empty_or_full() -> None:
    assert [percent_text(f) for f in (None, 0.0, 0.001, 0.18, 0.996, 1.0)] == [
        "-",
        "0%",
        "<1%",
        "18%",
        ">99%",
        "100%",
    ]


def test_tables_truncate_the_widest_truncatable_column_first() -> None:
    columns = [Column("NAME", min_width=6), Column("KIND", min_width=4), Column("N", right=True)]
    rows = [["a-rather-long-name", "SomeKind", "7"], ["b", "K", "12"]]
    assert table(columns, rows, 80) == [
        "NAME                KIND       N",
        "a-rather-long-name  SomeKind   7",
        "b                   K         12",
    ]
    assert table(columns, rows, 22) == [
        "NAME      KIND       N",
        "a-rathe…  SomeKind   7",
        "b         K         12",
    ]
    # Below every minimum the table overflows rather than dropping data.
    assert table(columns, rows, 5)[2].endswith("12")


POOLS = [
    pool(
        "InClusterIPPool", "workers", "ns1", addresses=["10.0.0.10-10.0.0.20"], prefix=24, gateway="10.0.0.1"
    ),
    pool("GlobalInClusterIPPool", "shared-v6", addresses=["2001:db8::/64"], prefix=64),
    pool("InClusterPrefixPool", "nodes", "ns1", prefixes=["2001:db8:1::/56"], allocationPrefixLength=64),
]
ADDRESSES = [
    address("ns1", "m1", "10.0.0.10", "workers"),
    address("ns1", "m2", "10.0.0.12", "workers"),
    address("ns2", "v1", "2001:DB8::5", "shared-v6", kind="GlobalInClusterIPPool", prefix=64),
    address("ns1", "p1", "2001:db8:1::", "nodes", kind="InClusterPrefixPool", prefix=64),
]


def test_pools_table_with_bars_fills_a_wide_terminal() -> None:
    lines = render.pools_text(usages(POOLS, ADDRESSES), 120, all_namespaces=True, ascii_only=True)
    width = len(lines[0])  # the header carries no bar
    assert [line[:width] for line in lines] == [
        "NAMESPACE  NAME       KIND                   FAMILY   TOTAL  USED    FREE  USE",
        "ns1        nodes      InClusterPrefixPool    IPv6       256     1     255  <1%",
        "ns1        workers    InClusterIPPool        IPv4        11     2       9  18%",
        "-          shared-v6  GlobalInClusterIPPool  IPv6    1.8e19     1  1.8e19  <1%",
    ]
    # The bar takes what is left of the 120 columns (at most MAX_BAR); any use shows one cell.
    bars = [line[width:] for line in lines[1:]]
    assert bars == ["  [#...................]", "  [####................]", "  [#...................]"]


@pytest.mark.parametrize("width", [40, 60, 72, 80, 90, 100])
def test_pools_table_fits_narrower_terminals(width: int) -> None:
    lines = render.pools_text(usages(POOLS, ADDRESSES), width, all_namespaces=False)
    if width >= 62:  # the narrowest table, short kinds and untruncated names, fits
        assert all(len(line) <= width for line in lines), lines
    assert lines[0].split()[:2] == ["NAME", "KIND"]
    assert len(lines) == 4


def test_pools_shorten_kinds_before_dropping_the_bar() -> None:
    lines = render.pools_text(usages(POOLS, ADDRESSES), 70, all_namespaces=False, ascii_only=True)
    assert all(len(line) <= 70 for line in lines)
    assert lines[3].split()[:2] == ["shared-v6", "GlobalIP"]
    assert lines[3].endswith("]")
    wide = render.pools_text(usages(POOLS, ADDRESSES), 200, all_namespaces=False)
    assert wide[3].split()[1] == "GlobalInClusterIPPool"


def test_an_unusable_pool_is_a_row_that_says_so() -> None:
    bad = [pool("InClusterIPPool", "bad", "ns1", addresses=["not-an-ip"], prefix=24)]
    lines = render.pools_text(usages(bad, []), 100, all_namespaces=False)
    assert lines[1].split() == ["bad", "InClusterIPPool", "-", "-", "0", "-", "invalid"]


def test_show_lists_ranges_free_ranges_and_holders() -> None:
    workers = usages(POOLS[:1], [*ADDRESSES[:2], address("ns1", "far", "10.0.0.99", "workers")])[0]
    assert render.show_text(workers, 100, ascii_only=True) == [
        "InClusterIPPool ns1/workers (IPv4, /24, gateway 10.0.0.1)",
        "usage:   3 used, 9 free of 11, 1 out of range  [####................] 18%",
        "ranges:  10.0.0.10-10.0.0.20",
        "free:    10.0.0.11, 10.0.0.13-10.0.0.20",
        "",
        "ADDRESS    NAMESPACE  IPADDRESS  CLAIM  CLUSTER",
        "10.0.0.10  ns1        m1         m1     -",
        "10.0.0.12  ns1        m2         m2     -",
        "10.0.0.99  ns1        far        far    -        out of range",
    ]


def test_show_wraps_long_range_lists_and_caps_them() -> None:
    scattered = pool("InClusterIPPool", "s", "ns", addresses=["10.0.0.0/24"], prefix=24)
    held = [address("ns", f"a{i}", f"10.0.0.{i}", "s") for i in range(2, 250, 2)]
    lines = render.show_text(usages([scattered], held)[0], 60)
    free = [line for line in lines if line.startswith(("free:", "         "))]
    free = [" ".join(line.split()) for line in free]
    assert len(free) > 1
    assert all(len(line) <= 60 for line in free)
    assert " ".join(free).endswith(", … and 109 more (-o json lists all)")  # 125 free, 16 shown
