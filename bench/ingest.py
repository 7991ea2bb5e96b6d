"""CPU per object of reading a collection into an informer store (issue 18; a benchmark, not a test).

No I/O: N claims and N IPAddresses, shaped as `bench/claims.py --workloads startup` prepares them
(`bench/memory.py`), are serialized into list pages as the apiserver sends them; each configuration then
decodes every page, projects and stores each object, and reads each back once (the informer's ADDED report
after a relist), as the provider does at start-up. A long-lived heap like the allocation book's (a tuple per
address) is kept alive meanwhile, since the cyclic collector walks it at every full collection.

Each configuration runs in a fresh interpreter, three times; the best run is printed.

Usage:
  .venv/bin/python bench/ingest.py                # N = 20,000 of each
  .venv/bin/python bench/ingest.py --n 100000
"""

from __future__ import annotations

import argparse
import gc
import json
import subprocess
import sys
import time
from pathlib import Path

import orjson

from incluster_ipam.capi.objects import (
    index_by_cluster,
    index_by_pool_of_address,
    index_by_pool_of_claim,
    project,
)
from incluster_ipam.kube.resources import object_key
from incluster_ipam.runtime import collector
from incluster_ipam.runtime.store import Store
from memory import claim, ip_address

CONFIGS = {
    "python default (700, 10, 10)": (700, 10, 10),
    "provider (--list-page-size default, collector tuned)": (collector.YOUNG_THRESHOLD, 10, 10),
    "collector off (reference only)": None,
}
PAGES = (500, 2000)


def one(n: int, page: int, threshold: tuple[int, int, int] | None) -> float:
    """Microseconds of CPU per object for one full read of both collections."""
    pages = []
    for make in (claim, ip_address):
        for start in range(0, n, page):
            items = [make(i) for i in range(start, min(n, start + page))]
            pages.append(orjson.dumps({"metadata": {"resourceVersion": "1"}, "items": items}))
    book = {f"ns/claim-{i:06d}": (f"10.{i >> 16}.{(i >> 8) & 255}.{i & 255}",) for i in range(n)}
    stores = {
        "IPAddressClaim": Store({"pool": index_by_pool_of_claim, "cluster": index_by_cluster}),
        "IPAddress": Store({"pool": index_by_pool_of_address}),
    }
    gc.collect()
    if threshold is None:
        gc.disable()
    else:
        gc.set_threshold(*threshold)
    started = time.process_time()
    for body in pages:
        for obj in orjson.loads(body)["items"]:
            stores[obj["kind"]].upsert(object_key(obj), project(obj), obj["metadata"]["resourceVersion"])
    for store in stores.values():
        for key in store:
            store.get(key)
    spent = time.process_time() - started
    assert len(book) == n
    return spent / (2 * n) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: one configuration, as JSON
    args = parser.parse_args()
    if args.one:
        page, threshold = json.loads(args.one)
        print(one(args.n, page, tuple(threshold) if threshold else None))
        return
    print(f"N = {args.n:,} claims and {args.n:,} IPAddresses; CPU per object, best of {args.rounds}")
    print()
    print("| collector thresholds | " + " | ".join(f"pages of {p:,}" for p in PAGES) + " |")
    print("|---|" + "---:|" * len(PAGES))
    script = str(Path(__file__).resolve())
    for label, threshold in CONFIGS.items():
        cells = []
        for page in PAGES:
            runs = [
                float(
                    subprocess.run(
                        [sys.executable, script, "--n", str(args.n), "--one", json.dumps([page, threshold])],
                        check=True,
                        capture_output=True,
                        text=True,
                    ).stdout
                )
                for _ in range(args.rounds)
            ]
            cells.append(f"{min(runs):.1f} us")
        print(f"| {label} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
