"""End-to-end claim benchmark (issue 7; not a test): our provider against upstream's Go provider.

Each (provider, workload) runs on a FRESH local control plane (etcd + kube-apiserver, Cluster API v1.14.2
CRDs, and the provider's own pool CRDs: ours from `crds("")`, upstream's from its Go module), with the
provider as a subprocess (webhooks off, no leader election, default client settings). The benchmark client
is raw aiohttp with a bounded number of requests in flight. Measured per workload:

- wall time from the first claim create to the last binding, claims/s, and claim-to-bound latency (from
  the moment the create request is sent to the moment a watch sees `status.addressRef.name`), p50/p99/max;
- API writes per claim, from the apiserver's `apiserver_request_total` (diffed around the workload; writes
  on claims, IPAddresses, pools and Events, without the benchmark's own claim creates), and reads;
- the provider's CPU seconds (utime+stime) and peak RSS (VmHWM), plus kube-apiserver and etcd CPU;
- a duplicate check: `incluster-ipam audit` (when available) and our own scan of every IPAddress.

Workloads: `one_pool` (N claims, one IPv4 /16 pool), `ten_pools` (N claims over 10 /16 pools), `ipv6`
(N claims, one fd00::/48 pool), `steady` (an open-loop offered load of R claims/s for D seconds), and
`startup` (E pre-existing bound claims with their IPAddresses, created directly as the provider would have
left them; time from provider start to a NEW claim being bound, and RSS). The ceiling: on the `one_pool`
control plane, before the provider starts, the same client creates N ConfigMaps as fast as it can; that
write rate W bounds claims/s at W / 4 (the client's create plus the provider's minimum of three writes).
It then plays an ideal provider itself (the four writes of each claim, zero think time, on claims of a
foreign pool kind that neither provider touches): the rate a perfect provider could reach on this plane.

Usage:
  .venv/bin/python bench/claims.py --quick          # N=500, one pool, both providers (< 10 min)
  .venv/bin/python bench/claims.py                  # full: every workload, N=2000, both providers
  .venv/bin/python bench/claims.py --providers ours --workloads one_pool --profile   # py-spy profile

Writes bench/results/claims-<mode>-<time>.json and .md (the markdown table) and prints the table; a quick or
full run also puts the table into docs/performance.md, between the markers of its mode (`--no-docs` to skip).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import functools
import json
import os
import shlex
import signal
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from _api import (
    GROUP,
    READ_VERBS,
    WRITE_VERBS,
    ApiFailure,
    BindingWatch,
    Obj,
    RequestCounts,
    Watchers,
    address_of,
    addresses_path,
    claims_path,
    create,
    list_all,
    merge_patch,
    pools_path,
    request,
    run_bounded,
)
from _proc import PeakSampler, children, load_average, machine, sample, system_busy_s
from _profile import summarise
from incluster_ipam import __version__
from incluster_ipam.api.crds import crds as our_crds
from incluster_ipam.capi.contract import Contract, ReadyState
from incluster_ipam.devcluster import ControlPlane, ensure_assets
from incluster_ipam.devcluster.assets import Assets
from incluster_ipam.devcluster.controlplane import free_port
from incluster_ipam.devcluster.process import ManagedProcess, log_tail

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
NS = "bench"
POOL_KIND = "InClusterIPPool"
ADDRESS_FINALIZER = "ipam.cluster.x-k8s.io/ProtectAddress"
CLAIM_FINALIZER = "ipam.cluster.x-k8s.io/ReleaseAddress"
#: Resources the provider writes; writes elsewhere (the apiserver's own Leases, ...) are not its cost.
PROVIDER_RESOURCES = frozenset(
    {
        "ipaddressclaims",
        "ipaddresses",
        "inclusterippools",
        "globalinclusterippools",
        "inclusterprefixpools",
        "globalinclusterprefixpools",
        "events",
    }
)
#: Writes a claim needs at the least: the client's create, then the provider's finalizer patch,
#: IPAddress create and status patch.
MIN_WRITES_PER_CLAIM = 4
WORKLOADS = ("one_pool", "ten_pools", "ipv6", "steady", "startup")


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# ---- providers ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProviderDef:
    name: str
    version: str
    crds: list[Obj]
    argv: Callable[[Path, int, int], list[str]]
    python: bool
    extra: tuple[str, ...] = ()
    binary: Path | None = None


def ours() -> ProviderDef:
    def argv(kubeconfig: Path, health: int, _metrics: int) -> list[str]:
        return [
            str(BIN / "incluster-ipam"),
            "run",
            "--kubeconfig",
            str(kubeconfig),
            "--webhook-port",
            "0",
            "--health-probe-bind-address",
            f"127.0.0.1:{health}",
            "--metrics-bind-address",
            "0",
            "--diagnostics-address",
            "0",
        ]

    return ProviderDef("ours", __version__, list(our_crds("")), argv, python=True)


def upstream(profile: bool = False) -> ProviderDef:
    """Build (or reuse) upstream's binary and CRDs with hack/upstream/build.sh; raises with the reason.
    With `profile`, its diagnostics endpoint is served as upstream ships it (HTTPS, authenticated), which
    is where its pprof handlers are."""
    proc = subprocess.run(
        ["bash", str(REPO / "hack" / "upstream" / "build.sh")], capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise RuntimeError(f"hack/upstream/build.sh failed ({proc.returncode}): {proc.stderr[-2000:]}")
    cache = Path(proc.stdout.strip().splitlines()[-1])
    binary = cache / "bin" / "cluster-api-ipam-provider-in-cluster"
    docs = [yaml.safe_load(p.read_text()) for p in sorted((cache / "crds").glob("*.yaml"))]
    version = cache.name.split("_", 1)[0]

    def argv(kubeconfig: Path, health: int, metrics: int) -> list[str]:
        return [
            str(binary),
            f"--kubeconfig={kubeconfig}",
            "--webhook-port=0",
            f"--health-probe-bind-address=127.0.0.1:{health}",
            *([] if profile else ["--insecure-diagnostics"]),
            f"--diagnostics-address=127.0.0.1:{metrics}",
        ]

    return ProviderDef("upstream", version, docs, argv, python=False, binary=binary)


# ---- objects -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Pool:
    name: str
    cidr: str
    prefix: int
    gateway: str

    def body(self) -> Obj:
        return {
            "apiVersion": f"{GROUP}/v1alpha2",
            "kind": POOL_KIND,
            "metadata": {"name": self.name, "namespace": NS},
            "spec": {"addresses": [self.cidr], "prefix": self.prefix, "gateway": self.gateway},
        }


def pools_for(workload: str, existing: int = 0) -> list[Pool]:
    """The pools of a workload. A start-up over more existing claims than a /16 holds (65,533 after the
    network, gateway and broadcast addresses) gets a /14 (10.0.0.0-10.3.255.255), so that the new claim
    finds a free address after them."""
    if workload == "ten_pools":
        return [Pool(f"pool-{i}", f"10.{i + 1}.0.0/16", 16, f"10.{i + 1}.0.1") for i in range(10)]
    if workload == "ipv6":
        return [Pool("pool-v6", "fd00::/48", 48, "fd00::1")]
    if workload == "startup" and existing + 1 > 65_533:
        return [Pool("pool-0", "10.0.0.0/14", 14, "10.0.0.1")]
    return [Pool("pool-0", "10.0.0.0/16", 16, "10.0.0.1")]


def claim_body(name: str, pool: str, finalizers: list[str] | None = None) -> Obj:
    metadata: Obj = {"name": name, "namespace": NS}
    if finalizers:
        metadata["finalizers"] = finalizers
    return {
        "apiVersion": f"{GROUP}/v1beta2",
        "kind": "IPAddressClaim",
        "metadata": metadata,
        "spec": {"poolRef": {"apiGroup": GROUP, "kind": POOL_KIND, "name": pool}},
    }


# ---- one stage: a fresh control plane and a provider process -----------------------------------------------


@dataclass
class Stage:
    plane: ControlPlane
    http: aiohttp.ClientSession
    provider: ProviderDef
    log_path: Path
    proc: ManagedProcess | None = None
    health_port: int = 0
    metrics_port: int = 0
    started_at: float = 0.0
    pool_uids: dict[str, str] = field(default_factory=dict)

    @property
    def pid(self) -> int:
        assert self.proc is not None
        assert self.proc.pid is not None
        return self.proc.pid

    async def start_provider(self) -> None:
        self.health_port, self.metrics_port = free_port(), free_port()
        argv = [
            *self.provider.argv(self.plane.kubeconfig_path, self.health_port, self.metrics_port),
            *self.provider.extra,
        ]
        self.proc = ManagedProcess(self.provider.name, argv, self.log_path)
        self.started_at = time.monotonic()
        await self.proc.start()

    async def wait_ready(self, pools: list[Pool], limit: float = 120.0) -> float:
        """Seconds from start until /readyz answers and every pool has a status written by the provider."""
        assert self.proc is not None
        deadline = time.monotonic() + limit
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as probe:
            while True:
                self.proc.check_alive()
                with contextlib.suppress(aiohttp.ClientError, TimeoutError, OSError):
                    async with probe.get(f"http://127.0.0.1:{self.health_port}/readyz") as resp:
                        if resp.status == 200:
                            break
                if time.monotonic() > deadline:
                    raise self.proc.failure("did not become ready")
                await asyncio.sleep(0.05)
        while pools:
            body = await request(self.http, "GET", pools_path(NS))
            with_status = {
                p["metadata"]["name"]
                for p in body.get("items") or []
                if (p.get("status") or {}).get("ipAddresses")
            }
            if {p.name for p in pools} <= with_status:
                break
            if time.monotonic() > deadline:
                missing = sorted({p.name for p in pools} - with_status)
                log(f"warning: pools without a status after {limit:.0f} s: {missing}")
                break
            await asyncio.sleep(0.05)
        return time.monotonic() - self.started_at

    async def stop_provider(self) -> None:
        if self.proc is not None:
            await self.proc.stop()


async def create_pools(http: aiohttp.ClientSession, pools: list[Pool]) -> dict[str, str]:
    uids = {}
    for pool in pools:
        created = await create(http, pools_path(NS), pool.body())
        uids[pool.name] = created["metadata"]["uid"]
    return uids


async def create_namespace(http: aiohttp.ClientSession, name: str) -> None:
    await create(
        http, "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
    )


# ---- measurement around a workload -------------------------------------------------------------------------


@dataclass
class Meter:
    """Request counters, CPU and memory around a workload."""

    stage: Stage
    counts: RequestCounts | None = None
    cpu: dict[str, float] = field(default_factory=dict)
    sampler: PeakSampler | None = None
    started: float = 0.0

    def _pids(self) -> dict[str, int | None]:
        plane = self.stage.plane
        return {
            "provider": self.stage.pid,
            "kube-apiserver": plane.apiserver.pid if plane.apiserver else None,
            "etcd": plane.etcd.pid if plane.etcd else None,
            "bench": os.getpid(),
        }

    def _cpu(self) -> dict[str, float]:
        out = {"machine": system_busy_s()}
        for name, pid in self._pids().items():
            now = sample(pid) if pid is not None else None
            if now is not None:
                out[name] = now.cpu_s
        return out

    async def begin(self) -> None:
        self.started = time.monotonic()
        self.counts = await RequestCounts.read(self.stage.http)
        self.cpu = self._cpu()
        self.sampler = PeakSampler(self.stage.pid)
        self.sampler.start()

    async def end(self, claims: int) -> dict[str, Any]:
        assert self.counts is not None
        assert self.sampler is not None
        diff = await RequestCounts.read(self.stage.http) - self.counts
        cpu = {name: round(v - self.cpu.get(name, 0.0), 2) for name, v in self._cpu().items()}
        # What the rest of the machine (other users of the 2 cores) took meanwhile: distortion.
        cpu["others"] = round(cpu["machine"] - sum(v for k, v in cpu.items() if k != "machine"), 2)
        elapsed = time.monotonic() - self.started
        await self.sampler.stop()
        final = sample(self.stage.pid)
        writes = diff.by(WRITE_VERBS)
        client_creates = writes.pop("POST ipaddressclaims", 0)
        provider_writes = {
            k: v for k, v in writes.items() if k.split()[1].split("/")[0] in PROVIDER_RESOURCES
        }
        total = sum(provider_writes.values())
        return {
            "provider_writes": total,
            "writes_per_claim": round(total / claims, 2) if claims else None,
            "writes_by_kind": provider_writes,
            "other_writes": {k: v for k, v in writes.items() if k not in provider_writes},
            "client_claim_creates": client_creates,
            "reads_by_kind": diff.by(READ_VERBS),
            "write_conflicts_409": diff.conflicts(),
            "cpu_s": cpu,
            "provider_cpu_s": cpu.get("provider"),
            "measured_s": round(elapsed, 2),
            "others_cpu_share": round(cpu["others"] / elapsed, 2) if elapsed > 0 else None,
            "apiserver_cpu_ms_per_claim": round(1000 * cpu.get("kube-apiserver", 0.0) / claims, 2)
            if claims
            else None,
            "plane_cpu_ms_per_claim": round(
                1000 * (cpu.get("kube-apiserver", 0.0) + cpu.get("etcd", 0.0)) / claims, 2
            )
            if claims
            else None,
            "provider_cpu_ms_per_claim": round(1000 * cpu.get("provider", 0.0) / claims, 2)
            if claims
            else None,
            "provider_peak_rss_mb": round(final.peak_rss_mb, 1) if final else None,
            "provider_rss_mb_end": round(final.rss_mb, 1) if final else None,
            "provider_peak_rss_mb_sampled": round(self.sampler.peak_mb, 1),
        }


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _ms(v: float | None) -> float | None:
    return None if v is None else round(1000 * v, 1)


def latency_summary(sent: Mapping[str, float], watch: BindingWatch) -> dict[str, Any]:
    """Create -> bound latencies, and the split at the first sighting of the provider's finalizer."""
    latencies = [watch.bound[name] - t for name, t in sent.items() if name in watch.bound]
    to_finalizer = [watch.finalized[name] - t for name, t in sent.items() if name in watch.finalized]
    return {
        "latency_p50_ms": _ms(percentile(latencies, 0.50)),
        "latency_p99_ms": _ms(percentile(latencies, 0.99)),
        "latency_max_ms": _ms(max(latencies) if latencies else None),
        "latency_mean_ms": _ms(statistics.fmean(latencies) if latencies else None),
        "to_finalizer_p50_ms": _ms(percentile(to_finalizer, 0.50)),
        "to_finalizer_p99_ms": _ms(percentile(to_finalizer, 0.99)),
    }


