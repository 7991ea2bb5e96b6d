"""Churn soak, long form (not a test): claims created and deleted across three pools for a long while, with
every invariant checked at each checkpoint and the provider's memory sampled over time.

Starts its own control plane (etcd + kube-apiserver on 127.0.0.1) and `incluster-ipam run` as a child
process, then drives `tests.integration.faults.helpers.Churn` (plain creates, deletes of random live claims,
create-then-delete at once, delete as soon as bound) against a small namespaced IPv4 pool that runs out, a
global IPv4 pool and an IPv6 prefix pool. At every checkpoint it waits for the provider to settle and checks
the invariants (`tests.integration.faults.invariants`: no duplicate, no orphan, no out-of-range address,
every claim bound when its pool has room, pool status equal to a recount), while a watch looks for an
address held twice at any moment. A background task samples the provider's VmRSS and CPU time from
/proc/<pid>/ every `--sample-seconds`.

Usage: python bench/soak.py [--operations 20000] [--checkpoint 2000] [--live 300] [--concurrency 16]
                            [--seed N] [--json]
Exit code 0 when every checkpoint held, 1 on the first violation (its report is printed).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repo root, for tests.integration

from tests.integration.faults import invariants
from tests.integration.faults.helpers import (
    ADDRESSES,
    Churn,
    Cluster,
    ProviderProcess,
    providers,
    rss_kib,
    seeded,
)

from incluster_ipam.api.crds import crds
from incluster_ipam.devcluster import ControlPlane
from incluster_ipam.kube import KubeClient

_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


async def sample(
    provider: ProviderProcess, every: float, out: list[dict[str, float]], started: float
) -> None:
    while True:
        pid = provider.pid
        if pid is not None:
            out.append(
                {
                    "t": round(time.monotonic() - started, 1),
                    "rss_mib": round(rss_kib(pid) / 1024, 1),
                    "cpu_s": round(cpu_seconds(pid), 1),
                }
            )
        await asyncio.sleep(every)


async def soak(args: argparse.Namespace) -> dict[str, Any]:
    if args.seed is not None:
        os.environ["FAULTS_SEED"] = str(args.seed)
    seed, rng = seeded("soak")
    workdir = Path(tempfile.mkdtemp(prefix="incluster-ipam-soak-"))
    async with (
        ControlPlane(extra_crds=crds(""), workdir=workdir / "cp") as plane,
        KubeClient.from_kubeconfig(plane.kubeconfig_path) as client,
    ):
        cluster = Cluster(plane, client)
        ns = await cluster.namespace("soak")
        shared = f"soak-global-{uuid.uuid4().hex[:6]}"
        await cluster.pool("InClusterIPPool", "small", ns, addresses=["10.70.0.1-10.70.0.120"], prefix=24)
        await cluster.pool("GlobalInClusterIPPool", shared, None, addresses=["10.71.0.0/23"], prefix=23)
        await cluster.pool(
            "InClusterPrefixPool", "v6", ns, prefixes=["fd00:70::/52"], allocationPrefixLength=64
        )
        churn = Churn(
            cluster,
            ns,
            [("small", "InClusterIPPool"), (shared, "GlobalInClusterIPPool"), ("v6", "InClusterPrefixPool")],
            rng,
            target_live=args.live,
            concurrency=args.concurrency,
        )
        provider = ProviderProcess("soak-provider", plane.kubeconfig_path, workdir)
        samples: list[dict[str, float]] = []
        checkpoints: list[dict[str, Any]] = []
        started = time.monotonic()
        async with invariants.AddressMonitor(client, ADDRESSES, ns) as monitor, providers(provider):
            await cluster.claim(ns, "warm-up", "small")  # sample from the moment the provider serves
            await cluster.wait_all_bound(ns, within=60)
            sampler = asyncio.create_task(sample(provider, args.sample_seconds, samples, started))
            try:
                while churn.stats.operations < args.operations:
                    await churn.run(args.checkpoint)
                    settle_from = time.monotonic()
                    verdict = await invariants.settle(
                        client, ns, within=120, monitor=monitor, label=f"soak seed {seed}"
                    )
                    provider.check_alive()
                    assert provider.pid is not None
                    point = {
                        "operations": churn.stats.operations,
                        "t": round(time.monotonic() - started, 1),
                        "settle_s": round(time.monotonic() - settle_from, 1),
                        "claims": sum(1 for c in verdict.snapshot.claims if c["metadata"]["namespace"] == ns),
                        "rss_mib": round(rss_kib(provider.pid) / 1024, 1),
                        "cpu_s": round(cpu_seconds(provider.pid), 1),
                    }
                    checkpoints.append(point)
                    if not args.json:
                        print(
                            f"{point['operations']:>6} ops  t={point['t']:>6} s  "
                            f"claims={point['claims']:>4}  "
                            f"RSS {point['rss_mib']:>6} MiB  provider CPU {point['cpu_s']:>6} s  "
                            f"settled in {point['settle_s']} s: invariants hold",
                            flush=True,
                        )
                monitor.assert_clean()
            finally:
                sampler.cancel()
        stats = churn.stats
        return {
            "seed": seed,
            "operations": stats.operations,
            "creates": stats.creates,
            "deletes": stats.deletes,
            "deleted_at_once": stats.flash,
            "deleted_as_soon_as_bound": stats.bound_then_deleted,
            "seconds": round(time.monotonic() - started, 1),
            "ipaddress_events_watched": monitor.events,
            "violations": 0,
            "checkpoints": checkpoints,
            "rss_samples": samples,
        }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--operations", type=int, default=20000, help="claim creates + deletes in all")
    parser.add_argument(
        "--checkpoint", type=int, default=2000, help="check the invariants every N operations"
    )
    parser.add_argument("--live", type=int, default=300, help="live claims the churn hovers around")
    parser.add_argument("--concurrency", type=int, default=16, help="operations in flight")
    parser.add_argument("--sample-seconds", type=float, default=5.0, help="RSS sampling period")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    try:
        result = asyncio.run(soak(args))
    except invariants.InvariantViolation as exc:
        print(f"soak: FAILED: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        rss = [s["rss_mib"] for s in result["rss_samples"]]
        print(
            f"soak: seed {result['seed']}, {result['operations']} operations ({result['creates']} creates, "
            f"{result['deletes']} deletes) in {result['seconds']} s, "
            f"{len(result['checkpoints'])} checkpoints, "
            f"{result['ipaddress_events_watched']} IPAddress events watched; provider RSS min {min(rss)} / "
            f"max {max(rss)} / last {rss[-1]} MiB; violations: 0"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
