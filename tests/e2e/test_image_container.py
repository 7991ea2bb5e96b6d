"""Our image, built from the repository's Dockerfile (hack/image/build.sh: buildah on a Debian-made base), run
by a real OCI runtime (runc) as the shipped Deployment runs its container, against the real apiserver.

What is the Deployment's is kept: the image's own user and entrypoint, the shipped arguments (from the
release manifest), a read-only root filesystem, no capabilities, no new privileges, the certificate volumes
mounted read-only, the memory limit, the ServiceAccount token with the shipped RBAC, and the in-cluster
configuration (KUBERNETES_SERVICE_HOST/PORT). What differs, because there is no kubelet here: the container
shares the host's network namespace (so it reaches the apiserver on loopback), and the listen addresses are
free loopback ports instead of `:8081`, `:8443` and `:9443` (nothing listens beyond loopback).
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from incluster_ipam.api.constants import IN_CLUSTER_IP_POOL
from incluster_ipam.capi.resources import pool_resource
from incluster_ipam.devcluster import ControlPlane
from incluster_ipam.devcluster.controlplane import free_port
from incluster_ipam.devcluster.process import ManagedProcess, log_tail
from incluster_ipam.kube import KubeClient, Resource
from tests.integration.packaging.conftest import (
    NAMESPACE,
    SERVICE_ACCOUNT,
    Release,
    admin,
    installed_rbac,
    packaging_plane,
    release,
    service_account_token,
    wait_for,
)
from tests.unit.packaging.certs import write_pair

__all__ = ["admin", "installed_rbac", "packaging_plane", "release"]

ROOT = Path(__file__).resolve().parents[2]
IMAGE = "localhost/incluster-ipam:dev"
UID = 65532
POOLS = pool_resource(IN_CLUSTER_IP_POOL)
CLAIMS = Resource("ipam.cluster.x-k8s.io", "v1beta2", "ipaddressclaims", "IPAddressClaim", True)
ADDRESSES = Resource("ipam.cluster.x-k8s.io", "v1beta2", "ipaddresses", "IPAddress", True)
ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"


def _run(*argv: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The image as an OCI runtime bundle (rootfs + config.json from the image's own config), via umoci."""
    built = _run("bash", str(ROOT / "hack" / "image" / "build.sh"), IMAGE, timeout=1800)
    assert built.returncode == 0, f"hack/image/build.sh failed:\n{built.stderr[-3000:]}"
    archive = Path(built.stdout.strip().splitlines()[-1])
    work = tmp_path_factory.mktemp("image")
    layout, bundle = work / "layout", work / "bundle"
    layout.mkdir()
    shutil.unpack_archive(archive, layout, format="tar")
    unpacked = _run("umoci", "unpack", "--image", f"{layout}:{IMAGE}", str(bundle))
    assert unpacked.returncode == 0, f"umoci unpack failed:\n{unpacked.stderr[-2000:]}"
    return bundle


def _shipped_container(release: Release) -> dict[str, Any]:
    (deployment,) = [o for o in release.objects if o["kind"] == "Deployment"]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return dict(container)


def _loopback(args: list[str], ports: dict[str, int]) -> list[str]:
    """The shipped arguments with each listen address moved to a free loopback port."""
    listen = {
        "--health-probe-bind-address": f"127.0.0.1:{ports['health']}",
        "--diagnostics-address": f"127.0.0.1:{ports['diagnostics']}",
        "--webhook-port": str(ports["webhook"]),
    }
    moved = []
    for arg in args:
        flag = arg.partition("=")[0]
        moved.append(f"{flag}={listen[flag]}" if flag in listen else arg)
    return [*moved, "--webhook-host=127.0.0.1"]


@dataclass
class Container:
    """One runc container made from the bundle; runc runs in the foreground and forwards signals to it."""

    id: str
    state_root: Path
    process: ManagedProcess

    def runc(self, *args: str) -> subprocess.CompletedProcess[str]:
        return _run("runc", "--root", str(self.state_root), *args, timeout=60)

    def pid(self) -> int:
        state = self.runc("state", self.id)
        assert state.returncode == 0, state.stderr
        pid: int = json.loads(state.stdout)["pid"]
        return pid