# ---- workloads ---------------------------------------------------------------------------------------------


@dataclass
class Settings:
    n: int
    concurrency: int
    rate: float
    duration: float
    existing: int
    stall: float
    startup_timeout: float
    settle: float
    profile_dir: Path | None
    deadline: float | None = None
    profile_seconds: float = 60.0
    bound_n: int = 2000


async def ceiling(http: aiohttp.ClientSession, n: int, concurrency: int) -> dict[str, Any]:
    """The client's raw write rate on this control plane: N ConfigMap creates, as fast as it can."""
    await create_namespace(http, "ceiling")
    path = "/api/v1/namespaces/ceiling/configmaps"

    async def make(i: int) -> None:
        body = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": f"cm-{i:05d}"},
            "data": {"k": "v"},
        }
        await create(http, path, body)

    start = time.monotonic()
    await run_bounded((functools.partial(make, i) for i in range(n)), concurrency)
    elapsed = time.monotonic() - start
    writes_per_s = n / elapsed
    return {
        "configmaps": n,
        "seconds": round(elapsed, 2),
        "writes_per_s": round(writes_per_s, 1),
        "bound_claims_per_s": round(writes_per_s / MIN_WRITES_PER_CLAIM, 1),
    }


async def ideal(
    http: aiohttp.ClientSession, n: int, concurrency: int, plane: ControlPlane, *, watched: bool = False
) -> dict[str, Any]:
    """A provider with zero think time, played by the client itself: for each claim the create and the
    three writes a provider must make (finalizer patch, IPAddress create, status patch), in sequence,
    `concurrency` claims at a time. The claims name a foreign pool kind, so neither provider touches them.

    Its rate is not a bound (the client, not a provider, does the work, and it shares the cores). The bound
    is what the same writes cost the control plane: kube-apiserver's and etcd's CPU per claim, c. Every
    claim of every run needs at least these four writes on the same two processes, so no run on this
    machine can bind more than `cores / c` claims per second, whatever the provider.

    `watched`: the same, with one watch open on the claims and one on the IPAddresses meanwhile, read as an
    informer reads them: what a provider that watches (rather than polls) costs the apiserver at the least.
    Tighter, and a bound for every provider that watches."""
    ns = "ideal-watched" if watched else "ideal"
    await create_namespace(http, ns)
    pids = {
        "kube-apiserver": plane.apiserver.pid if plane.apiserver else None,
        "etcd": plane.etcd.pid if plane.etcd else None,
        "bench": os.getpid(),
    }

    def cpu() -> dict[str, float]:
        out = {"machine": system_busy_s()}
        for name, pid in pids.items():
            now = sample(pid) if pid is not None else None
            if now is not None:
                out[name] = now.cpu_s
        return out

    claims, addresses = claims_path(ns), addresses_path(ns)
    pool_ref = {"apiGroup": "bench.example.com", "kind": "NoSuchPool", "name": "none"}

    async def one(i: int) -> None:
        name = f"ideal-{i:05d}"
        body = claim_body(name, "none")
        body["metadata"]["namespace"] = ns
        body["spec"]["poolRef"] = pool_ref
        claim = await create(http, claims, body)
        version = claim["metadata"]["resourceVersion"]
        patch = {"metadata": {"finalizers": ["bench.example.com/hold"], "resourceVersion": version}}
        claim = await merge_patch(http, f"{claims}/{name}", patch)
        address = {
            "apiVersion": f"{GROUP}/v1beta2",
            "kind": "IPAddress",
            "metadata": {"name": name, "namespace": ns},
            "spec": {
                "address": f"192.168.{i // 256 % 256}.{i % 256}",
                "prefix": 16,
                "claimRef": {"name": name},
                "poolRef": pool_ref,
            },
        }
        await create(http, addresses, address)
        status = {
            "metadata": {"resourceVersion": claim["metadata"]["resourceVersion"]},
            "status": {"addressRef": {"name": name}},
        }
        await merge_patch(http, f"{claims}/{name}/status", status)

    async with Watchers(http, claims, int(watched)), Watchers(http, addresses, int(watched)):
        before = cpu()
        start = time.monotonic()
        await run_bounded((functools.partial(one, i) for i in range(n)), concurrency)
        elapsed = time.monotonic() - start
        await asyncio.sleep(1.0)  # the apiserver's watch cache and etcd's compaction catch up
        spent = {name: round(v - before.get(name, 0.0), 2) for name, v in cpu().items()}
    plane_ms = 1000 * (spent.get("kube-apiserver", 0.0) + spent.get("etcd", 0.0)) / n
    cores = os.cpu_count() or 1
    return {
        "claims": n,
        "seconds": round(elapsed, 2),
        "claims_per_s": round(n / elapsed, 1),
        "cpu_s": spent,
        "plane_cpu_ms_per_claim": round(plane_ms, 2),
        "cores": cores,
        "bound_claims_per_s": round(1000 * cores / plane_ms, 1) if plane_ms > 0 else None,
    }


