"""Run in-process providers for the review tests: with leader election on a lease of the test's own
namespace, started and stopped explicitly (exit codes are part of what the tests check)."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import logging
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any

from incluster_ipam.kube import LEASES, ApiError, KubeClient
from incluster_ipam.kube.errors import is_not_found
from incluster_ipam.provider import LEASE_NAME, Options, Provider

from ..faults.helpers import CLAIMS, MAX_RESTARTS, Cluster
from ..support import eventually

#: The HA tests' timings: lease 3 s, renew deadline 2 s, retry 0.5 s.
FAST_ELECTION: dict[str, Any] = {"lease_duration": 3.0, "renew_deadline": 2.0, "retry_period": 0.5}


@dataclass
class Running:
    provider: Provider
    task: asyncio.Task[int]
    stop: asyncio.Event
    #: Restarts after a lost lease (`running(..., restart_on_lost_lease=True)`), as a Deployment would.
    restarts: int = 0

    async def finish(self, within: float = 30.0) -> int:
        self.stop.set()
        return await asyncio.wait_for(self.task, within)

    def describe(self) -> str:
        """Where this provider stands, for a failure message: is it leading, has it exited, and how."""
        provider, task = self.provider, self.task
        elector = provider.elector
        if not task.done():
            outcome = "running"
        elif task.cancelled():
            outcome = "cancelled"
        elif task.exception() is not None:
            outcome = f"failed: {task.exception()!r}"
        else:
            outcome = f"exited {task.result()}"
        return (
            f"provider {provider.options.identity}: {outcome}; leading={provider.leading.is_set()}, "
            f"lease held={elector.is_leader if elector else None}, claims queued={len(provider.queue)}"
        )


class LogTail(logging.Handler):
    """The provider's last warnings and errors, for a failure message."""

    def __init__(self, keep: int = 40) -> None:
        super().__init__(logging.WARNING)
        self.records: collections.deque[str] = collections.deque(maxlen=keep)

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(f"{record.created:.3f} {record.levelname} {record.name}: {record.getMessage()}")

    def text(self) -> str:
        return "\n".join(self.records) or "(no warnings)"


@contextlib.contextmanager
def log_tail() -> Iterator[LogTail]:
    tail = LogTail()
    logger = logging.getLogger("incluster_ipam")
    logger.addHandler(tail)
    try:
        yield tail
    finally:
        logger.removeHandler(tail)


def options(**overrides: Any) -> Options:
    settings: dict[str, Any] = {
        "webhook_port": 0,
        "health_address": "0",
        "metrics_address": "0",
        "status_interval": 0.05,
    }
    settings.update(overrides)
    return Options(**settings)


def elected(namespace: str, identity: str, **overrides: Any) -> Options:
    return options(
        leader_elect=True,
        leader_election_namespace=namespace,
        identity=identity,
        **FAST_ELECTION,
        **overrides,
    )


async def _supervise(run: Running, client: KubeClient, opts: Options, provider_kw: dict[str, Any]) -> None:
    """Start the replica again, under a new identity (as a new pod), each time it exits for a lost lease
    while not asked to stop: a replica whose renewals time out on a starved machine must exit."""
    while run.restarts < MAX_RESTARTS:
        code = await asyncio.shield(run.task)
        if run.stop.is_set() or code != 1 or not run.provider.lost_leadership:
            return
        run.restarts += 1
        identity = f"{opts.identity}-r{run.restarts}"
        print(f"{opts.identity}: lost its lease and exited; restarted as {identity}", file=sys.stderr)
        await asyncio.sleep(0.5)
        if run.stop.is_set():
            return
        run.provider = Provider(client, dataclasses.replace(opts, identity=identity), **provider_kw)
        run.task = asyncio.create_task(run.provider.run(run.stop), name=f"provider-{identity}")


@contextlib.asynccontextmanager
async def running(
    client: KubeClient, opts: Options, *, restart_on_lost_lease: bool = False, **provider_kw: Any
) -> AsyncIterator[Running]:
    provider = Provider(client, opts, **provider_kw)
    stop = asyncio.Event()
    task = asyncio.create_task(provider.run(stop), name=f"provider-{opts.identity or 'single'}")
    run = Running(provider, task, stop)
    supervisor = (
        asyncio.create_task(_supervise(run, client, opts, provider_kw)) if restart_on_lost_lease else None
    )
    try:
        yield run
    finally:
        stop.set()
        if supervisor is not None:
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(supervisor, 30)
        with contextlib.suppress(BaseException):
            await asyncio.wait_for(run.task, 30)


async def lease_spec(client: KubeClient, namespace: str) -> dict[str, Any]:
    try:
        lease = await client.get(LEASES, LEASE_NAME, namespace)
    except ApiError as exc:
        if is_not_found(exc):
            return {}
        raise
    return dict(lease.get("spec") or {})


async def wait_holder(
    client: KubeClient, namespace: str, identity: str | Callable[[], str], within: float = 30.0
) -> None:
    """Until `identity` (or, for a replica that may be restarted under a new one, what it returns now) holds
    the lease."""

    async def holds() -> bool:
        wanted = identity() if callable(identity) else identity
        return (await lease_spec(client, namespace)).get("holderIdentity") == wanted

    await eventually(holds, within, f"{identity} to hold the lease")


async def bound_address(cluster: Cluster, namespace: str, name: str) -> str | None:
    """The address of the claim's IPAddress once the claim points at it, else None."""
    claim = await cluster.client.get(CLAIMS, name, namespace)
    ref = ((claim.get("status") or {}).get("addressRef") or {}).get("name")
    if not ref:
        return None
    for address in await cluster.addresses(namespace):
        if address["metadata"]["name"] == ref:
            return str(address["spec"]["address"])
    return None


async def wait_bound(cluster: Cluster, namespace: str, name: str, within: float = 20.0) -> str:
    async def probe() -> str | None:
        return await bound_address(cluster, namespace, name)

    return await eventually(probe, within, f"claim {namespace}/{name} to be bound")


async def ready_condition(cluster: Cluster, namespace: str, name: str) -> dict[str, Any] | None:
    claim = await cluster.client.get(CLAIMS, name, namespace)
    for condition in (claim.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Ready":
            return dict(condition)
    return None


def monotonic() -> float:
    return time.monotonic()
