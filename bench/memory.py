"""What the provider's memory at scale is made of (issue 18; a benchmark, not a test).

Without any I/O, builds what a replica holds for N bound claims in one pool: the claim informer's store,
the IPAddress informer's store (both through the provider's own projection and indexes) and the pool's
allocation book. The objects are shaped exactly as `bench/claims.py --workloads startup` prepares them (a
finalizer, the Ready condition, three managedFields entries on the claim; two owner references on the
IPAddress). Prints, for each part, the resident memory it added and the CPU per object, so a change to
the store or the book can be weighed before a 100,000-claim start-up run (which takes half an hour).

Usage:
  .venv/bin/python bench/memory.py              # N = 100,000
  .venv/bin/python bench/memory.py --n 20000
"""

from __future__ import annotations

import argparse
import gc
import time
import uuid
from collections.abc import Callable
from typing import Any

from _api import address_of
from incluster_ipam.api.constants import POOL_KINDS
from incluster_ipam.api.models import IPPoolSpec
from incluster_ipam.backend.book import PoolState
from incluster_ipam.capi.objects import (
    index_by_cluster,
    index_by_pool_of_address,
    index_by_pool_of_claim,
    project,
)
from incluster_ipam.kube.resources import object_key
from incluster_ipam.runtime.store import IndexFunc, Store

GROUP = "ipam.cluster.x-k8s.io"
NS = "bench"
NOW = "2026-12-02T14:00:00Z"
Obj = dict[str, Any]


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 1e6


def claim(i: int) -> Obj:
    name = f"claim-{i:05d}"
    managed = {
        "manager": "bench",
        "operation": "Update",
        "apiVersion": f"{GROUP}/v1beta2",
        "time": NOW,
        "fieldsType": "FieldsV1",
        "fieldsV1": {"f:metadata": {"f:finalizers": {}}, "f:spec": {"f:poolRef": {"f:name": {}}}},
    }
    return {
        "apiVersion": f"{GROUP}/v1beta2",
        "kind": "IPAddressClaim",
        "metadata": {
            "name": name,
            "namespace": NS,
            "uid": str(uuid.uuid4()),
            "resourceVersion": str(1000 + 2 * i),
            "generation": 1,
            "creationTimestamp": NOW,
            "finalizers": [f"{GROUP}/ReleaseAddress"],
            "managedFields": [managed] * 3,
        },
        "spec": {"poolRef": {"apiGroup": GROUP, "kind": "InClusterIPPool", "name": "pool-0"}},
        "status": {
            "addressRef": {"name": name},
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True",
                    "reason": "AddressAllocated",
                    "message": f"address {address_of(i)} allocated from pool InClusterIPPool {NS}/pool-0",
                    "lastTransitionTime": NOW,
                    "observedGeneration": 1,
                }
            ],
        },
    }


def ip_address(i: int) -> Obj:
    name = f"claim-{i:05d}"
    owner = {"apiVersion": f"{GROUP}/v1beta2", "kind": "IPAddressClaim", "name": name}
    pool_owner = {"apiVersion": f"{GROUP}/v1alpha2", "kind": "InClusterIPPool", "name": "pool-0"}
    return {
        "apiVersion": f"{GROUP}/v1beta2",
        "kind": "IPAddress",
        "metadata": {
            "name": name,
            "namespace": NS,
            "uid": str(uuid.uuid4()),
            "resourceVersion": str(1001 + 2 * i),
            "finalizers": [f"{GROUP}/ProtectAddress"],
            "ownerReferences": [
                {**owner, "uid": str(uuid.uuid4()), "controller": True, "blockOwnerDeletion": True},
                {**pool_owner, "uid": str(uuid.uuid4()), "controller": False, "blockOwnerDeletion": True},
            ],
        },
        "spec": {
            "address": address_of(i),
            "prefix": 14,
            "gateway": "10.0.0.1",
            "claimRef": {"name": name},
            "poolRef": {"apiGroup": GROUP, "kind": "InClusterIPPool", "name": "pool-0"},
        },
    }


def measure(label: str, n: int, build: Callable[[], Callable[[int], None]]) -> object:
    """Resident memory added and CPU per object of feeding `n` objects through `build()`'s step."""
    gc.collect()
    before = rss_mb()
    step = build()
    started = time.process_time()
    for i in range(n):
        step(i)
    cpu = time.process_time() - started
    gc.collect()
    added = rss_mb() - before
    print(f"| {label} | {added:.1f} MB | {added / n * 1e6:.0f} B | {cpu / n * 1e6:.1f} us |")
    return step


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=100_000)
    args = parser.parse_args()
    n = args.n
    held: list[object] = []  # keeps every part alive until the end, as a replica does

    def stored(
        make: Callable[[int], Obj], indexers: dict[str, IndexFunc]
    ) -> Callable[[], Callable[[int], None]]:
        """An informer store fed with `make(i)` through the provider's projection."""

        def build() -> Callable[[int], None]:
            store = Store(indexers)
            held.append(store)

            def step(i: int) -> None:
                obj = make(i)
                store.upsert(object_key(obj), project(obj), obj["metadata"]["resourceVersion"])

            return step

        return build

    def book() -> Callable[[int], None]:
        spec = IPPoolSpec(addresses=("10.0.0.0/14",), prefix=14, gateway="10.0.0.1")
        state = PoolState(f"{NS}/pool-0", POOL_KINDS[0], spec)
        held.append(state)

        def step(i: int) -> None:
            state.observe(f"{NS}/claim-{i:05d}", address_of(i), str(uuid.uuid4()), 14)

        return step

    print(f"N = {n:,}; the interpreter and imports: {rss_mb():.1f} MB resident")
    print()
    print("| part | memory | per object | CPU per object (incl. building the object) |")
    print("|---|---:|---:|---:|")
    measure(
        "claim informer store",
        n,
        stored(claim, {"pool": index_by_pool_of_claim, "cluster": index_by_cluster}),
    )
    measure("IPAddress informer store", n, stored(ip_address, {"pool": index_by_pool_of_address}))
    measure("allocation book (one pool)", n, book)
    print()
    print(f"resident in all: {rss_mb():.1f} MB")


if __name__ == "__main__":
    main()