async def burst(stage: Stage, pools: list[Pool], s: Settings) -> dict[str, Any]:
    """N claims, as fast as the client can create them (closed loop, `concurrency` in flight)."""
    http = stage.http
    watch = BindingWatch(http, claims_path(NS))
    await watch.start()
    meter = Meter(stage)
    await meter.begin()
    profiler = await start_profiler(stage, s)
    sent: dict[str, float] = {}

    async def make(i: int) -> None:
        name = f"claim-{i:05d}"
        sent[name] = time.monotonic()
        await create(http, claims_path(NS), claim_body(name, pools[i % len(pools)].name))

    start = time.monotonic()
    await run_bounded((functools.partial(make, i) for i in range(s.n)), s.concurrency)
    created = time.monotonic() - start
    deadline = start + s.deadline if s.deadline else None
    complete = await watch.wait(count=s.n, stall=s.stall, deadline=deadline)
    profile = await stop_profiler(profiler, s)
    if complete:
        await asyncio.sleep(s.settle)
    # An unfinished run is measured over what it did: its costs per bound claim, its rate over them.
    costs = await meter.end(len(watch.bound) if not complete else s.n)
    await watch.stop()
    costs["bench_watch"] = {"restarts": watch.restarts, "relists": watch.relists}
    bound = [name for name in sent if name in watch.bound]
    last = max(watch.bound.values()) if watch.bound else start
    wall = last - start
    result = {
        "claims": s.n,
        "bound": len(bound),
        "complete": complete,
        "deadline_s": s.deadline,
        "stall_s": s.stall,
        "create_phase_s": round(created, 2),
        "wall_s": round(wall, 2),
        "claims_per_s": round(len(bound) / wall, 1) if wall > 0 else None,
        **latency_summary(sent, watch),
        **costs,
    }
    if profile is not None:
        result["profile"] = profile
    return result