def _container_config(
    bundle: Path, release: Release, host_dirs: dict[str, Path], ports: dict[str, int], apiserver: str
) -> dict[str, Any]:
    config: dict[str, Any] = json.loads((bundle / "config.json").read_text())
    shipped = _shipped_container(release)
    security = shipped["securityContext"]
    process = config["process"]
    # The image's own user and entrypoint; the Deployment's arguments.
    assert process["user"]["uid"] == UID, f"the image runs as {process['user']}, not {UID}"
    assert process["args"] == ["incluster-ipam", "run"], process["args"]
    process["args"] = [*process["args"], *_loopback(shipped["args"], ports)]
    host, port = apiserver.removeprefix("https://").rsplit(":", 1)
    process["env"] = [*process["env"], f"KUBERNETES_SERVICE_HOST={host}", f"KUBERNETES_SERVICE_PORT={port}"]
    process["terminal"] = False
    # securityContext: capabilities drop ALL, allowPrivilegeEscalation false, readOnlyRootFilesystem.
    assert security["capabilities"]["drop"] == ["ALL"]
    assert security["readOnlyRootFilesystem"] is True
    sets = ("bounding", "effective", "inheritable", "permitted", "ambient")
    process["capabilities"] = {name: [] for name in sets}
    process["noNewPrivileges"] = security["allowPrivilegeEscalation"] is False
    config["root"]["readonly"] = True
    # The volumes: the two certificate Secrets (read-only) and the ServiceAccount token.
    mounts = {m["mountPath"]: m for m in shipped["volumeMounts"]}
    for path, source in (*((p, host_dirs[p]) for p in mounts), (ACCOUNT_DIR, host_dirs[ACCOUNT_DIR])):
        config["mounts"].append(
            {"destination": path, "type": "bind", "source": str(source), "options": ["rbind", "ro"]}
        )
    # The host's network namespace (loopback apiserver); everything else stays the container's own.
    linux = config["linux"]
    linux["namespaces"] = [ns for ns in linux["namespaces"] if ns["type"] != "network"]
    limit = shipped["resources"]["limits"]["memory"]
    assert limit.endswith("Mi")
    linux.setdefault("resources", {})["memory"] = {"limit": int(limit[:-2]) * 2**20}
    return config


@pytest.fixture
async def container(
    bundle: Path,
    release: Release,
    packaging_plane: ControlPlane,
    installed_rbac: list[dict[str, Any]],
    tmp_path: Path,
) -> AsyncIterator[tuple[Container, dict[str, int]]]:
    token = await service_account_token(packaging_plane, NAMESPACE, SERVICE_ACCOUNT)
    account = tmp_path / "serviceaccount"
    account.mkdir()
    (account / "token").write_text(token)
    (account / "ca.crt").write_bytes(packaging_plane.ca.cert_pem)
    (account / "namespace").write_text(NAMESPACE)
    host_dirs = {ACCOUNT_DIR: account}
    for mount in _shipped_container(release)["volumeMounts"]:
        directory = tmp_path / mount["name"]
        write_pair(directory, packaging_plane.ca.serving(("127.0.0.1", "localhost")))
        host_dirs[mount["mountPath"]] = directory
    for directory in host_dirs.values():  # readable by the container's user, as a Secret volume is
        for path in (directory, *directory.iterdir()):
            path.chmod(0o755 if path.is_dir() else 0o644)
    ports = {"health": free_port(), "diagnostics": free_port(), "webhook": free_port()}
    config = _container_config(bundle, release, host_dirs, ports, packaging_plane.server)
    (bundle / "config.json").write_text(json.dumps(config))
    state_root = tmp_path / "runc"
    ident = f"ipam-{uuid.uuid4().hex[:8]}"
    argv = ["runc", "--root", str(state_root), "run", "--bundle", str(bundle), ident]
    proc = ManagedProcess("container", argv, tmp_path / "container.log")
    box = Container(ident, state_root, proc)
    await proc.start()
    try:
        yield box, ports
    finally:
        await proc.stop(grace=30)
        box.runc("kill", ident, "KILL")
        box.runc("delete", "--force", ident)


async def _ready(port: int) -> bool:
    try:
        async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}/readyz") as resp:
            return resp.status == 200
    except aiohttp.ClientError:
        return False


def _status_field(pid: int, field: str) -> str:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return line.split(":", 1)[1].strip()
    raise AssertionError(f"no {field} in /proc/{pid}/status")


