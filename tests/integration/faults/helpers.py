"""Helpers for the fault tests and the soak: drive claims through the apiserver, run provider processes.

Nothing here fakes the cluster: claims are created and deleted through kube-apiserver, the provider runs as
the real `incluster-ipam run` command (a subprocess that can be SIGKILLed) or in-process (`Provider`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml

from incluster_ipam.api.constants import GROUP
from incluster_ipam.devcluster import ControlPlane
from incluster_ipam.devcluster.controlplane import free_port
from incluster_ipam.devcluster.process import ManagedProcess, log_tail
from incluster_ipam.kube import LEASES, NAMESPACES, ApiError, KubeClient, KubeError, Resource
from incluster_ipam.kube.errors import is_not_found
from incluster_ipam.provider import LEASE_NAME, Options, Provider

from ..support import eventually
from . import invariants

T = TypeVar("T")

CLAIMS = Resource(GROUP, "v1beta2", "ipaddressclaims", "IPAddressClaim", True)
ADDRESSES = Resource(GROUP, "v1beta2", "ipaddresses", "IPAddress", True)
IP_POOLS = Resource(GROUP, "v1alpha2", "inclusterippools", "InClusterIPPool", True)
GLOBAL_IP_POOLS = Resource(GROUP, "v1alpha2", "globalinclusterippools", "GlobalInClusterIPPool", False)
PREFIX_POOLS = Resource(GROUP, "v1alpha2", "inclusterprefixpools", "InClusterPrefixPool", True)
POOL_RESOURCES = {r.kind: r for r in (IP_POOLS, GLOBAL_IP_POOLS, PREFIX_POOLS)}

CLI = [sys.executable, "-m", "incluster_ipam.cli"]
#: How often a replica that lost its lease is restarted before its exit counts as a death.
MAX_RESTARTS = 3


async def retrying(call: Callable[[], Awaitable[T]], within: float = 60.0) -> T:
    """Retry a test-side API call through transport errors and 5xx (the apiserver may be restarting)."""
    deadline = time.monotonic() + within
    while True:
        try:
            return await call()
        except KubeError as exc:
            retryable = not isinstance(exc, ApiError) or exc.status >= 500 or exc.status == 429
            if not retryable or time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)


def rss_kib(pid: int) -> int:
    """Resident set size of a process, from /proc/<pid>/status (KiB)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for pid {pid}")


# ---- the cluster side -----------------------------------------------------------------------------------


def pool_body(kind: str, name: str, namespace: str | None, spec: dict[str, Any]) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name}
    if namespace:
        metadata["namespace"] = namespace
    return {"apiVersion": f"{GROUP}/v1alpha2", "kind": kind, "metadata": metadata, "spec": spec}


def claim_body(name: str, pool: str, kind: str = "InClusterIPPool", **metadata: Any) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/v1beta2",
        "kind": "IPAddressClaim",
        "metadata": {"name": name, **metadata},
        "spec": {"poolRef": {"apiGroup": GROUP, "kind": kind, "name": pool}},
    }