async def steady(stage: Stage, pools: list[Pool], s: Settings) -> dict[str, Any]:
    """An open-loop offered load: one claim every 1/rate seconds for `duration` seconds."""
    http = stage.http
    total = round(s.rate * s.duration)
    watch = BindingWatch(http, claims_path(NS))
    await watch.start()
    meter = Meter(stage)
    await meter.begin()
    sent: dict[str, float] = {}
    failures: list[str] = []

    async def make(i: int) -> None:
        name = f"claim-{i:05d}"
        sent[name] = time.monotonic()
        try:
            await create(http, claims_path(NS), claim_body(name, pools[i % len(pools)].name))
        except ApiFailure as exc:
            failures.append(str(exc))

    tasks = []
    start = time.monotonic()
    for i in range(total):
        delay = start + i / s.rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(make(i)))
    offered_for = max(sent.values()) - start
    await asyncio.gather(*tasks)
    complete = await watch.wait(count=total, stall=s.stall)
    await asyncio.sleep(s.settle)
    costs = await meter.end(total)
    await watch.stop()
    costs["bench_watch"] = {"restarts": watch.restarts, "relists": watch.relists}
    bound = [name for name in sent if name in watch.bound]
    return {
        "claims": total,
        "bound": len(bound),
        "complete": complete,
        "offered_rate": round((total - 1) / offered_for, 1) if total > 1 else None,
        "create_failures": len(failures),
        **latency_summary(sent, watch),
        **costs,
    }


async def prepare_existing(stage: Stage, pool: Pool, count: int, concurrency: int) -> float:
    """`count` bound claims and their IPAddresses, as the provider leaves them (finalizers, owners, Ready)."""
    http = stage.http
    contract = Contract("v1beta2")
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    async def make(i: int) -> None:
        name = f"claim-{i:05d}"
        address = address_of(i)
        claim = await create(http, claims_path(NS), claim_body(name, pool.name, [CLAIM_FINALIZER]))
        ready = ReadyState(
            True, "AddressAllocated", f"address {address} allocated from pool {POOL_KIND} {NS}/{pool.name}"
        )
        condition = contract.ready_condition(ready, None, int(claim["metadata"].get("generation") or 1), now)
        status = {"status": {"addressRef": {"name": name}, "conditions": [condition]}}
        await merge_patch(http, f"{claims_path(NS)}/{name}/status", status)
        owners = [
            {
                "apiVersion": f"{GROUP}/v1beta2",
                "kind": "IPAddressClaim",
                "name": name,
                "uid": claim["metadata"]["uid"],
                "controller": True,
                "blockOwnerDeletion": True,
            },
            {
                "apiVersion": f"{GROUP}/v1alpha2",
                "kind": POOL_KIND,
                "name": pool.name,
                "uid": stage.pool_uids[pool.name],
                "controller": False,
                "blockOwnerDeletion": True,
            },
        ]
        body = {
            "apiVersion": f"{GROUP}/v1beta2",
            "kind": "IPAddress",
            "metadata": {
                "name": name,
                "namespace": NS,
                "finalizers": [ADDRESS_FINALIZER],
                "ownerReferences": owners,
            },
            "spec": {
                "address": address,
                "prefix": pool.prefix,
                "gateway": pool.gateway,
                "claimRef": {"name": name},
                "poolRef": {"apiGroup": GROUP, "kind": POOL_KIND, "name": pool.name},
            },
        }
        await create(http, addresses_path(NS), body)

    start = time.monotonic()
    await run_bounded((functools.partial(make, i) for i in range(count)), concurrency)
    return time.monotonic() - start


async def startup(
    stage: Stage, pools: list[Pool], s: Settings, *, prepared: float | None = None, name: str = "new-claim-0"
) -> dict[str, Any]:
    """Start the provider over `existing` bound claims; time until a claim created at start is bound.
    `prepared`: the existing claims are there already (a plane shared by the providers, `--shared-startup`);
    `name` sorts after every existing claim, so it is listed (and queued) last."""
    if prepared is None:
        log(f"  creating {s.existing} bound claims and IPAddresses")
        prepared = await prepare_existing(stage, pools[0], s.existing, s.concurrency)
        log(f"  prepared in {prepared:.0f} s")
    watch = BindingWatch(stage.http, claims_path(NS), field_selector=f"metadata.name={name}")
    await watch.start()
    before = await RequestCounts.read(stage.http)
    await stage.start_provider()
    meter = Meter(stage)
    await meter.begin()
    meter.counts = before
    await create(stage.http, claims_path(NS), claim_body(name, pools[0].name))
    ready_task = asyncio.create_task(stage.wait_ready([]))
    profiler = await start_profiler(stage, s)
    complete = await watch.wait(
        names=[name], stall=s.startup_timeout, deadline=time.monotonic() + s.startup_timeout
    )
    first_bound = watch.bound[name] - stage.started_at if complete else None
    # Upstream logs one line per claim it re-reconciled without change: how far it got.
    done = 0
    with contextlib.suppress(OSError):
        done = stage.log_path.read_text(errors="replace").count("has been unchanged")
    at_bound = sample(stage.pid)
    profile = await stop_profiler(profiler, s)
    ready = await ready_task if ready_task.done() else None
    if not ready_task.done():
        ready_task.cancel()
    await asyncio.sleep(s.settle)
    costs = await meter.end(1)
    await watch.stop()
    for key in ("writes_per_claim", "provider_cpu_ms_per_claim", "plane_cpu_ms_per_claim"):
        costs.pop(key, None)
    return {
        "existing": s.existing,
        "prepare_s": round(prepared, 1),
        "complete": complete,
        "first_new_claim_bound_s": round(first_bound, 2) if first_bound is not None else None,
        "timeout_s": s.startup_timeout,
        "ready_s": round(ready, 2) if ready is not None else None,
        "rss_mb_at_bound": round(at_bound.rss_mb, 1) if at_bound else None,
        "existing_reconciled_per_log": done if not stage.provider.python else None,
        **costs,
        **({"profile": profile} if profile is not None else {}),
    }


# ---- checks and profiling ----------------------------------------------------------------------------------


def source_state() -> dict[str, Any]:
    """The commit measured, and whether src/ had uncommitted changes (read-only git)."""

    def git(*argv: str) -> str:
        proc = subprocess.run(["git", "-C", str(REPO), *argv], capture_output=True, text=True, check=False)
        return proc.stdout.strip()

    dirty = git("status", "--porcelain", "--", "src")
    return {"commit": git("rev-parse", "--short", "HEAD"), "src_uncommitted": dirty.splitlines()}


def audit_available() -> bool:
    proc = subprocess.run([str(BIN / "incluster-ipam"), "audit", "--help"], capture_output=True, check=False)
    return proc.returncode == 0


