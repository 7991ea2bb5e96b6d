"""What one full read of a large collection costs the control plane, by the way it is read (issue 18; a
benchmark, not a test).

A replica's start-up is one full read of the claims and one of the IPAddresses. On a fresh local control
plane with N bound claims (a finalizer and the Ready condition, as a provider leaves them), the client reads
them all, one way at a time, and the benchmark reports the wall time and kube-apiserver's plus etcd's CPU:

- `pages-500`: a paginated list, 500 per page (client-go's default, and our informers');
- `pages-2000`, `pages-5000`: the same, 2,000 or 5,000 per page;
- `rv0`: one unpaginated list at resourceVersion 0 (served from the watch cache, possibly stale);
- `watchlist`: a watch with `sendInitialEvents=true` (the apiserver streams the collection from its watch
  cache as ADDED events, then a bookmark marks the end), consistent like a list at resourceVersion "".

Usage:
  .venv/bin/python bench/listcost.py --n 20000
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _api import claims_path, create, merge_patch, run_bounded
from _proc import plane_cpu
from claims import CLAIM_FINALIZER, NS, claim_body, create_namespace
from incluster_ipam.api.crds import crds as our_crds
from incluster_ipam.devcluster import ControlPlane, ensure_assets
from writecost import POOL, ready_condition


async def prepare(http: aiohttp.ClientSession, n: int) -> None:
    async def one(i: int) -> None:
        name = f"claim-{i:05d}"
        await create(http, claims_path(NS), claim_body(name, POOL.name, [CLAIM_FINALIZER]))
        status = {"status": {"addressRef": {"name": name}, "conditions": [ready_condition(i)]}}
        await merge_patch(http, f"{claims_path(NS)}/{name}/status", status)

    await run_bounded((functools.partial(one, i) for i in range(n)), 64)


async def pages(http: aiohttp.ClientSession, limit: int) -> int:
    count, token = 0, ""
    while True:
        query = f"?limit={limit}" + (f"&continue={token}" if token else "")
        async with http.get(claims_path(NS) + query) as resp:
            assert resp.status == 200, await resp.text()
            body = orjson.loads(await resp.read())
        count += len(body["items"])
        token = body["metadata"].get("continue") or ""
        if not token:
            return count


async def rv0(http: aiohttp.ClientSession) -> int:
    async with http.get(claims_path(NS) + "?resourceVersion=0") as resp:
        assert resp.status == 200, await resp.text()
        return len(orjson.loads(await resp.read())["items"])


async def watchlist(http: aiohttp.ClientSession) -> int:
    query = "?watch=1&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true"
    count = 0
    async with http.get(claims_path(NS) + query, timeout=aiohttp.ClientTimeout(total=600)) as resp:
        assert resp.status == 200, await resp.text()
        async for line in resp.content:
            event = orjson.loads(line)
            if event["type"] == "ADDED":
                count += 1
            elif event["type"] == "BOOKMARK":
                annotations = event["object"]["metadata"].get("annotations") or {}
                if annotations.get("k8s.io/initial-events-end") == "true":
                    return count
            else:
                raise AssertionError(f"unexpected event {event['type']}")
    raise AssertionError("the watch ended before the initial events did")


async def main_async(args: argparse.Namespace) -> None:
    assets = await ensure_assets()
    async with ControlPlane(assets, extra_crds=list(our_crds(""))) as plane, plane.session() as http:
        await create_namespace(http, NS)
        started = time.monotonic()
        await prepare(http, args.n)
        print(f"N = {args.n:,} claims, prepared in {time.monotonic() - started:.0f} s", file=sys.stderr)
        ways: dict[str, Any] = {
            "pages-500": lambda: pages(http, 500),
            "pages-2000": lambda: pages(http, 2000),
            "pages-5000": lambda: pages(http, 5000),
            "rv0": lambda: rv0(http),
            "watchlist": lambda: watchlist(http),
        }
        rows = []
        chosen = {name: read for name, read in ways.items() if not args.ways or name in args.ways.split(",")}
        for round_ in range(args.rounds):
            for name, read in chosen.items():
                cpu, wall = sum(plane_cpu(plane).values()), time.monotonic()
                count = await read()
                wall, cpu = time.monotonic() - wall, sum(plane_cpu(plane).values()) - cpu
                assert count == args.n, (name, count)
                rows.append(
                    {"way": name, "round": round_, "wall_s": round(wall, 2), "plane_cpu_s": round(cpu, 2)}
                )
                print(f"| {name} | {round_} | {wall:.2f} s | {cpu:.2f} s | {cpu / args.n * 1e6:.0f} us |")
        print(json.dumps(rows))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--ways", default="", help="comma-separated subset of the ways (default: all)")
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