@dataclass
class Cluster:
    """Test-side access to one control plane."""

    plane: ControlPlane
    client: KubeClient
    global_pools: list[tuple[str, str]] = field(default_factory=list)

    async def namespace(self, stem: str = "f") -> str:
        name = f"{stem}-{uuid.uuid4().hex[:8]}"
        await self.client.create(
            NAMESPACES, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
        )
        return name

    async def pool(self, kind: str, name: str, namespace: str | None, **spec: Any) -> dict[str, Any]:
        resource = POOL_RESOURCES[kind]
        if not resource.namespaced:
            self.global_pools.append((kind, name))
        return await self.client.create(resource, pool_body(kind, name, namespace, spec), namespace)

    async def claim(self, namespace: str, name: str, pool: str, kind: str = "InClusterIPPool") -> None:
        await retrying(lambda: self._create_claim(namespace, name, pool, kind))

    async def _create_claim(self, namespace: str, name: str, pool: str, kind: str) -> None:
        try:
            await self.client.create(CLAIMS, claim_body(name, pool, kind), namespace)
        except ApiError as exc:
            if exc.status != 409:  # a retried create that had landed
                raise

    async def delete_claim(self, namespace: str, name: str) -> None:
        async def delete() -> None:
            try:
                await self.client.delete(CLAIMS, name, namespace)
            except ApiError as exc:
                if not is_not_found(exc):
                    raise

        await retrying(delete)

    async def claims(self, namespace: str) -> list[dict[str, Any]]:
        return (await retrying(lambda: self.client.list(CLAIMS, namespace))).items

    async def addresses(self, namespace: str) -> list[dict[str, Any]]:
        return (await retrying(lambda: self.client.list(ADDRESSES, namespace))).items

    async def bound_count(self, namespace: str) -> int:
        return sum(1 for c in await self.claims(namespace) if (c.get("status") or {}).get("addressRef"))

    async def wait_all_bound(self, namespace: str, within: float = 60.0) -> float:
        """Wait until every live claim of the namespace has an existing IPAddress; seconds taken."""
        started = time.monotonic()

        async def all_bound() -> bool:
            claims = [c for c in await self.claims(namespace) if not c["metadata"].get("deletionTimestamp")]
            names = {a["metadata"]["name"] for a in await self.addresses(namespace)}
            return all(((c.get("status") or {}).get("addressRef") or {}).get("name") in names for c in claims)

        await eventually(all_bound, within, f"every claim in {namespace} to be bound")
        return time.monotonic() - started

    async def lease_holder(self) -> str | None:
        try:
            lease = await self.client.get(LEASES, LEASE_NAME, "default")
        except ApiError as exc:
            if is_not_found(exc):
                return None
            raise
        return (lease.get("spec") or {}).get("holderIdentity") or None

    async def cleanup_global_pools(self) -> None:
        """Global pools would leak into other tests' audits: delete them (skipping the webhook checks)."""
        for kind, name in self.global_pools:
            with contextlib.suppress(KubeError):
                await self.client.delete(POOL_RESOURCES[kind], name)
        self.global_pools.clear()


async def bounded_gather(calls: Iterable[Awaitable[Any]], limit: int = 16) -> list[Any]:
    """Await `calls` with at most `limit` in flight."""
    semaphore = asyncio.Semaphore(limit)

    async def one(call: Awaitable[Any]) -> Any:
        async with semaphore:
            return await call

    return await asyncio.gather(*(one(c) for c in calls))


# ---- provider processes ---------------------------------------------------------------------------------


def write_kubeconfig(source: Path, target: Path, server: str) -> Path:
    """A copy of `source` pointing at another server URL (e.g. the fault proxy)."""
    config = yaml.safe_load(source.read_text())
    for cluster in config["clusters"]:
        cluster["cluster"]["server"] = server
    target.write_text(yaml.safe_dump(config, sort_keys=False))
    target.chmod(0o600)
    return target