def _cmdline(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")


def _memory_cgroup(pid: int) -> Path:
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if "memory" in controllers.split(","):
            return Path("/sys/fs/cgroup/memory") / path.lstrip("/")
    raise AssertionError(f"no memory cgroup for {pid}")


async def test_our_image_runs_non_root_read_only_binds_claims_and_drains_on_sigterm(
    container: tuple[Container, dict[str, int]], admin: KubeClient
) -> None:
    box, ports = container
    started = time.monotonic()
    try:
        await wait_for(lambda: _ready(ports["health"]), 90, "the container's /readyz")
    except AssertionError as exc:
        raise AssertionError(f"{exc}\ncontainer log:\n{log_tail(box.process.log_path, 60)}") from None
    ready_after = time.monotonic() - started

    # The provider is the image's entrypoint, as user 65532, with no capabilities.
    pid = box.pid()
    assert _status_field(pid, "Uid").split()[:2] == [str(UID), str(UID)]
    assert _status_field(pid, "Gid").split()[:2] == [str(UID), str(UID)]
    assert int(_status_field(pid, "CapEff"), 16) == 0
    assert int(_status_field(pid, "NoNewPrivs")) == 1
    assert "incluster-ipam" in _status_field(pid, "Name") + " ".join(_cmdline(pid))
    # Nothing in the root filesystem is writable, /tmp included (the Deployment mounts no emptyDir).
    for target in ("/probe", "/tmp/probe", "/opt/venv/probe"):
        touched = box.runc("exec", "--user", f"{UID}:{UID}", box.id, "touch", target)
        assert touched.returncode != 0, (target, touched)
        assert "Read-only file system" in touched.stderr, (target, touched)
    # No build tools in the image.
    pip = box.runc("exec", box.id, "python", "-m", "pip", "--version")
    assert pip.returncode != 0, pip
    assert "No module named pip" in pip.stderr, pip

    # It does its job with the shipped RBAC: claims in a tenant namespace are bound, one address each.
    namespace = f"img-{uuid.uuid4().hex[:6]}"
    await admin.create(
        Resource("", "v1", "namespaces", "Namespace", False),
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}},
    )
    pool = {
        "apiVersion": "ipam.cluster.x-k8s.io/v1alpha2",
        "kind": "InClusterIPPool",
        "metadata": {"name": "pool", "namespace": namespace},
        "spec": {"addresses": ["10.70.0.0/24"], "prefix": 24, "gateway": "10.70.0.1"},
    }
    await admin.create(POOLS, pool, namespace)
    count = 30
    pool_ref = {"apiGroup": "ipam.cluster.x-k8s.io", "kind": "InClusterIPPool", "name": "pool"}
    claim_started = time.monotonic()
    await asyncio.gather(
        *(
            admin.create(
                CLAIMS,
                {
                    "apiVersion": "ipam.cluster.x-k8s.io/v1beta2",
                    "kind": "IPAddressClaim",
                    "metadata": {"name": f"c{i:02d}", "namespace": namespace},
                    "spec": {"poolRef": pool_ref},
                },
                namespace,
            )
            for i in range(count)
        )
    )

    async def all_bound() -> list[str] | None:
        listed = await admin.list(ADDRESSES, namespace)
        items = listed.items
        return [a["spec"]["address"] for a in items] if len(items) == count else None

    try:
        addresses = await wait_for(all_bound, 120, f"{count} IPAddresses")
    except AssertionError as exc:
        raise AssertionError(f"{exc}\ncontainer log:\n{log_tail(box.process.log_path, 60)}") from None
    bound_after = time.monotonic() - claim_started
    expected = {f"10.70.0.{i}" for i in range(2, 2 + count)}  # lowest first, after the gateway
    assert sorted(addresses) == sorted(expected), addresses

    # Memory under the Deployment's limit, as the kernel counts it for the container's cgroup.
    cgroup = _memory_cgroup(pid)
    limit = int((cgroup / "memory.limit_in_bytes").read_text())
    peak = int((cgroup / "memory.max_usage_in_bytes").read_text())
    assert limit == 256 * 2**20, f"the memory limit is not applied to the container ({limit})"
    assert peak < limit

    # SIGTERM (what the kubelet sends) drains well inside terminationGracePeriodSeconds (30 s).
    proc = box.process
    assert proc.running
    term = time.monotonic()
    box.runc("kill", box.id, "TERM")
    raw = proc._proc
    assert raw is not None
    code = await asyncio.wait_for(raw.wait(), 30)
    drained = time.monotonic() - term
    assert code == 0, f"the container exited with {code}:\n{log_tail(proc.log_path, 40)}"
    print(
        f"\nimage in runc: ready in {ready_after:.1f} s; {count} claims bound in {bound_after:.1f} s; "
        f"peak memory {peak / 2**20:.1f} MiB of a {limit / 2**20:.0f} MiB limit; SIGTERM drained in "
        f"{drained:.2f} s"
    )
