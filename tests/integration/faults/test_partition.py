"""A live leader that loses the Lease but not the data path (the December review's scenario 1).

`test_failover.py` only SIGKILLs leaders, and a dead process writes nothing; the dangerous case is a leader
that is alive, whose renewals hang while its other requests still work. Two in-process providers (lease
3 s, renew deadline 2 s, retry 0.5 s); from one moment on, every Lease call of the leader A hangs for 20 s
while its claims and IPAddresses go through. 200 claims are created over 2 s against a 60-address pool and
a /24 pool. Then:

(a) A sends no IPAddress create after the moment its leadership stopped being certain (the start of its
    last successful renewal plus the renew deadline);
(b) B acquires the lease no earlier than A's last renewTime plus the lease duration;
(c) no address is ever held twice, and the invariants settle.

(The stalled-loop variant is tests/integration/review/test_finding_04_stalled_leader.py, the slow-GET one
tests/integration/review/test_finding_06_lease_timing.py.)
"""

from __future__ import annotations

import asyncio
import datetime
import time

from ..review.doctored import DoctoredClient
from ..review.harness import LogTail, elected, lease_spec, log_tail, running, wait_holder
from . import invariants
from .helpers import ADDRESSES, Cluster, bounded_gather

HANG = 20.0


def epoch(micro_time: str) -> float:
    parsed = datetime.datetime.strptime(micro_time, "%Y-%m-%dT%H:%M:%S.%fZ")
    return parsed.replace(tzinfo=datetime.UTC).timestamp()


async def test_a_leader_whose_lease_calls_hang_stops_writing_in_time(cluster: Cluster) -> None:
    ns = await cluster.namespace("partition")
    await cluster.pool("InClusterIPPool", "small", ns, addresses=["10.140.0.1-10.140.0.60"], prefix=24)
    await cluster.pool("InClusterIPPool", "big", ns, addresses=["10.141.0.0/24"], prefix=24)
    a_data = DoctoredClient(cluster.plane.kubeconfig_path)
    a_lease = DoctoredClient(cluster.plane.kubeconfig_path)
    b_data = DoctoredClient(cluster.plane.kubeconfig_path)
    hanging = asyncio.Event()

    async def hang(method: str, plural: str, _: str) -> None:
        if plural == "leases" and hanging.is_set():
            await asyncio.sleep(HANG)

    a_lease.hooks.append(hang)
    certain_until: list[float] = []  # A's leadership deadline, in wall-clock time, sampled
    with log_tail() as tail:
        await _partition(cluster, ns, a_data, a_lease, b_data, hanging, certain_until, tail)


async def _partition(  # noqa: PLR0917 (the set-up of the test above, handed over whole)
    cluster: Cluster,
    ns: str,
    a_data: DoctoredClient,
    a_lease: DoctoredClient,
    b_data: DoctoredClient,
    hanging: asyncio.Event,
    certain_until: list[float],
    tail: LogTail,
) -> None:
    loop = asyncio.get_running_loop()
    async with (
        a_data,
        a_lease,
        b_data,
        invariants.AddressMonitor(cluster.client, ADDRESSES, ns) as monitor,
        running(a_data, elected(ns, "a"), lease_client=a_lease) as a,
    ):
        await wait_holder(cluster.client, ns, "a")
        await asyncio.wait_for(a.provider.leading.wait(), 30)
        # B is restarted if it, too, loses the lease (its renewals time out when the machine is starved),
        # as its Deployment would: then someone still leads and the invariants can settle.
        async with running(b_data, elected(ns, "b"), restart_on_lost_lease=True) as b:

            async def sample() -> None:
                while True:
                    elector = a.provider.elector
                    if elector is not None and elector.valid_until > -1e18:
                        certain_until.append(time.time() - (loop.time() - elector.valid_until))
                    await asyncio.sleep(0.01)

            sampler = asyncio.create_task(sample())
            try:
                last_renew = epoch((await lease_spec(cluster.client, ns))["renewTime"])
                hanging.set()
                names = [(f"s{i}", "small") if i % 2 else (f"b{i}", "big") for i in range(200)]

                async def create(name: str, pool: str) -> None:
                    await asyncio.sleep(2.0 * len(created) / len(names))
                    created.append(name)
                    await cluster.claim(ns, name, pool)

                created: list[str] = []
                await bounded_gather((create(n, p) for n, p in names), limit=40)
                await asyncio.wait_for(a.task, 30)
                await asyncio.wait_for(b.provider.leading.wait(), 30)
                spec = await lease_spec(cluster.client, ns)
                assert str(spec["holderIdentity"]).startswith("b"), spec
                deadline = max(certain_until)
                late = [s for s in a_data.sent_to("create", "ipaddresses") if s.at > deadline]
                assert not late, f"A sent {len(late)} creates after its leadership ended: {late[:3]}"
                acquired = epoch(spec["acquireTime"])
                assert acquired >= last_renew + 3.0 - 0.05, (acquired, last_renew)
                try:
                    verdict = await invariants.settle(cluster.client, ns, within=90, monitor=monitor)
                except invariants.InvariantViolation as exc:
                    states = f"{a.describe()}\n{b.describe()}\nlast warnings:\n{tail.text()}"
                    raise invariants.InvariantViolation(f"{exc}\n{states}") from None
                monitor.assert_clean()
                sent = len(a_data.sent_to("create", "ipaddresses"))
                print(
                    f"partition: A sent {sent} creates, none after its deadline; B took over "
                    f"{acquired - last_renew:.2f} s after A's last renewal (B restarted {b.restarts} times "
                    f"after losing the lease itself); {invariants.summary(verdict)}"
                )
                assert a.task.result() == 1
                assert await b.finish() == 0
            finally:
                sampler.cancel()
