"""Benchmark of the per-pool allocator (not a test): latency per operation, rebuild time, memory.

For an IPv4 /8 and an IPv6 /64 pool it measures, one call at a time:
- allocate() with 0, 10k and 100k addresses already allocated (lowest-first, so one used block);
- release() of random allocated addresses, with 10k and 100k allocated;
- allocate() and release() in a fragmented pool: 100k addresses allocated at every other address,
  so the free list holds 100k intervals (the worst shape churn can realistically produce);
- churn: release 10k random addresses out of 100k, then allocate 10k again; checks the refill comes
  back lowest-first (exactly the released addresses, ascending) and times it;
- rebuild (constructor) from 100k in-use addresses, contiguous and scattered at random;
- retained memory per allocated address (tracemalloc), contiguous and scattered.

Usage: python bench/allocator.py [--json] [--samples N] [--check]
Times are in seconds, memory in bytes. --check exits 1 if a target is missed (median allocate and
release under 20 µs at 100k allocated, rebuild of 100k under 1 s).
"""

import argparse
import functools
import gc
import json
import random
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable

from incluster_ipam.ipam.addresses import IPSet
from incluster_ipam.ipam.allocator import Allocator
from incluster_ipam.ipam.pool import IPPoolSpec, allocatable_set

POOLS = {
    "ipv4_slash8": IPPoolSpec(("10.0.0.0/8",), 8),
    "ipv6_slash64": IPPoolSpec(("fd00::/64",), 64),
}
TARGET_OP_S = 20e-6
TARGET_REBUILD_S = 1.0


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def timed(calls: list[Callable[[], object]]) -> list[float]:
    """Time each call on its own."""
    gc.collect()
    clock = time.perf_counter
    out = []
    for call in calls:
        start = clock()
        call()
        out.append(clock() - start)
    return out


def contiguous(allocatable: IPSet, n: int) -> list[int]:
    base = allocatable.lowest()
    assert base is not None
    return list(range(base, base + n))


def scattered(allocatable: IPSet, n: int, rng: random.Random) -> list[int]:
    first, last = allocatable.intervals()[0]
    return rng.sample(range(first, min(last, first + 2**40) + 1), n)


def bench_pool(allocatable: IPSet, samples: int, rng: random.Random) -> dict[str, float]:
    figures: dict[str, float] = {}

    def record(name: str, times: list[float]) -> None:
        figures[f"{name}_median_s"] = statistics.median(times)
        figures[f"{name}_p99_s"] = percentile(times, 0.99)

    for n in (0, 10_000, 100_000):
        a = Allocator(allocatable, contiguous(allocatable, n))
        record(f"allocate_at_{n}", timed([a.allocate] * samples))
        if n:
            a = Allocator(allocatable, contiguous(allocatable, n))
            victims = rng.sample(contiguous(allocatable, n), min(samples, n))
            record(f"release_at_{n}", timed([functools.partial(a.release, v) for v in victims]))

    base = allocatable.lowest()
    assert base is not None
    every_other = [base + 2 * i for i in range(100_000)]
    a = Allocator(allocatable, every_other)
    record("fragmented_allocate_at_100000", timed([a.allocate] * samples))
    a = Allocator(allocatable, every_other)
    victims = rng.sample(every_other, samples)
    record("fragmented_release_at_100000", timed([functools.partial(a.release, v) for v in victims]))

    a = Allocator(allocatable, contiguous(allocatable, 100_000))
    released = sorted(rng.sample(contiguous(allocatable, 100_000), 10_000))
    for v in released:
        a.release(v)
    refill: list[int] = []
    record("churn_refill_allocate", timed([lambda: refill.append(a.allocate())] * len(released)))
    if refill != released:
        raise AssertionError("refill after random releases was not lowest-first")

    for shape, in_use in (
        ("contiguous", contiguous(allocatable, 100_000)),
        ("scattered", scattered(allocatable, 100_000, rng)),
    ):
        gc.collect()
        start = time.perf_counter()
        Allocator(allocatable, in_use)
        figures[f"rebuild_100000_{shape}_s"] = time.perf_counter() - start
        gc.collect()
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        kept = Allocator(allocatable, in_use)
        after = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
        figures[f"memory_per_address_{shape}_bytes"] = (after - before) / len(in_use)
        del kept
    return figures


def human(name: str, value: float) -> str:
    if name.endswith("_bytes"):
        return f"{value:10.1f} B"
    if value < 1e-3:
        return f"{value * 1e6:10.2f} µs"
    return f"{value * 1e3:10.2f} ms"


def misses(results: dict[str, float]) -> list[str]:
    out = []
    for key, value in results.items():
        if (
            key.endswith(("allocate_at_100000_median_s", "release_at_100000_median_s"))
            and value > TARGET_OP_S
        ):
            out.append(key)
        if ".rebuild_" in key and value > TARGET_REBUILD_S:
            out.append(key)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    parser.add_argument("--samples", type=int, default=2000, help="timed calls per figure (default 2000)")
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    results: dict[str, float] = {}
    for pool_name, spec in POOLS.items():
        for figure, value in bench_pool(allocatable_set(spec), args.samples, rng).items():
            results[f"{pool_name}.{figure}"] = value
    missed = misses(results)
    if args.json:
        print(json.dumps(results, indent=2, sort_keys=True))
    else:
        print(f"python {sys.version.split()[0]}, {args.samples} timed calls per figure")
        for key, value in results.items():
            print(f"{key:<58}{human(key, value)}")
        print("churn refill after random releases: lowest-first, verified")
        print("targets: " + ("all met" if not missed else "MISSED " + ", ".join(missed)))
    return 1 if args.check and missed else 0


if __name__ == "__main__":
    sys.exit(main())
