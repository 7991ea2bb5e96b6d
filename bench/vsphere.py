"""vSphere benchmark (issue 15; not a test): time from VSphereMachine create to addresses in the VM's
metadata, with CAPV v1.16.1 as the client, for our provider and for upstream's Go provider (v1.1.0).

Each provider gets a fresh lab (tests/e2e/vsphere.py: a local control plane, our vCenter simulator, CAPV's
manager, the provider; all processes on loopback). In each lab: `--sequential` machines one after another
(each waits for its metadata before the next is created), then `--burst` machines created at once. Only
CAPV creates claims; the figure is what a vSphere user waits for, CAPV's own work included. Printed, never
asserted:

  .venv/bin/python bench/vsphere.py                        # both providers, 5 sequential + a burst of 20
  .venv/bin/python bench/vsphere.py --providers ours --burst 50 --json
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.e2e.vsphere import Lab, vsphere_lab  # noqa: E402
from tests.integration.faults.helpers import ProviderProcess  # noqa: E402

from incluster_ipam.api.crds import crds as our_crds  # noqa: E402
from incluster_ipam.devcluster import ControlPlane  # noqa: E402
from incluster_ipam.devcluster.controlplane import free_port  # noqa: E402
from incluster_ipam.devcluster.process import ManagedProcess, log_tail  # noqa: E402

POOL = "bench"


class Upstream:
    """Upstream's provider binary (hack/upstream/build.sh) as a process, started as bench/claims.py does."""

    def __init__(self, binary: Path, plane: ControlPlane, workdir: Path) -> None:
        self.log_path = workdir / "upstream.log"
        argv = [
            str(binary),
            f"--kubeconfig={plane.kubeconfig_path}",
            "--webhook-port=0",
            f"--health-probe-bind-address=127.0.0.1:{free_port()}",
            "--insecure-diagnostics",
            f"--diagnostics-address=127.0.0.1:{free_port()}",
        ]
        self.process = ManagedProcess("upstream", argv, self.log_path)

    async def start(self) -> None:
        await self.process.start()

    async def stop(self) -> None:
        await self.process.stop()

    def log_tail(self, lines: int = 40) -> str:
        return log_tail(self.log_path, lines)