class ProviderProcess:
    """`incluster-ipam run` as a child process (logs to a file; SIGKILL-able; restartable)."""

    def __init__(
        self,
        name: str,
        kubeconfig: Path,
        logs: Path,
        *,
        leader_elect: bool = False,
        extra: Iterable[str] = (),
        wrap: Callable[[list[str]], list[str]] | None = None,
    ) -> None:
        self.name = name
        self.wrap = wrap
        self.kubeconfig = kubeconfig
        self.logs = logs
        self.leader_elect = leader_elect
        self.extra = list(extra)
        self.metrics_port = free_port()
        self.starts = 0
        self.process: ManagedProcess | None = None
        self.expected_down = True  # until started; again after kill() or stop()
        #: Restarts after the process gave its lease up and exited, as the Deployment would restart it
        #: (a replica whose renewals time out on a starved machine must exit; a pod comes back).
        self.restarts: list[str] = []
        self._supervisor: asyncio.Task[None] | None = None

    @property
    def identity(self) -> str:
        """The lease identity: a restarted replica gets a new one, as a new pod would (a replica coming back
        under its old identity could renew the lease at once, before the old one's writes landed)."""
        return f"{self.name}-r{len(self.restarts)}" if self.restarts else self.name

    def argv(self) -> list[str]:
        argv = [
            *CLI,
            "run",
            f"--kubeconfig={self.kubeconfig}",
            "--webhook-port=0",
            "--health-probe-bind-address=0",
            f"--metrics-bind-address=127.0.0.1:{self.metrics_port}",
            "--diagnostics-address=0",
            "--log-level=info",
        ]
        if self.leader_elect:
            argv += [
                "--leader-elect",
                "--leader-election-namespace=default",
                f"--leader-elect-identity={self.identity}",
                "--leader-elect-lease-duration=3",
                "--leader-elect-renew-deadline=2",
                "--leader-elect-retry-period=0.5",
            ]
        return [*argv, *self.extra]

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.running

    @property
    def returncode(self) -> int | None:
        """The exit code once the process ended, else None."""
        proc = self.process._proc if self.process is not None else None
        return None if proc is None else proc.returncode

    async def start(self) -> None:
        self.starts += 1
        argv = self.argv() if self.wrap is None else self.wrap(self.argv())
        self.process = ManagedProcess(
            self.name, argv, self.logs / f"{self.name}.log", env={"PYTHONUNBUFFERED": "1"}
        )
        await self.process.start()
        self.expected_down = False
        invariants.WATCHED.add(self)
        if self.leader_elect and (self._supervisor is None or self._supervisor.done()):
            self._supervisor = asyncio.create_task(self._supervise(), name=f"supervise-{self.name}")

    def lost_its_lease(self) -> bool:
        """Exited with code 1 after giving its lease up, while meant to run."""
        return (
            not self.expected_down
            and self.returncode == 1
            and "leadership lost; stopping" in self.log_tail(200)
        )

    async def _supervise(self) -> None:
        """Restart the replica when it exits for a lost lease (at most `MAX_RESTARTS` times); any other
        exit is left for `died` to report."""
        while len(self.restarts) < MAX_RESTARTS:
            proc = self.process._proc if self.process is not None else None
            if proc is None:
                return
            await proc.wait()
            if not self.lost_its_lease():
                return
            self.restarts.append(time.strftime("%H:%M:%S"))
            print(f"{self.name}: lost its lease and exited; restarted as {self.identity}", file=sys.stderr)
            await asyncio.sleep(0.5)
            if self.expected_down:
                return
            await self.start()

    async def _unsupervise(self) -> None:
        self.expected_down = True
        task, self._supervisor = self._supervisor, None
        if task is not None and task is not asyncio.current_task():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def kill(self) -> None:
        await self._unsupervise()
        if self.process is not None:
            await self.process.kill()

    async def stop(self) -> None:
        await self._unsupervise()
        if self.process is not None:
            await self.process.stop(grace=5)

    def died(self) -> str | None:
        """What `invariants.settle` reports when this provider ended while it was meant to run (not a lost
        lease while restarts are left: the supervisor brings it back)."""
        if self.expected_down or self.process is None or self.process.running:
            return None
        if self.lost_its_lease() and len(self.restarts) < MAX_RESTARTS:
            return None
        return f"{self.name} exited with code {self.returncode}; last lines of its log:\n{self.log_tail()}"

    def check_alive(self) -> None:
        assert self.process is not None
        self.process.check_alive()

    def log_tail(self, lines: int = 40) -> str:
        return log_tail(self.logs / f"{self.name}.log", lines)