async def duplicate_check(stage: Stage, use_audit: bool) -> dict[str, Any]:
    """Own scan of every IPAddress (all pools here are disjoint, so any repeated address is a duplicate),
    and `incluster-ipam audit` when available."""
    addresses, _ = await list_all(stage.http, addresses_path(NS))
    seen = Counter(str((a.get("spec") or {}).get("address")) for a in addresses)
    claims, _ = await list_all(stage.http, claims_path(NS))
    result: dict[str, Any] = {
        "ipaddresses": len(addresses),
        "duplicates": sum(n - 1 for n in seen.values() if n > 1),
        "claims_unbound": sum(
            1 for c in claims if not ((c.get("status") or {}).get("addressRef") or {}).get("name")
        ),
    }
    if use_audit:
        proc = await asyncio.create_subprocess_exec(
            str(BIN / "incluster-ipam"),
            "audit",
            "--kubeconfig",
            str(stage.plane.kubeconfig_path),
            "--json",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await proc.communicate()
        result["audit_exit"] = proc.returncode
        try:
            report = json.loads(out)
            result["audit_counts"] = report.get("counts", {})
        except json.JSONDecodeError:
            result["audit_error"] = (err or out).decode(errors="replace")[-500:]
    return result


@dataclass
class Profiler:
    proc: asyncio.subprocess.Process | None
    path: Path
    task: asyncio.Task[None] | None = None
    binary: Path | None = None


async def service_account_token(http: aiohttp.ClientSession) -> str:
    """A token allowed to GET the provider's /debug/pprof/ (upstream's diagnostics authorize requests with
    the apiserver's TokenReview and SubjectAccessReview)."""
    rbac = "/apis/rbac.authorization.k8s.io/v1"
    with contextlib.suppress(ApiFailure):  # a second profile on the same plane
        await create(
            http,
            f"/api/v1/namespaces/{NS}/serviceaccounts",
            {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "profiler"}},
        )
        await create(
            http,
            f"{rbac}/clusterroles",
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRole",
                "metadata": {"name": "bench-profiler"},
                "rules": [{"nonResourceURLs": ["/debug/pprof/", "/debug/pprof/*"], "verbs": ["get"]}],
            },
        )
        await create(
            http,
            f"{rbac}/clusterrolebindings",
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRoleBinding",
                "metadata": {"name": "bench-profiler"},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "ClusterRole",
                    "name": "bench-profiler",
                },
                "subjects": [{"kind": "ServiceAccount", "name": "profiler", "namespace": NS}],
            },
        )
    answer = await create(
        http,
        f"/api/v1/namespaces/{NS}/serviceaccounts/profiler/token",
        {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "spec": {"expirationSeconds": 7200},
        },
    )
    return str(answer["status"]["token"])


async def go_profile(stage: Stage, path: Path, seconds: float) -> None:
    """A CPU profile of `seconds` from the Go provider's pprof handler."""
    token = await service_account_token(stage.http)
    url = f"https://127.0.0.1:{stage.metrics_port}/debug/pprof/profile?seconds={round(seconds)}"
    timeout = aiohttp.ClientTimeout(total=seconds + 60)
    async with (
        aiohttp.ClientSession(timeout=timeout) as session,
        session.get(url, ssl=False, headers={"Authorization": f"Bearer {token}"}) as resp,
    ):
        body = await resp.read()
        if resp.status != 200:
            raise ApiFailure(f"pprof: HTTP {resp.status}: {body[:300]!r}")
        await asyncio.to_thread(path.write_bytes, body)


def go_summary(binary: Path | None, path: Path, top: int = 25) -> dict[str, Any]:
    """`go tool pprof -top` of a profile: the functions by own and cumulative share."""
    out: dict[str, Any] = {"file": str(path)}
    for order, flag in (("self", "-top"), ("inclusive", "-top")):
        argv = ["go", "tool", "pprof", flag, f"-nodecount={top}"]
        if order == "inclusive":
            argv.append("-cum")
        argv += [*([str(binary)] if binary else []), str(path)]
        proc = subprocess.run(argv, capture_output=True, text=True, check=False)
        out[order] = proc.stdout.splitlines()[-top - 6 :] if proc.returncode == 0 else proc.stderr[-500:]
    return out