def upstream_build() -> tuple[Path, list[dict[str, Any]], str]:
    proc = subprocess.run(
        ["bash", str(REPO / "hack" / "upstream" / "build.sh")], capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise SystemExit(f"hack/upstream/build.sh failed ({proc.returncode}): {proc.stderr[-2000:]}")
    cache = Path(proc.stdout.strip().splitlines()[-1])
    docs = [yaml.safe_load(p.read_text()) for p in sorted((cache / "crds").glob("*.yaml"))]
    return cache / "bin" / "cluster-api-ipam-provider-in-cluster", docs, cache.name.split("_", 1)[0]


def summarize(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "n": len(ordered),
        "median_s": round(statistics.median(ordered), 3),
        "min_s": round(ordered[0], 3),
        "max_s": round(ordered[-1], 3),
    }


async def watch_claims(lab: Lab, ns: str, seen: dict[str, float], bound: dict[str, float]) -> None:
    """Poll the namespace's claims every 0.1 s: when each was first seen (CAPV created it) and first seen
    bound (the provider's part), on this process's clock."""
    while True:
        now = time.monotonic()
        for name, claim in (await lab.claims(ns)).items():
            seen.setdefault(name, now)
            if ((claim.get("status") or {}).get("addressRef") or {}).get("name"):
                bound.setdefault(name, now)
        await asyncio.sleep(0.1)


async def workload(lab: Lab, sequential: int, burst: int) -> dict[str, Any]:
    ns = await lab.namespace("bench")
    await lab.pool(
        "InClusterIPPool", POOL, ns, addresses=["10.60.0.10-10.60.3.250"], prefix=22, gateway="10.60.0.1"
    )
    await lab.cluster(ns, "bench")
    devices = [[("InClusterIPPool", POOL)]]
    one: list[float] = []
    for i in range(sequential):
        name = f"s{i:03d}"
        created = await lab.machine(ns, "bench", name, devices)
        seen = await lab.wait_metadata([name], devices=1)
        one.append(seen[name][0] - created)
    names = [f"b{i:03d}" for i in range(burst)]
    claim_seen: dict[str, float] = {}
    claim_bound: dict[str, float] = {}
    watcher = asyncio.create_task(watch_claims(lab, ns, claim_seen, claim_bound))
    started = time.monotonic()
    created_at = await asyncio.gather(*(lab.machine(ns, "bench", n, devices) for n in names))
    seen = await lab.wait_metadata(names, devices=1, within=300.0)
    burst_latency = [seen[n][0] - c for n, c in zip(names, created_at, strict=True)]
    watcher.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await watcher
    burst_claims = [f"{n}-0-0" for n in names]
    to_claim = [claim_seen[c] - t for c, t in zip(burst_claims, created_at, strict=True) if c in claim_seen]
    to_bound = [claim_bound[c] - claim_seen[c] for c in burst_claims if c in claim_bound and c in claim_seen]
    to_metadata = [seen[n][0] - claim_bound[f"{n}-0-0"] for n in names if f"{n}-0-0" in claim_bound]
    addresses = [seen[n][1][0][0] for n in names]
    audit = await lab.audit()
    return {
        "audit_clean": audit["clean"],
        "audit_findings": len(audit["findings"]),
        "sequential": summarize(one) if one else None,
        "burst": summarize(burst_latency) if burst_latency else None,
        "burst_all_done_s": round(max(seen[n][0] for n in names) - started, 3) if names else None,
        "burst_unique_addresses": len(set(addresses)),
        "burst_create_to_claim": summarize(to_claim) if to_claim else None,
        "burst_claim_to_bound": summarize(to_bound) if to_bound else None,
        "burst_bound_to_metadata": summarize(to_metadata) if to_metadata else None,
    }


async def run(provider: str, sequential: int, burst: int) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix=f"bench-vsphere-{provider}-"))
    if provider == "ours":

        def start(plane: ControlPlane, logs: Path) -> Any:
            return ProviderProcess("incluster-ipam", plane.kubeconfig_path, logs)

        crds, version = list(our_crds("")), "ours"
    else:
        binary, crds, version = upstream_build()

        def start(plane: ControlPlane, logs: Path) -> Any:
            return Upstream(binary, plane, logs)

    async with vsphere_lab(workdir, crds, start) as lab:
        result = await workload(lab, sequential, burst)
    return {"provider": provider, "version": version, **result}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--providers", default="ours,upstream")
    parser.add_argument("--sequential", type=int, default=5)
    parser.add_argument("--burst", type=int, default=20)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    results = []
    for provider in args.providers.split(","):
        results.append(asyncio.run(run(provider.strip(), args.sequential, args.burst)))
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print("VSphereMachine create -> addresses in the VM metadata (CAPV v1.16.1, vcsim, this machine)")
    print(
        f"{'provider':<10} {'version':<8} {'one at a time: median / max':<30} {'burst: median / max / all'}"
    )
    for r in results:
        seq, bur = r["sequential"], r["burst"]
        one = f"{seq['median_s']:.2f} / {seq['max_s']:.2f} s (n={seq['n']})" if seq else "-"
        many = (
            f"{bur['median_s']:.2f} / {bur['max_s']:.2f} / {r['burst_all_done_s']:.2f} s (n={bur['n']})"
            if bur
            else "-"
        )
        audit = "audit clean" if r["audit_clean"] else f"audit: {r['audit_findings']} findings"
        print(f"{r['provider']:<10} {r['version']:<8} {one:<30} {many:<40} {audit}")
    print(
        "burst, split (median / max, polled every 0.1 s): "
        "create -> CAPV's claim, claim -> bound, bound -> metadata"
    )
    for r in results:
        parts = [r[k] for k in ("burst_create_to_claim", "burst_claim_to_bound", "burst_bound_to_metadata")]
        text = "   ".join(f"{p['median_s']:.2f} / {p['max_s']:.2f} s" if p else "-" for p in parts)
        print(f"{r['provider']:<10} {text}")


if __name__ == "__main__":
    main()