@contextlib.asynccontextmanager
async def in_process(client: KubeClient, **options: Any) -> AsyncIterator[Provider]:
    """A `Provider` on this event loop (webhooks, health and metrics off unless asked), leading when yielded;
    stopped (exit code 0 expected) afterwards."""
    settings: dict[str, Any] = {
        "webhook_port": 0,
        "health_address": "0",
        "metrics_address": "0",
        "status_interval": 0.05,
    }
    settings.update(options)
    provider = Provider(client, Options(**settings))
    stop = asyncio.Event()
    task = asyncio.create_task(provider.run(stop))
    leading = asyncio.create_task(provider.leading.wait())
    done, _ = await asyncio.wait({task, leading}, timeout=60, return_when=asyncio.FIRST_COMPLETED)
    if task in done:
        task.result()  # raises the start-up error
    assert leading in done, "the provider did not start leading within 60 s"
    try:
        yield provider
    finally:
        stop.set()
        code = await asyncio.wait_for(task, 30)
    assert code == 0, f"the provider exited with {code}"


@contextlib.asynccontextmanager
async def providers(*procs: ProviderProcess) -> AsyncIterator[tuple[ProviderProcess, ...]]:
    try:
        for proc in procs:
            await proc.start()
        yield procs
    finally:
        for proc in procs:
            await proc.stop()


def seeded(name: str) -> tuple[int, random.Random]:
    """A seed for one test (printed by the caller) and its generator.

    Fresh each run unless `FAULTS_SEED` is set (re-run a failure with the seed it printed)."""
    fixed = os.environ.get("FAULTS_SEED")
    value = int(fixed) if fixed else random.SystemRandom().randrange(2**32)
    print(f"{name}: seed {value} (re-run with FAULTS_SEED={value})", file=sys.stderr, flush=True)
    return value, random.Random(value)


# ---- churn ----------------------------------------------------------------------------------------------


@dataclass
class ChurnStats:
    creates: int = 0
    deletes: int = 0
    flash: int = 0  # deleted before the provider could bind them
    bound_then_deleted: int = 0
    checkpoints: int = 0

    @property
    def operations(self) -> int:
        return self.creates + self.deletes


@dataclass
class Churn:
    """Creates and deletes claims across pools at random, in four patterns: plain creates, deletes of random
    live claims, create-then-delete at once (the claim may vanish before the provider adds its finalizer), and
    delete as soon as bound (the provider's cache may not have seen the IPAddress yet)."""

    cluster: Cluster
    namespace: str
    pools: list[tuple[str, str]]  # (pool name, kind)
    rng: random.Random
    target_live: int = 150
    concurrency: int = 16
    stats: ChurnStats = field(default_factory=ChurnStats)
    live: list[str] = field(default_factory=list)
    _serial: int = 0

    def _name(self) -> str:
        self._serial += 1
        return f"c{self._serial}"

    async def _create(self) -> str:
        name = self._name()
        pool, kind = self.pools[self.rng.randrange(len(self.pools))]
        await self.cluster.claim(self.namespace, name, pool, kind)
        self.stats.creates += 1
        return name

    async def _delete(self, name: str) -> None:
        await self.cluster.delete_claim(self.namespace, name)
        self.stats.deletes += 1

    async def one(self) -> None:
        roll = self.rng.random()
        fill = len(self.live) / self.target_live
        if roll < 0.1:
            await self._delete(await self._create())
            self.stats.flash += 1
        elif roll < 0.2:
            name = await self._create()
            await self._wait_bound(name)
            await self._delete(name)
            self.stats.bound_then_deleted += 1
        elif self.live and self.rng.random() < fill / 2:
            victim = self.live.pop(self.rng.randrange(len(self.live)))
            await self._delete(victim)
        else:
            self.live.append(await self._create())

    async def _wait_bound(self, name: str, within: float = 15.0) -> None:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            claim = await retrying(lambda: self.cluster.client.get(CLAIMS, name, self.namespace))
            status = claim.get("status") or {}
            if status.get("addressRef"):
                return
            if any(c.get("reason") == "PoolExhausted" for c in status.get("conditions") or []):
                return  # it would wait for a release: delete it unbound
            await asyncio.sleep(0.05)

    async def run(self, operations: int) -> None:
        """Run until `operations` more creates+deletes were issued (concurrently, bounded)."""
        goal = self.stats.operations + operations

        async def worker() -> None:
            while self.stats.operations < goal:
                await self.one()

        await asyncio.gather(*(worker() for _ in range(self.concurrency)))
