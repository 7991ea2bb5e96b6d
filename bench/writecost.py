"""What each kind of write costs the control plane (issue 18; a benchmark, not a test).

On a fresh local control plane (the one `bench/claims.py` uses, with our CRDs), the same neutral client
sends N writes of one kind at a time, `--concurrency` in flight, and reads kube-apiserver's and etcd's CPU
(utime+stime from /proc) around them. Every kind is a write a claim's life needs, in the exact form a
provider sends it, plus variants that show what the cost depends on:

- the form: a merge patch, a JSON patch or a server-side apply of the same claim status;
- the object's size: the same status patch on claims carrying 1 or 8 managedFields entries;
- watch fan-out: the same status patch with 0, 1 or 4 watches open on the claims (each provider replica's
  informer is one);
- a ConfigMap create, as the floor of what any write costs.

Usage:
  .venv/bin/python bench/writecost.py                   # N=2000 per kind, about 5 minutes
  .venv/bin/python bench/writecost.py --n 500 --kinds claim_create,claim_status_merge

Prints a markdown table (CPU per write, relative to a ConfigMap create) and writes
bench/results/writecost-<time>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import itertools
import json
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp

from _api import (
    GROUP,
    Obj,
    Watchers,
    address_of,
    addresses_path,
    claims_path,
    create,
    merge_patch,
    request,
    run_bounded,
)
from _proc import load_average, machine, plane_cpu
from claims import ADDRESS_FINALIZER, CLAIM_FINALIZER, NS, POOL_KIND, REPO, Pool, claim_body, create_namespace
from incluster_ipam.api.crds import crds as our_crds
from incluster_ipam.capi.contract import Contract, ReadyState
from incluster_ipam.devcluster import ControlPlane, ensure_assets

POOL = Pool("pool-0", "10.0.0.0/16", 16, "10.0.0.1")
_ROUNDS = itertools.count()  # distinct claim names for each kind that prepares its own


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def ready_condition(i: int) -> Obj:
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    message = f"address {address_of(i)} allocated from pool {POOL_KIND} {NS}/{POOL.name}"
    return Contract("v1beta2").ready_condition(ReadyState(True, "AddressAllocated", message), None, 1, now)


@dataclass
class Plane:
    plane: ControlPlane
    http: aiohttp.ClientSession
    pool_uid: str = ""
    claims: dict[str, Obj] | None = None

    def cpu(self) -> dict[str, float]:
        return plane_cpu(self.plane)


async def patch(http: aiohttp.ClientSession, path: str, body: Obj, content_type: str) -> Obj:
    return await request(http, "PATCH", path, body, content_type=content_type)


async def prepare_claims(p: Plane, prefix: str, n: int, concurrency: int, managers: int = 1) -> list[Obj]:
    """`n` claims, each written by `managers` field managers (each adds one managedFields entry)."""
    made: list[Obj] = [{} for _ in range(n)]
    path = claims_path(NS)

    async def one(i: int) -> None:
        claim = await create(p.http, path, claim_body(f"{prefix}-{i:05d}", POOL.name))
        for m in range(1, managers):
            label = {"metadata": {"labels": {f"bench.example.com/m{m}": "x"}}}
            claim = await request(
                p.http,
                "PATCH",
                f"{path}/{prefix}-{i:05d}?fieldManager=bench-m{m}",
                label,
                content_type="application/merge-patch+json",
            )
        made[i] = claim

    await run_bounded((functools.partial(one, i) for i in range(n)), concurrency)
    return made


Kind = Callable[[Plane, int, int], Awaitable[Callable[[int], Awaitable[Any]]]]


async def configmap_create(p: Plane, n: int, c: int) -> Callable[[int], Awaitable[Any]]:
    await create_namespace(p.http, "cm")

    async def one(i: int) -> None:
        body = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": f"cm-{i:05d}"},
            "data": {"k": "v"},
        }
        await create(p.http, "/api/v1/namespaces/cm/configmaps", body)

    return one


async def claim_create(p: Plane, n: int, c: int) -> Callable[[int], Awaitable[Any]]:
    async def one(i: int) -> None:
        await create(p.http, claims_path(NS), claim_body(f"create-{i:05d}", POOL.name))

    return one


async def claim_finalizer_merge(p: Plane, n: int, c: int) -> Callable[[int], Awaitable[Any]]:
    claims = await prepare_claims(p, "fin", n, c)

    async def one(i: int) -> None:
        version = claims[i]["metadata"]["resourceVersion"]
        body = {"metadata": {"finalizers": [CLAIM_FINALIZER], "resourceVersion": version}}
        await merge_patch(p.http, f"{claims_path(NS)}/fin-{i:05d}", body)

    return one


def address_kind(shape: str) -> Kind:
    """An IPAddress create: as a provider keeping the contract sends it (owner references to claim and pool,
    the ProtectAddress finalizer, the gateway), or bare (spec only)."""

    async def make(p: Plane, n: int, c: int) -> Callable[[int], Awaitable[Any]]:
        return await address_create(p, n, c, bare=shape == "bare")

    return make


async def address_create(p: Plane, n: int, c: int, *, bare: bool = False) -> Callable[[int], Awaitable[Any]]:
    prefix = f"addr-{next(_ROUNDS)}"
    claims = await prepare_claims(p, prefix, n, c)

    async def one(i: int) -> None:
        name = f"{prefix}-{i:05d}"
        owners = [
            {
                "apiVersion": f"{GROUP}/v1beta2",
                "kind": "IPAddressClaim",
                "name": name,
                "uid": claims[i]["metadata"]["uid"],
                "controller": True,
                "blockOwnerDeletion": True,
            },
            {
                "apiVersion": f"{GROUP}/v1alpha2",
                "kind": POOL_KIND,
                "name": POOL.name,
                "uid": p.pool_uid,
                "controller": False,
                "blockOwnerDeletion": True,
            },
        ]
        body: Obj = {
            "apiVersion": f"{GROUP}/v1beta2",
            "kind": "IPAddress",
            "metadata": {
                "name": name,
                "namespace": NS,
                "finalizers": [ADDRESS_FINALIZER],
                "ownerReferences": owners,
            },
            "spec": {
                "address": address_of(i),
                "prefix": POOL.prefix,
                "gateway": POOL.gateway,
                "claimRef": {"name": name},
                "poolRef": {"apiGroup": GROUP, "kind": POOL_KIND, "name": POOL.name},
            },
        }
        if bare:
            body["metadata"] = {"name": name, "namespace": NS}
            del body["spec"]["gateway"]
        await create(p.http, addresses_path(NS), body)

    return one


def status_kind(form: str, managers: int = 1, condition: bool = True) -> Kind:
    """The claim's status (addressRef and the Ready condition, or `condition=False`: addressRef only) in
    one of three forms."""

    async def make(p: Plane, n: int, c: int) -> Callable[[int], Awaitable[Any]]:
        prefix = f"st-{form}-{managers}-{next(_ROUNDS)}"
        claims = await prepare_claims(p, prefix, n, c, managers)

        async def one(i: int) -> None:
            name = f"{prefix}-{i:05d}"
            status: Obj = {"addressRef": {"name": name}}
            if condition:
                status["conditions"] = [ready_condition(i)]
            path = f"{claims_path(NS)}/{name}/status"
            if form == "merge":
                version = claims[i]["metadata"]["resourceVersion"]
                body: Any = {"metadata": {"resourceVersion": version}, "status": status}
                await patch(p.http, path, body, "application/merge-patch+json")
            elif form == "json":
                body = [{"op": "add", "path": "/status", "value": status}]
                await patch(p.http, path, body, "application/json-patch+json")
            else:
                body = {
                    "apiVersion": f"{GROUP}/v1beta2",
                    "kind": "IPAddressClaim",
                    "metadata": {"name": name, "namespace": NS},
                    "status": status,
                }
                await patch(
                    p.http, f"{path}?fieldManager=bench&force=true", body, "application/apply-patch+yaml"
                )

        return one

    return make


async def event_create(p: Plane, n: int, c: int) -> Callable[[int], Awaitable[Any]]:
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    async def one(i: int) -> None:
        body = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": f"claim-{i:05d}.bench", "namespace": NS},
            "involvedObject": {
                "apiVersion": f"{GROUP}/v1beta2",
                "kind": "IPAddressClaim",
                "name": f"claim-{i:05d}",
                "namespace": NS,
            },
            "reason": "AddressAllocated",
            "message": f"address {address_of(i)} allocated from pool {POOL_KIND} {NS}/{POOL.name}",
            "type": "Normal",
            "source": {"component": "incluster-ipam"},
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        await create(p.http, f"/api/v1/namespaces/{NS}/events", body)

    return one


async def pool_status_merge(p: Plane, n: int, c: int) -> Callable[[int], Awaitable[Any]]:
    path = f"/apis/{GROUP}/v1alpha2/namespaces/{NS}/inclusterippools/{POOL.name}/status"

    async def one(i: int) -> None:
        counts = {"total": 65533, "used": i + 1, "free": 65532 - i, "outOfRange": 0}
        await patch(p.http, path, {"status": {"ipAddresses": counts}}, "application/merge-patch+json")

    return one


#: name -> (how to make the writes, watches open on the claims meanwhile)
KINDS: dict[str, tuple[Kind, int]] = {
    "configmap_create": (configmap_create, 0),
    "claim_create": (claim_create, 0),
    "claim_finalizer_merge": (claim_finalizer_merge, 0),
    "address_create": (address_kind("contract"), 0),
    "address_create_bare": (address_kind("bare"), 0),
    "claim_status_merge": (status_kind("merge"), 0),
    "claim_status_merge_no_condition": (status_kind("merge", condition=False), 0),
    "claim_status_json": (status_kind("json"), 0),
    "claim_status_apply": (status_kind("apply"), 0),
    "claim_status_merge_8_managers": (status_kind("merge", 8), 0),
    "claim_status_merge_1_watch": (status_kind("merge"), 1),
    "claim_status_merge_4_watches": (status_kind("merge"), 4),
    "event_create": (event_create, 0),
    "pool_status_merge": (pool_status_merge, 0),
}


async def measure(p: Plane, name: str, n: int, concurrency: int) -> dict[str, Any]:
    make, watches = KINDS[name]
    one = await make(p, n, concurrency)
    # The pool status is one object: its patches are serialised (each would otherwise conflict).
    c = 1 if name == "pool_status_merge" else concurrency
    async with Watchers(p.http, claims_path(NS), watches) as watchers:
        await asyncio.sleep(1.0)  # let the preparation's writes settle
        before = p.cpu()
        start = time.monotonic()
        await run_bounded((functools.partial(one, i) for i in range(n)), c)
        elapsed = time.monotonic() - start
        await asyncio.sleep(1.0)
        after = p.cpu()
    spent = {k: after[k] - before.get(k, 0.0) for k in after}
    return {
        "n": n,
        "concurrency": c,
        "watches": watches,
        "watch_lines": watchers.events,
        "seconds": round(elapsed, 2),
        "writes_per_s": round(n / elapsed, 1),
        "apiserver_ms": round(1000 * spent.get("kube-apiserver", 0.0) / n, 3),
        "etcd_ms": round(1000 * spent.get("etcd", 0.0) / n, 3),
    }


def table(results: dict[str, dict[str, Any]]) -> str:
    floor = results.get("configmap_create", {})
    base = (floor.get("apiserver_ms") or 0) + (floor.get("etcd_ms") or 0)
    rows = [
        "| write | in flight | watches | writes/s | kube-apiserver CPU per write | etcd CPU per write "
        "| both, vs a ConfigMap create |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in results.items():
        both = r["apiserver_ms"] + r["etcd_ms"]
        ratio = f"{both / base:.1f}x" if base else "–"
        rows.append(
            f"| {name} | {r['concurrency']} | {r['watches']} | {r['writes_per_s']:,.0f} | "
            f"{r['apiserver_ms']:.2f} ms | {r['etcd_ms']:.2f} ms | {ratio} |"
        )
    return "\n".join(rows)


async def main_async(args: argparse.Namespace) -> int:
    assets = await ensure_assets()
    report: dict[str, Any] = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "load_before": load_average(),
        "results": {},
    }
    async with ControlPlane(assets, extra_crds=list(our_crds(""))) as plane, plane.session() as http:
        p = Plane(plane, http)
        await create_namespace(http, NS)
        created = await create(http, f"/apis/{GROUP}/v1alpha2/namespaces/{NS}/inclusterippools", POOL.body())
        p.pool_uid = created["metadata"]["uid"]
        await run_bounded(
            [functools.partial(request, http, "GET", "/version")] * args.concurrency, args.concurrency
        )
        for name in args.kinds:
            log(f"{name}: {args.n} writes")
            report["results"][name] = await measure(p, name, args.n, args.concurrency)
            log(f"  {json.dumps(report['results'][name])}")
    report["finished"] = datetime.now(UTC).isoformat(timespec="seconds")
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"writecost-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(report, indent=2))
    print(table(report["results"]))
    print(f"\nresults: {path}", file=sys.stderr)
    return 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=2000, help="writes per kind")
    parser.add_argument("--concurrency", type=int, default=64, help="requests in flight")
    parser.add_argument("--kinds", default=",".join(KINDS), help=f"comma-separated of {', '.join(KINDS)}")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    args = parser.parse_args(argv)
    args.kinds = [k for k in args.kinds.split(",") if k]
    unknown = [k for k in args.kinds if k not in KINDS]
    if unknown:
        parser.error(f"unknown kinds: {', '.join(unknown)}")
    return args


def main() -> int:
    return asyncio.run(main_async(parse_args()))


if __name__ == "__main__":
    sys.exit(main())