async def start_profiler(stage: Stage, s: Settings) -> Profiler | None:
    if s.profile_dir is None:
        return None
    if not stage.provider.python:
        path = s.profile_dir / f"profile-{stage.provider.name}-{time.strftime('%Y%m%d-%H%M%S')}.pprof"
        task = asyncio.create_task(go_profile(stage, path, s.profile_seconds))
        return Profiler(None, path, task, stage.provider.binary)
    target = stage.pid
    kids = children(target)  # the console script execs python itself; be safe if something wraps it
    if kids and sample(target) is None:
        target = kids[0]
    path = s.profile_dir / f"profile-{stage.provider.name}-{time.strftime('%Y%m%d-%H%M%S')}.txt"
    proc = await asyncio.create_subprocess_exec(
        str(BIN / "py-spy"),
        "record",
        "--pid",
        str(target),
        "--rate",
        "200",
        "--nonblocking",
        "--format",
        "raw",
        "--output",
        str(path),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    await asyncio.sleep(0.2)
    return Profiler(proc, path)


async def stop_profiler(profiler: Profiler | None, s: Settings) -> dict[str, Any] | None:
    if profiler is None:
        return None
    if profiler.task is not None:  # a Go profile: it ends by itself after --profile-seconds
        try:
            await profiler.task
        except Exception as exc:
            return {"error": f"pprof: {exc!r}"}
        return go_summary(profiler.binary, profiler.path)
    assert profiler.proc is not None
    with contextlib.suppress(ProcessLookupError):
        profiler.proc.send_signal(signal.SIGINT)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(profiler.proc.wait(), 30)
    if not profiler.path.exists():
        return {"error": "py-spy wrote no profile"}
    return {"file": str(profiler.path), **summarise(profiler.path)}


# ---- driver ------------------------------------------------------------------------------------------------


async def run_stage(
    assets: Assets,
    provider: ProviderDef,
    workload: str,
    s: Settings,
    *,
    logs: Path,
    use_audit: bool,
    measure_ceiling: bool,
) -> dict[str, Any]:
    pools = pools_for(workload, s.existing)
    async with ControlPlane(assets, extra_crds=provider.crds) as plane, plane.session() as http:
        stage = Stage(plane, http, provider, logs / f"{provider.name}-{workload}.log")
        result: dict[str, Any] = {"pools": [p.cidr for p in pools]}
        await create_namespace(http, NS)
        if measure_ceiling:
            # Open the client's connections first, so the ceiling does not pay for TLS handshakes.
            async def version() -> None:
                await request(http, "GET", "/version")

            await run_bounded([version] * s.concurrency, s.concurrency)
            result["ceiling"] = await ceiling(http, s.bound_n, s.concurrency)
            result["ideal"] = await ideal(http, s.bound_n, s.concurrency, plane)
            result["ideal_watched"] = await ideal(http, s.bound_n, s.concurrency, plane, watched=True)
            log(
                f"  ceiling: {result['ceiling']['writes_per_s']} ConfigMap creates/s; "
                f"ideal provider {result['ideal']['claims_per_s']} claims/s; bound "
                f"{result['ideal']['bound_claims_per_s']} claims/s "
                f"({result['ideal']['plane_cpu_ms_per_claim']} ms of apiserver+etcd CPU per claim); with "
                f"a provider's watches {result['ideal_watched']['bound_claims_per_s']} claims/s"
            )
        stage.pool_uids = await create_pools(http, pools)
        try:
            if workload == "startup":
                result.update(await startup(stage, pools, s))
            else:
                await stage.start_provider()
                result["ready_s"] = round(await stage.wait_ready(pools), 2)
                if workload == "steady":
                    result.update(await steady(stage, pools, s))
                else:
                    result.update(await burst(stage, pools, s))
            result["check"] = await duplicate_check(stage, use_audit)
        except Exception as exc:
            result["error"] = f"{type(exc).__name__}: {exc}"
            result["log_tail"] = log_tail(stage.log_path, 20)
        finally:
            await stage.stop_provider()
        return result


async def run_shared_startup(
    assets: Assets, providers: list[ProviderDef], s: Settings, *, logs: Path, use_audit: bool
) -> dict[str, dict[str, Any]]:
    """The start-up workload for every provider on ONE control plane, prepared once: `existing` bound claims
    cost three writes each to prepare (at 100,000, minutes per plane). Each provider in turn starts over
    them, a new claim of its own is created at its start, and it is stopped again; the ones after the first
    also find the claims bound before them, as a provider left them. The pool CRDs are the first
    provider's (ours and upstream's serve the same schema)."""
    pools = pools_for("startup", s.existing)
    results: dict[str, dict[str, Any]] = {}
    async with ControlPlane(assets, extra_crds=providers[0].crds) as plane, plane.session() as http:
        await create_namespace(http, NS)
        uids = await create_pools(http, pools)
        log(f"  creating {s.existing} bound claims and IPAddresses (one plane for all providers)")
        probe = Stage(plane, http, providers[0], logs / "prepare.log", pool_uids=uids)
        prepared = await prepare_existing(probe, pools[0], s.existing, s.concurrency)
        log(f"  prepared in {prepared:.0f} s")
        for i, provider in enumerate(providers):
            log(f"{provider.name}: startup (shared plane)")
            stage = Stage(plane, http, provider, logs / f"{provider.name}-startup.log", pool_uids=uids)
            result: dict[str, Any] = {"pools": [p.cidr for p in pools], "shared_plane": True}
            try:
                result.update(await startup(stage, pools, s, prepared=prepared, name=f"new-claim-{i}"))
                result["check"] = await duplicate_check(stage, use_audit)
            except Exception as exc:
                result["error"] = f"{type(exc).__name__}: {exc}"
                result["log_tail"] = log_tail(stage.log_path, 20)
            finally:
                await stage.stop_provider()
            results[provider.name] = result
            log(f"  {json.dumps({k: v for k, v in result.items() if k in _HEADLINE})}")
    return results


def settings(args: argparse.Namespace) -> Settings:
    return Settings(
        n=args.n,
        concurrency=args.concurrency,
        rate=args.rate,
        duration=args.duration,
        existing=args.existing,
        stall=args.stall,
        startup_timeout=args.startup_timeout,
        settle=args.settle,
        profile_dir=args.out if args.profile else None,
        deadline=args.deadline,
        profile_seconds=args.profile_seconds,
        bound_n=args.bound_n or min(args.n, 2000),
    )


async def main_async(args: argparse.Namespace) -> int:
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    default = args.n == 2000 and args.workloads == list(WORKLOADS) and args.providers == ["ours", "upstream"]
    mode = "quick" if args.quick else "full" if default else "custom"
    logs = args.out / f"logs-{stamp}"
    s = settings(args)
    assets = await ensure_assets()
    use_audit = audit_available()
    providers: list[ProviderDef] = []
    unavailable: dict[str, str] = {}
    for name in args.providers:
        try:
            provider = ours() if name == "ours" else upstream(profile=args.profile)
            extra = tuple(shlex.split(getattr(args, f"{name}_args")))
            providers.append(dataclasses.replace(provider, extra=extra))
        except Exception as exc:
            unavailable[name] = str(exc)
            log(f"{name} unavailable: {exc}")
    for label, variant_args in args.ours_variants:  # ours again, with other flags, on the same plane
        providers.append(dataclasses.replace(ours(), name=f"ours-{label}", extra=tuple(variant_args)))
    report: dict[str, Any] = {
        "mode": mode,
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "source": source_state(),
        "load_before": load_average(),
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(s).items()},
        "providers": {p.name: p.version for p in providers},
        "unavailable": unavailable,
        "audit": use_audit,
        "results": {p.name: {} for p in providers},
    }
    path = args.out / f"claims-{mode}-{stamp}.json"
    for workload in args.workloads:
        if workload == "startup" and args.shared_startup and providers:
            shared = await run_shared_startup(assets, providers, s, logs=logs, use_audit=use_audit)
            for name, result in shared.items():
                report["results"][name][workload] = result
            path.write_text(json.dumps(report, indent=2))
            continue
        for provider in providers:
            log(f"{provider.name}: {workload}")
            result = await run_stage(
                assets,
                provider,
                workload,
                s,
                logs=logs,
                use_audit=use_audit,
                measure_ceiling=workload == "one_pool",
            )
            report["results"][provider.name][workload] = result
            path.write_text(json.dumps(report, indent=2))  # partial results survive an interrupted run
            log(f"  {json.dumps({k: v for k, v in result.items() if k in _HEADLINE})}")
    report["load_after"] = load_average()
    report["finished"] = datetime.now(UTC).isoformat(timespec="seconds")
    path.write_text(json.dumps(report, indent=2))
    table = markdown(report)
    path.with_suffix(".md").write_text(table + "\n")
    if args.docs is not None and report["mode"] in ("quick", "full"):
        args.docs.write_text(with_latest_run(args.docs.read_text(), report["mode"], table))
        log(f"table written to {args.docs} (latest {report['mode']} run)")
    print(table)
    print(f"\nresults: {path}", file=sys.stderr)
    return 0


_HEADLINE = {
    "claims_per_s",
    "latency_p50_ms",
    "latency_p99_ms",
    "writes_per_claim",
    "provider_peak_rss_mb",
    "first_new_claim_bound_s",
    "complete",
    "check",
    "error",
}


# ---- the markdown table ------------------------------------------------------------------------------------


def with_latest_run(doc: str, mode: str, table: str) -> str:
    """`doc` with the table of the latest `mode` run between its markers (a new section at the end if the
    markers are missing); everything else is left as it was."""
    begin, end = f"<!-- bench:{mode}:begin -->", f"<!-- bench:{mode}:end -->"
    block = f"{begin}\n{table.strip()}\n{end}"
    if begin in doc and end in doc.split(begin, 1)[1]:
        before, rest = doc.split(begin, 1)
        return before + block + rest.split(end, 1)[1]
    return f"{doc.rstrip()}\n\n## Latest {mode} run (written by bench/claims.py)\n\n{block}\n"


