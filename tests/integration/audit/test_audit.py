"""`incluster-ipam audit` against a real apiserver: planted problems found (exit 1), clean scopes exit 0."""

from __future__ import annotations

import asyncio
import io
import json
import sys
from pathlib import Path
from typing import Any

from incluster_ipam.audit.command import audit_main

from .conftest import Planter

CLI = Path(sys.executable).parent / "incluster-ipam"


async def run_audit(planter: Planter, *args: Any, **kwargs: Any) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    code = await audit_main(planter.kubeconfig, *args, out=out, err=err, **kwargs)
    assert err.getvalue() == ""
    return code, out.getvalue()


async def plant_problems(p: Planter) -> str:
    """One of each finding in a fresh namespace, next to a healthy claim."""
    ns = await p.namespace()
    await p.ip_pool(ns, "pool", addresses=["10.0.0.10-10.0.0.20"], prefix=24, gateway="10.0.0.1")
    await p.bound(ns, "healthy", "10.0.0.15", "pool")
    await p.bound(ns, "dup-a", "10.0.0.10", "pool")  # duplicate: two IPAddresses, one IP
    await p.bound(ns, "dup-b", "10.0.0.10", "pool")
    await p.address(ns, "orphan", "10.0.0.11", "pool", claim="ghost")  # no claim "ghost"
    await p.bound(ns, "far", "10.0.0.99", "pool")  # outside 10.0.0.10-20
    await p.claim(ns, "waiting", "pool")  # nothing binds it: no provider runs here
    return ns


async def test_planted_problems_are_reported_in_text_and_json_with_exit_1(planter: Planter) -> None:
    ns = await plant_problems(planter)

    code, text = await run_audit(planter, ns, grace_seconds=0)
    assert code == 1
    lines = text.splitlines()
    assert lines[0].endswith(
        f"(namespace {ns}, ipam.cluster.x-k8s.io/v1beta2): 1 pools, 5 claims, 5 IPAddresses"
    )
    assert lines[1:] == [
        f"duplicate               10.0.0.10 is held by 2 IPAddresses of InClusterIPPool {ns}/pool: "
        f"IPAddress {ns}/dup-a, IPAddress {ns}/dup-b",
        f"out-of-range            IPAddress {ns}/far is out of range: 10.0.0.99 is not allocatable in "
        f"InClusterIPPool {ns}/pool",
        f"orphaned-address        IPAddress {ns}/orphan (10.0.0.11, InClusterIPPool {ns}/pool) is orphaned: "
        f"its claim IPAddressClaim {ns}/ghost does not exist",
        f"unbound-claim           IPAddressClaim {ns}/waiting is unbound although InClusterIPPool {ns}/pool "
        "has 8 free addresses",  # 10.0.0.10-20 minus .10, .11 and .15
        "4 findings: 1 duplicate, 1 out-of-range, 1 orphaned-address, 1 unbound-claim",
    ]

    code, raw = await run_audit(planter, ns, grace_seconds=0, json_output=True)
    assert code == 1
    body = json.loads(raw)
    assert body["clean"] is False
    assert body["contract"] == "ipam.cluster.x-k8s.io/v1beta2"
    assert body["counts"] == {"duplicate": 1, "out-of-range": 1, "orphaned-address": 1, "unbound-claim": 1}
    subjects = {(f["kind"], f["objects"][0]["name"]) for f in body["findings"]}
    assert subjects == {
        ("duplicate", "dup-a"),
        ("out-of-range", "far"),
        ("orphaned-address", "orphan"),
        ("unbound-claim", "waiting"),
    }
    assert all(
        o["namespace"] == ns for f in body["findings"] for o in f["objects"] if o["kind"] != "InClusterIPPool"
    )

    # The whole cluster (every namespace) includes them too.
    code, text = await run_audit(planter, grace_seconds=0)
    assert code == 1
    assert f"IPAddress {ns}/dup-a, IPAddress {ns}/dup-b" in text
    assert f"IPAddressClaim {ns}/waiting is unbound" in text


async def test_grace_spares_fresh_objects(planter: Planter) -> None:
    ns = await planter.namespace()
    await planter.ip_pool(ns, "pool", addresses=["10.1.0.0/24"], prefix=24)
    await planter.claim(ns, "just-created", "pool")
    await planter.address(ns, "just-orphaned", "10.1.0.9", "pool", claim="ghost")
    code, text = await run_audit(planter, ns)  # default grace: 30 s
    assert (code, text.splitlines()[-1]) == (0, "no findings")
    code, text = await run_audit(planter, ns, grace_seconds=0)
    assert code == 1
    assert text.splitlines()[-1] == "2 findings: 1 orphaned-address, 1 unbound-claim"


async def test_a_clean_namespace_exits_0_through_the_installed_command(planter: Planter) -> None:
    await plant_problems(planter)  # problems elsewhere must not leak into the scoped run
    ns = await planter.namespace()
    await planter.ip_pool(ns, "pool", addresses=["10.2.0.10-10.2.0.11"], prefix=24)
    await planter.bound(ns, "m1", "10.2.0.10", "pool")
    await planter.bound(ns, "m2", "10.2.0.11", "pool")
    await planter.claim(ns, "waits-for-room", "pool")  # the pool is full: not stuck
    await planter.claim(ns, "paused", "pool", annotations={"cluster.x-k8s.io/paused": ""})
    proc = await asyncio.create_subprocess_exec(
        str(CLI),
        "audit",
        "--kubeconfig",
        str(planter.kubeconfig),
        "--namespace",
        ns,
        "--grace-seconds",
        "0",
        "--json",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, stderr.decode()
    body = json.loads(stdout)
    assert (body["clean"], body["findings"], body["namespace"]) == (True, [], ns)
    assert body["scanned"] == {"pools": 1, "claims": 4, "ipAddresses": 2}
