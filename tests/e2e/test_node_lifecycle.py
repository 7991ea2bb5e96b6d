"""The node cleans up after itself when its run is interrupted: Ctrl-C (SIGINT) stops it clean, and a run
killed outright (SIGKILL: no cleanup at all, containers and their shims outlive it) is cleaned up by the
next start. Each run is a separate Python process starting `NodeCluster` with one pod running, as a test
session or `make run` would.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from pathlib import Path

import pytest

from incluster_ipam.devcluster.node import NodeCluster

pytestmark = pytest.mark.timeout(1800)

#: A run that starts the node, runs one pod of the sandbox image, prints "ready" with the pod's shim pids and
#: waits to be interrupted.
RUN = r"""
import asyncio, json, sys
from incluster_ipam.devcluster.node import NodeCluster
from incluster_ipam.kube import KubeClient, Resource

PODS = Resource("", "v1", "pods", "Pod", True)
POD = {
    "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "sleeper", "namespace": "default"},
    "spec": {"containers": [{"name": "c", "image": "registry.k8s.io/pause:3.6", "imagePullPolicy": "Never"}]},
}

async def main():
    async with NodeCluster(capi_version=None) as node:
        async with KubeClient.from_kubeconfig(node.kubeconfig_path) as client:
            await client.create(PODS, POD, "default")
            for _ in range(600):
                pod = await client.get(PODS, "sleeper", "default")
                if (pod.get("status") or {}).get("phase") == "Running":
                    break
                await asyncio.sleep(0.1)
            else:
                raise SystemExit("the pod did not run")
        print(json.dumps({"ready": True}), flush=True)
        await asyncio.sleep(3600)

asyncio.run(main())
"""


async def start_run() -> asyncio.subprocess.Process:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", RUN, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    assert proc.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + 900  # waits for the node lock if another test holds it
    while time.monotonic() < deadline:
        raw = await asyncio.wait_for(proc.stdout.readline(), max(1.0, deadline - time.monotonic()))
        if not raw:
            break
        line = raw.decode(errors="replace").rstrip()
        lines.append(line)
        if line.startswith('{"ready"'):
            return proc
    await proc.wait()
    raise AssertionError("the node run did not get ready:\n" + "\n".join(lines[-40:]))


def shims(workdir: Path) -> list[int]:
    """containerd shims of the node (their command line names its socket)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if b"containerd-shim" in cmdline and str(workdir).encode() in cmdline:
                found.append(int(entry.name))
    return found


async def test_ctrl_c_stops_the_node_and_leaves_nothing() -> None:
    proc = await start_run()
    node = NodeCluster()  # the same fixed work directory: only to list what is left
    assert await asyncio.to_thread(shims, node.workdir), "the pod's shim should run"
    began = time.monotonic()
    proc.send_signal(signal.SIGINT)
    await asyncio.wait_for(proc.wait(), 120)
    stopped = time.monotonic() - began
    assert await node.leftovers() == []
    print(json.dumps({"ctrl_c_stop_seconds": round(stopped, 1)}))


async def test_a_killed_run_is_cleaned_up_by_the_next_start() -> None:
    proc = await start_run()
    node = NodeCluster()
    killed_shims = await asyncio.to_thread(shims, node.workdir)
    assert killed_shims
    os.kill(proc.pid, signal.SIGKILL)
    await proc.wait()
    # Nothing ran its cleanup: the shim and its container, mounts, the bridge and the chains are still there.
    left = await node.leftovers()
    assert any(item.startswith("process") for item in left), left
    assert f"interface {node.network.bridge}" in left, left
    began = time.monotonic()
    async with NodeCluster(capi_version=None) as again:
        started = time.monotonic() - began
        assert not set(killed_shims) & set(await asyncio.to_thread(shims, again.workdir))
    assert await node.leftovers() == []
    print(json.dumps({"leftovers_of_killed_run": len(left), "next_start_seconds": round(started, 1)}))