def _fmt(value: Any, unit: str = "") -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        text = (
            f"{value:,.2f}" if abs(value) < 10 else f"{value:,.1f}" if abs(value) < 100 else f"{value:,.0f}"
        )
    else:
        text = f"{value:,}" if isinstance(value, int) else str(value)
    return f"{text}{unit}"


def _ratio(ours_value: Any, theirs: Any, higher_is_better: bool) -> str:
    if (
        not isinstance(ours_value, int | float)
        or not isinstance(theirs, int | float)
        or not ours_value
        or not theirs
    ):
        return "–"
    ratio = ours_value / theirs if higher_is_better else theirs / ours_value
    return f"{ratio:,.1f}x" if ratio >= 1 else f"{ratio:.2f}x"


def markdown(report: Mapping[str, Any]) -> str:
    results = report["results"]
    ours_r: Mapping[str, Any] = results.get("ours", {})
    up_r: Mapping[str, Any] = results.get("upstream", {})
    bounds = [
        r["one_pool"]["ideal"]["bound_claims_per_s"]
        for r in results.values()
        if (r.get("one_pool", {}).get("ideal") or {}).get("bound_claims_per_s")
    ]
    bound = min(bounds) if bounds else None
    m = report["machine"]
    src = report.get("source", {})
    dirty = (
        f" + uncommitted changes in {len(src['src_uncommitted'])} src files"
        if src.get("src_uncommitted")
        else ""
    )
    load = ", ".join(f"{a:.1f}" for a in report["load_before"])
    versions = ", ".join(f"{k} {v}" for k, v in report["providers"].items())
    rows = [
        f"Run {report['started']} ({report['mode']}): `{report['command']}`  ",
        f"Machine: {m['cpus']} x {m['cpu_model']}, {m['memory_gib']} GiB, Linux {m['kernel']}, "
        f"Python {m['python']}, {m['go']}; load average before {load}.  ",
        f"Providers: {versions}; source {src.get('commit', '?')}{dirty}.",
        "",
        "| workload | metric | ours | upstream | ours vs upstream | bound |",
        "|---|---|---:|---:|---:|---:|",
    ]

    def row(
        workload: str,
        label: str,
        key: str,
        unit: str = "",
        *,
        better: bool | None = True,
        bound_cell: str = "",
    ) -> None:
        ra, rb = ours_r.get(workload, {}), up_r.get(workload, {})
        a, b = ra.get(key), rb.get(key)
        ratio = _ratio(a, b, better) if better is not None else ""
        cells = [_fmt(a, unit), _fmt(b, unit)]
        if key == "claims_per_s" and rb.get("complete") is False and ratio not in ("", "–"):
            ratio = f"≥ {ratio}"  # upstream's rate over what it did before the deadline only falls later
        if key == "first_new_claim_bound_s":  # a start-up that timed out: say so, with the lower bound
            for i, r in enumerate((ra, rb)):
                if r and r.get(key) is None and r.get("complete") is False:
                    cells[i] = f"> {r['timeout_s']:.0f} s (not bound)"
            if isinstance(a, float) and a and b is None and rb.get("complete") is False:
                ratio = f"> {rb['timeout_s'] / a:,.0f}x"
        rows.append(f"| {workload} | {label} | {cells[0]} | {cells[1]} | {ratio} | {bound_cell} |")

    def check(workload: str) -> None:
        def text(r: Mapping[str, Any]) -> str:
            if "error" in r:
                return "error"
            c = r.get("check")
            if not c:
                return "–"
            audit = ""
            if "audit_exit" in c:
                found = ", ".join(f"{n} {kind}" for kind, n in (c.get("audit_counts") or {}).items())
                audit = f"; audit: {found or 'clean'}"
            return f"{c['duplicates']}{audit}"

        a, b = ours_r.get(workload), up_r.get(workload)
        rows.append(f"| {workload} | duplicates | {text(a) if a else '–'} | {text(b) if b else '–'} | | |")

    n = report["settings"]["n"]
    for workload in ("one_pool", "ten_pools", "ipv6"):
        if workload not in ours_r and workload not in up_r:
            continue
        bound_cell = (
            f"{_fmt(bound, '/s')} (cores / plane CPU per claim)" if workload == "one_pool" and bound else ""
        )
        row(workload, f"claims/s (N={n})", "claims_per_s", better=True, bound_cell=bound_cell)
        for name in ("ours", "upstream"):
            r = results.get(name, {}).get(workload, {})
            if r and r.get("complete") is False and "bound" in r:
                rows.append(
                    f"| {workload} | {name} did not finish: bound {r['bound']:,} of {r['claims']:,} "
                    f"within {r.get('deadline_s') or r.get('stall_s')} s; its rate is over those | | | | |"
                )
        if workload == "one_pool":
            shares = []
            for name in ("ours", "upstream"):
                r = results.get(name, {}).get("one_pool", {})
                rate, i = r.get("claims_per_s"), r.get("ideal") or {}
                b = i.get("bound_claims_per_s")
                shares.append(
                    (
                        f"{100 * rate / b:.0f}%" if rate and b else "–",
                        f"{100 * rate / i['claims_per_s']:.0f}%" if rate and i.get("claims_per_s") else "–",
                    )
                )
            rows.append(
                f"| one_pool | share of the bound (same control plane) | {shares[0][0]} | "
                f"{shares[1][0]} | | 100% |"
            )
            watched = []
            for name in ("ours", "upstream"):
                r = results.get(name, {}).get("one_pool", {})
                rate, b = r.get("claims_per_s"), (r.get("ideal_watched") or {}).get("bound_claims_per_s")
                watched.append(f"{100 * rate / b:.0f}%" if rate and b else "–")
            rows.append(
                f"| one_pool | share of the bound for a provider that watches | {watched[0]} | {watched[1]} "
                "| | 100% |"
            )
            rows.append(
                f"| one_pool | share of the client doing the minimal writes itself (same plane) | "
                f"{shares[0][1]} | {shares[1][1]} | | |"
            )
        row(workload, "wall time first create → last bound", "wall_s", " s", better=False)
        row(workload, "p50 create → bound", "latency_p50_ms", " ms", better=False)
        row(workload, "p99 create → bound", "latency_p99_ms", " ms", better=False)
        row(workload, "API writes per claim (provider)", "writes_per_claim", better=False, bound_cell="3")
        row(workload, "provider CPU per claim", "provider_cpu_ms_per_claim", " ms", better=False)
        row(workload, "kube-apiserver CPU per claim", "apiserver_cpu_ms_per_claim", " ms", better=False)
        row(workload, "kube-apiserver + etcd CPU per claim", "plane_cpu_ms_per_claim", " ms", better=False)
        row(workload, "provider peak RSS", "provider_peak_rss_mb", " MB", better=False)
        row(workload, "other load on the machine meanwhile (cores)", "others_cpu_share", better=None)
        check(workload)
    if "steady" in ours_r or "steady" in up_r:
        rate = report["settings"]["rate"]
        row(
            "steady",
            f"offered claims/s ({rate:g}/s for {report['settings']['duration']:g} s)",
            "offered_rate",
            better=None,
        )
        row("steady", "p50 create → bound", "latency_p50_ms", " ms", better=False)
        row(
            "steady",
            "p99 create → bound",
            "latency_p99_ms",
            " ms",
            better=False,
            bound_cell="< 1000 ms target",
        )
        row("steady", "max create → bound", "latency_max_ms", " ms", better=False)
        row("steady", "API writes per claim (provider)", "writes_per_claim", better=False)
        row("steady", "kube-apiserver CPU per claim", "apiserver_cpu_ms_per_claim", " ms", better=False)
        row("steady", "other load on the machine meanwhile (cores)", "others_cpu_share", better=None)
        check("steady")
    if "startup" in ours_r or "startup" in up_r:
        existing = report["settings"]["existing"]
        row(
            "startup",
            f"start → new claim bound ({existing:,} existing)",
            "first_new_claim_bound_s",
            " s",
            better=False,
            bound_cell="< 15 s target" if existing >= 100_000 else "< 10 s target",
        )
        row("startup", "start → ready", "ready_s", " s", better=False)
        row(
            "startup",
            "provider peak RSS",
            "provider_peak_rss_mb",
            " MB",
            better=False,
            bound_cell="< 300 MB target" if existing >= 100_000 else "< 200 MB target",
        )
        row("startup", "provider CPU during start-up", "provider_cpu_s", " s", better=None)
        row("startup", "writes during start-up", "provider_writes", better=None)
        row("startup", "other load on the machine meanwhile (cores)", "others_cpu_share", better=None)
        check("startup")
    for name, r in results.items():
        if name in ("ours", "upstream"):
            continue
        for workload, w in r.items():
            headline = ", ".join(f"{k} {w[k]}" for k in sorted(_HEADLINE) if k in w and k != "check")
            rows.append(f"| {workload} | variant {name} | {headline} | | | |")
    for name, r in results.items():
        c = r.get("one_pool", {}).get("ceiling")
        if c:
            rows.append(
                f"| ceiling ({name}'s plane) | ConfigMap creates/s (N={c['configmaps']}) → W/4 | | | | "
                f"{c['writes_per_s']:,.0f}/s → {c['bound_claims_per_s']:,.0f} claims/s |"
            )
        i = r.get("one_pool", {}).get("ideal")
        if i:
            rows.append(
                f"| ceiling ({name}'s plane) | the client does the 4 minimal writes per claim | | | | "
                f"{i['claims_per_s']:,.0f} claims/s |"
            )
            if i.get("bound_claims_per_s"):
                rows.append(
                    f"| ceiling ({name}'s plane) | bound: {i['cores']} cores / "
                    f"{i['plane_cpu_ms_per_claim']} ms of kube-apiserver + etcd CPU per claim | | | | "
                    f"{i['bound_claims_per_s']:,.0f} claims/s |"
                )
        iw = r.get("one_pool", {}).get("ideal_watched")
        if iw and iw.get("bound_claims_per_s"):
            rows.append(
                f"| ceiling ({name}'s plane) | bound for a provider that watches: {iw['cores']} cores / "
                f"{iw['plane_cpu_ms_per_claim']} ms with a watch on claims and one on IPAddresses | | | | "
                f"{iw['bound_claims_per_s']:,.0f} claims/s |"
            )
    return "\n".join(rows)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="N=500, one pool, both providers")
    parser.add_argument(
        "--n", type=int, default=None, help="claims per burst workload (default 2000; quick 500)"
    )
    parser.add_argument("--concurrency", type=int, default=64, help="client requests in flight")
    parser.add_argument("--providers", default="ours,upstream", help="comma-separated: ours, upstream")
    parser.add_argument("--workloads", default=None, help=f"comma-separated of {', '.join(WORKLOADS)}")
    parser.add_argument("--rate", type=float, default=50.0, help="steady: offered claims/s")
    parser.add_argument("--duration", type=float, default=60.0, help="steady: seconds of offered load")
    parser.add_argument("--existing", type=int, default=20000, help="startup: pre-existing bound claims")
    parser.add_argument(
        "--stall", type=float, default=120.0, help="give up after this long without a binding"
    )
    parser.add_argument(
        "--bound-n",
        type=int,
        default=None,
        help="claims for the bound's minimal-writes run and ConfigMaps for the ceiling (default: N, at most "
        "2000: a cost per claim, it does not need 20,000)",
    )
    parser.add_argument(
        "--deadline",
        type=float,
        default=None,
        help="burst workloads: stop waiting after this many seconds from the first create and report the "
        "rate over the claims bound by then (a lower bound of the ratio when the slower side stops)",
    )
    parser.add_argument(
        "--shared-startup",
        action="store_true",
        help="startup: prepare the existing claims once, on one plane for every provider (for --existing "
        "100000, where preparing takes minutes)",
    )
    parser.add_argument("--startup-timeout", type=float, default=600.0, help="startup: give up after (s)")
    parser.add_argument(
        "--settle",
        type=float,
        default=2.0,
        help="seconds after the last binding before the counters are read",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="profile the providers (burst and startup workloads): py-spy on ours, pprof on upstream",
    )
    parser.add_argument(
        "--profile-seconds",
        type=float,
        default=60.0,
        help="upstream's pprof CPU profile: seconds from the workload's start (ours: py-spy, all of it)",
    )
    parser.add_argument("--ours-args", default="", help="extra arguments for our provider (diagnosis only)")
    parser.add_argument("--upstream-args", default="", help="extra arguments for upstream (diagnosis only)")
    parser.add_argument(
        "--ours-variant",
        action="append",
        default=[],
        metavar="LABEL=ARGS",
        help="also run ours as 'ours-LABEL' with these extra arguments (repeatable; with --shared-startup "
        "every variant starts over the same prepared claims), e.g. pages500='--list-page-size 500'",
    )
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    parser.add_argument(
        "--docs",
        type=Path,
        default=REPO / "docs" / "performance.md",
        help="where quick and full runs write their table (between <!-- bench:MODE:begin/end --> markers)",
    )
    parser.add_argument(
        "--no-docs", dest="docs", action="store_const", const=None, help="do not touch the docs"
    )
    args = parser.parse_args(argv)
    args.n = args.n or (500 if args.quick else 2000)
    args.providers = [p for p in args.providers.split(",") if p]
    if args.workloads is None:
        args.workloads = "one_pool" if args.quick else ",".join(WORKLOADS)
    args.workloads = [w for w in args.workloads.split(",") if w]
    unknown = [w for w in args.workloads if w not in WORKLOADS] + [
        p for p in args.providers if p not in ("ours", "upstream")
    ]
    if unknown:
        parser.error(f"unknown: {', '.join(unknown)}")
    args.ours_variants = []
    for spec in args.ours_variant:
        label, sep, extra = spec.partition("=")
        if not sep or not label:
            parser.error(f"--ours-variant wants LABEL=ARGS, not {spec!r}")
        args.ours_variants.append((label, shlex.split(extra)))
    return args


def main() -> int:
    return asyncio.run(main_async(parse_args()))


if __name__ == "__main__":
    sys.exit(main())
