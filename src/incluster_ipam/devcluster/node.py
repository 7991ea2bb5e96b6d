"""A control plane with one real node: containerd, runc and CNI from Debian's packages; kubelet,
kube-scheduler, kube-proxy and kube-controller-manager from the pinned module; pods on a bridge of ours.

Everything lives under one fixed work directory (`NODE_DIR`, one node per machine, held by a lock), so a run
that was killed is cleaned up by the next one: container processes (through runc's state), shims, mounts,
network namespaces, the bridge, the Service route, kube-proxy's chains and our firewall rule. `stop` does
the same, also after a failed start. What the daemons are told is built in `nodeconfig` (pure).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import json
import os
import shlex
import shutil
import signal
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from .assets import CURRENT_CAPI, Assets, AssetsError, cached_build, ensure_assets
from .controlplane import ControlPlane, ControlPlaneError, free_port
from .nodeconfig import (
    NODE_CONTROLLERS,
    NODE_NAME,
    RESOLV_CONF,
    RULE_COMMENT,
    ContainerdPaths,
    KubeletFiles,
    NodeNetwork,
    cni_config,
    containerd_config,
    firewall_rules,
    jumps_into_kube_chain,
    kube_proxy_config,
    kubelet_argv,
    kubelet_config,
    scheduler_argv,
)
from .process import Lifecycle, ManagedProcess, ProcessError

NODE_DIR = Path(os.environ.get("INCLUSTER_IPAM_NODE_DIR", "/var/tmp/incluster-ipam-node"))
NODE_USER = f"system:node:{NODE_NAME}"


class NodeError(RuntimeError):
    """The node could not be set up, or a command it runs failed."""


async def run(*argv: str, check: bool = True, limit: float = 120.0) -> str:
    """Run a command to completion (bounded), returning its stdout; a failure names the command."""
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), limit)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise NodeError(f"{' '.join(argv)} did not finish within {limit:.0f} s") from None
    if check and proc.returncode != 0:
        raise NodeError(
            f"{' '.join(argv)} failed ({proc.returncode}): {err.decode(errors='replace').strip()}"
        )
    return out.decode(errors="replace")


class NodeCluster(Lifecycle):
    """`ControlPlane` (with the controller manager and the node's controllers) plus one Ready node whose
    containerd has `images` (OCI archives) imported; an async context manager."""

    def __init__(
        self,
        assets: Assets | None = None,
        *,
        images: Sequence[Path] = (),
        network: NodeNetwork | None = None,
        capi_version: str | None = CURRENT_CAPI,
        extra_crds: Iterable[Mapping[str, Any]] = (),
        workdir: Path = NODE_DIR,
        start_timeout: float = 120.0,
    ) -> None:
        self._assets = assets
        self._images = list(images)
        self.network = network or NodeNetwork()
        self._capi_version = capi_version
        self._extra_crds = list(extra_crds)
        self.workdir = workdir
        self._start_timeout = start_timeout
        self._lock_fd: int | None = None
        self.control_plane: ControlPlane | None = None
        self.containerd: ManagedProcess | None = None
        self.scheduler: ManagedProcess | None = None
        self.kube_proxy: ManagedProcess | None = None
        self.kubelet: ManagedProcess | None = None
        self.paths = ContainerdPaths(
            root=workdir / "containerd" / "root",
            state=workdir / "containerd" / "state",
            socket=workdir / "containerd" / "containerd.sock",
            runc_root=workdir / "containerd" / "runc",
            cni_conf_dir=workdir / "cni" / "net.d",
        )
        self.timings: dict[str, float] = {}

    @property
    def kubeconfig_path(self) -> Path:
        assert self.control_plane is not None
        return self.control_plane.kubeconfig_path

    # ---- lifecycle -------------------------------------------------------------------------------

    async def start(self) -> None:
        started = time.monotonic()
        await self._lock()
        if self._assets is None:
            self._assets = await ensure_assets()
        node_assets = await cached_build("hack/node/build.sh", "INCLUSTER_IPAM_NODE_ASSETS")
        for name in ("kubelet", "kube-scheduler", "kube-proxy", "kube-controller-manager"):
            if not os.access(self._assets.root / "bin" / name, os.X_OK):
                raise AssetsError(
                    f"{name} is missing from {self._assets.root}: run hack/controlplane/build.sh"
                )
        await self._clean()  # whatever a killed run left behind (raises if a mount could not go)
        shutil.rmtree(self.workdir, ignore_errors=True)  # and its state: every run starts empty
        self.workdir.mkdir(parents=True, exist_ok=True)
        await self._network_up()
        self._step(started, "network")
        self.control_plane = ControlPlane(
            self._assets,
            capi_version=self._capi_version,
            extra_crds=self._extra_crds,
            workdir=self.workdir / "control-plane",
            start_timeout=self._start_timeout,
            controller_manager=True,
            controllers=NODE_CONTROLLERS,
            node=self.network,
        )
        await self.control_plane.start()
        self._step(started, "control plane")
        await self._start_containerd()
        await self.import_images([node_assets / "pause.oci.tar", *self._images])
        self._step(started, "containerd and images")
        await self._start_scheduler()
        await self._start_kubelet()  # kube-proxy waits for its Node object to exist
        await self._start_kube_proxy()
        await self._firewall_first()
        await self._wait_node_ready()
        self._step(started, "node ready")

    def _step(self, started: float, name: str) -> None:
        self.timings[name] = round(time.monotonic() - started, 2)

    async def stop(self) -> None:
        """Stop everything and leave nothing behind; safe after a failed start and twice."""
        for proc in (self.kubelet, self.scheduler):
            if proc is not None:
                await proc.stop()
        await self._clean()
        if self.control_plane is not None:
            await self.control_plane.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)
        self._unlock()

    async def _lock(self) -> None:
        """One node per machine (the bridge and the work directory are fixed): wait for the lock, bounded."""
        self.workdir.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(f"{self.workdir}.lock", os.O_CREAT | os.O_RDWR, 0o600)
        deadline = time.monotonic() + 1800
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES) or time.monotonic() > deadline:
                    os.close(fd)
                    raise NodeError(f"another node holds {self.workdir}.lock") from exc
                await asyncio.sleep(1)
        self._lock_fd = fd

    def _unlock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    # ---- network -----------------------------------------------------------------------------------

    async def _network_up(self) -> None:
        """Our bridge with the node address (the apiserver binds to it before any pod exists), the Service
        range routed into the bridge (so a Service address kube-proxy has not rewritten yet goes nowhere
        rather than out of the machine), and the firewall rule."""
        net = self.network
        await run("ip", "link", "add", net.bridge, "type", "bridge")
        await run("ip", "addr", "add", f"{net.gateway}/{net.pod_subnet.prefixlen}", "dev", net.bridge)
        await run("ip", "link", "set", net.bridge, "up")
        await run("ip", "route", "add", str(net.service_subnet), "dev", net.bridge)
        for rule in firewall_rules(net):
            await run("iptables", "-I", *rule)

    async def _firewall_first(self) -> None:
        """kube-proxy puts its jumps at the top of FORWARD; put our drop rule back above them (kube-proxy only
        adds a jump that is missing, so ours stays first)."""
        for rule in firewall_rules(self.network):
            await run("iptables", "-D", *rule)
            await run("iptables", "-I", *rule)

    async def _network_down(self) -> None:
        net = self.network
        listing = await run("iptables", "-S", "FORWARD", check=False)
        for line in listing.splitlines():
            if RULE_COMMENT in line and line.startswith("-A "):
                await run("iptables", "-D", *shlex.split(line[3:]), check=False)
        await run("ip", "route", "del", str(net.service_subnet), "dev", net.bridge, check=False)
        await run("ip", "link", "del", net.bridge, check=False)

    # ---- daemons -----------------------------------------------------------------------------------

    def _log(self, name: str) -> Path:
        return self.workdir / "logs" / f"{name}.log"

    async def _start_containerd(self) -> None:
        for directory in (self.paths.root, self.paths.state, self.paths.runc_root, self.paths.cni_conf_dir):
            directory.mkdir(parents=True, exist_ok=True)
        config = self.workdir / "containerd" / "config.toml"
        config.write_text(containerd_config(self.paths))
        conflist = cni_config(self.network, self.workdir / "cni" / "ipam")
        (self.paths.cni_conf_dir / "10-incluster-ipam.conflist").write_text(json.dumps(conflist, indent=2))
        self.containerd = ManagedProcess(
            "containerd", ["containerd", f"--config={config}"], self._log("containerd")
        )
        await self.containerd.start()
        deadline = time.monotonic() + self._start_timeout
        while True:
            self.containerd.check_alive()
            if self.paths.socket.exists():
                with contextlib.suppress(NodeError):
                    await self.ctr("version", limit=10)
                    return
            if time.monotonic() > deadline:
                raise self.containerd.failure("did not answer on its socket in time")
            await asyncio.sleep(0.1)

    async def ctr(self, *args: str, limit: float = 120.0) -> str:
        """containerd's own client on our socket, in the CRI's namespace."""
        return await run("ctr", f"--address={self.paths.socket}", "--namespace=k8s.io", *args, limit=limit)

    async def import_images(self, archives: Iterable[Path]) -> None:
        """Put OCI archives into containerd (the kubelet then finds them; nothing is ever pulled)."""
        for archive in archives:
            if not archive.is_file():
                raise AssetsError(f"image archive {archive} is missing")
            await self.ctr("images", "import", str(archive), limit=600)

    def _component_kubeconfig(self, name: str, user: str, groups: tuple[str, ...]) -> Path:
        assert self.control_plane is not None
        pki = self.workdir / "pki"
        pki.mkdir(parents=True, exist_ok=True)
        pair = self.control_plane.ca.client(user, groups)
        cert, key = pki / f"{name}.crt", pki / f"{name}.key"
        cert.write_bytes(pair.cert_pem)
        key.write_bytes(pair.key_pem)
        key.chmod(0o600)
        path = self.workdir / f"{name}.kubeconfig"
        self.control_plane.write_kubeconfig_for(path, user, cert, key)
        return path

    async def _start_scheduler(self) -> None:
        assert self._assets is not None
        kubeconfig = self._component_kubeconfig("scheduler", "system:kube-scheduler", ("system:masters",))
        port = free_port()
        argv = scheduler_argv(self._assets.root / "bin" / "kube-scheduler", kubeconfig, port=port)
        self.scheduler = ManagedProcess("kube-scheduler", argv, self._log("kube-scheduler"))
        await self.scheduler.start()
        await self._wait_http(self.scheduler, f"https://127.0.0.1:{port}/healthz")

    async def _start_kube_proxy(self) -> None:
        assert self._assets is not None
        kubeconfig = self._component_kubeconfig("kube-proxy", "system:kube-proxy", ("system:masters",))
        healthz, metrics = free_port(), free_port()
        config = self.workdir / "kube-proxy.yaml"
        config.write_text(
            yaml.safe_dump(
                kube_proxy_config(self.network, kubeconfig, healthz_port=healthz, metrics_port=metrics)
            )
        )
        argv = [str(self._assets.root / "bin" / "kube-proxy"), f"--config={config}", "--v=1"]
        self.kube_proxy = ManagedProcess("kube-proxy", argv, self._log("kube-proxy"))
        await self.kube_proxy.start()
        await self._wait_http(self.kube_proxy, f"http://127.0.0.1:{healthz}/healthz")

    async def _start_kubelet(self) -> None:
        assert self._assets is not None
        assert self.control_plane is not None
        kubeconfig = self._component_kubeconfig("kubelet", NODE_USER, ("system:nodes",))
        files = KubeletFiles(
            kubeconfig=kubeconfig,
            config=self.workdir / "kubelet.yaml",
            client_ca=self.control_plane.ca_file,
            root_dir=self.workdir / "kubelet",
            pod_logs_dir=self.workdir / "pod-logs",
            resolv_conf=self.workdir / "resolv.conf",
            containerd_socket=self.paths.socket,
        )
        files.resolv_conf.write_text(RESOLV_CONF)
        healthz = free_port()
        config = kubelet_config(
            self.network, files, port=free_port(self.network.gateway), healthz_port=healthz
        )
        files.config.write_text(yaml.safe_dump(config))
        argv = kubelet_argv(self._assets.root / "bin" / "kubelet", files, self.network)
        self.kubelet = ManagedProcess("kubelet", argv, self._log("kubelet"))
        await self.kubelet.start()
        await self._wait_http(self.kubelet, f"http://127.0.0.1:{healthz}/healthz")

    async def _wait_http(self, proc: ManagedProcess, url: str) -> None:
        assert self.control_plane is not None
        await self.control_plane.wait_http(proc, url, ssl_context=None)

    async def _wait_node_ready(self) -> None:
        assert self.control_plane is not None
        assert self.kubelet is not None
        deadline = time.monotonic() + self._start_timeout
        conditions: list[dict[str, Any]] = []
        async with self.control_plane.session() as http:
            while True:
                self.kubelet.check_alive()
                async with http.get(f"/api/v1/nodes/{NODE_NAME}") as resp:
                    if resp.status == 200:
                        node = await resp.json()
                        conditions = (node.get("status") or {}).get("conditions") or []
                        taints = (node.get("spec") or {}).get("taints") or []
                        ready = any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)
                        if ready and not taints:
                            return
                if time.monotonic() > deadline:
                    raise self.kubelet.failure(
                        f"node {NODE_NAME} was not Ready within the deadline: {conditions}"
                    )
                await asyncio.sleep(0.2)

    # ---- cleanup -------------------------------------------------------------------------------------

    async def _clean(self) -> None:
        """Remove every trace of a node under `workdir` (this run's or a killed one's): containers, shims,
        containerd, kube-proxy and its chains, mounts, the network. Each step runs even if one before
        failed; the first failure is raised at the end."""
        errors: list[BaseException] = []

        async def step(coro: Any) -> None:
            began = time.monotonic()
            try:
                await coro
            except (NodeError, ProcessError, OSError, ControlPlaneError) as exc:
                errors.append(exc)
            name = coro.__qualname__.rsplit(".", 1)[-1]
            self.timings[f"clean {name}"] = round(
                self.timings.get(f"clean {name}", 0) + time.monotonic() - began, 2
            )

        if self.kubelet is not None:
            await step(self.kubelet.stop())
        await step(self._kill_containers())
        if self.containerd is not None:
            await step(self.containerd.stop())
        await step(self._kill_strays())
        await step(self._kill_containers())  # a shim that died left its container to runc's state alone
        if self.kube_proxy is not None:
            await step(self.kube_proxy.stop())
        await step(self._remove_kube_chains())
        await step(self._unmount())
        await step(self._network_down())
        await step(self._remove_cgroups())
        await step(self._remove_container_log_links())
        if errors:
            raise NodeError(f"node cleanup failed: {errors[0]}") from errors[0]

    async def _remove_kube_chains(self) -> None:
        """kube-proxy's and the kubelet's iptables chains (`KUBE-*`, IPv4 and IPv6): this machine runs no
        Kubernetes of its own, so every such chain is the node's. Flush them, drop the jumps into them,
        delete them."""
        for tool in ("iptables", "ip6tables"):
            if shutil.which(tool) is None:
                continue
            for table in ("filter", "nat", "mangle"):
                listing = await run(tool, "-t", table, "-S", check=False)
                chains = [line.split()[1] for line in listing.splitlines() if line.startswith("-N KUBE-")]
                for chain in chains:
                    await run(tool, "-t", table, "-F", chain, check=False)
                for line in listing.splitlines():
                    words = shlex.split(line)
                    if jumps_into_kube_chain(words):
                        await run(tool, "-t", table, "-D", *words[1:], check=False)
                for chain in chains:
                    await run(tool, "-t", table, "-X", chain, check=False)

    async def leftovers(self) -> list[str]:
        """What of a node is still on the machine (empty after `stop`): processes naming the work directory,
        mounts under it, the bridge and its route, `KUBE-*` chains, our firewall rule."""
        found = [f"process {pid}" for pid in await asyncio.to_thread(_pids_naming, str(self.workdir))]
        found += [f"mount {m}" for m in await asyncio.to_thread(_mounts_under, str(self.workdir) + "/")]
        links = await run("ip", "-o", "link", "show", check=False)
        found += [
            f"interface {self.network.bridge}"
            for line in links.splitlines()
            if f" {self.network.bridge}:" in line
        ]
        routes = await run("ip", "route", "show", str(self.network.service_subnet), check=False)
        found += [f"route {line}" for line in routes.splitlines() if line.strip()]
        for tool in ("iptables", "ip6tables"):
            for table in ("filter", "nat", "mangle"):
                listing = await run(tool, "-t", table, "-S", check=False)
                found += [
                    f"{tool} {table}: {line}"
                    for line in listing.splitlines()
                    if "KUBE-" in line or RULE_COMMENT in line
                ]
        return found

    async def _kill_containers(self) -> None:
        """Every container runc knows under our state, killed and deleted (even without containerd)."""
        if not self.paths.runc_root.is_dir():
            return
        for namespace_root in sorted(self.paths.runc_root.iterdir()):
            listing = await run("runc", f"--root={namespace_root}", "list", "--format=json", check=False)
            for container in json.loads(listing or "null") or []:
                cid = container["id"]
                await run("runc", f"--root={namespace_root}", "kill", cid, "KILL", check=False)
                await run("runc", f"--root={namespace_root}", "delete", "--force", cid, check=False)

    async def _kill_strays(self) -> None:
        """Shims (and anything else) whose command line names our containerd, e.g. after a crash."""
        for pid in await asyncio.to_thread(_pids_naming, str(self.workdir / "containerd")):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)

    async def _unmount(self) -> None:
        """Mounts under the work directory (overlay snapshots, network namespaces, pod volumes),
        deepest first."""
        prefix = str(self.workdir) + "/"
        for _attempt in range(3):
            mounts = await asyncio.to_thread(_mounts_under, prefix)
            if not mounts:
                return
            for mount in sorted(set(mounts), key=len, reverse=True):
                await run("umount", "--lazy", mount, check=False)
        raise NodeError(f"mounts left under {self.workdir}")

    async def _remove_cgroups(self) -> None:
        await asyncio.to_thread(_remove_empty_cgroups)

    async def _remove_container_log_links(self) -> None:
        await asyncio.to_thread(_remove_log_links, self.workdir)


def _pids_naming(marker: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if marker.encode() in cmdline:
            found.append(int(entry.name))
    return found


def _mounts_under(prefix: str) -> list[str]:
    mounts = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4]
        if point.startswith(prefix):
            mounts.append(point)
    return mounts


def _remove_empty_cgroups() -> None:
    """The containers' empty cgroups (cgroup v1, cgroupfs driver: one directory per pod or container in
    each controller under `k8s.io`, as containerd names them)."""
    for controller in Path("/sys/fs/cgroup").iterdir():
        base = controller / "k8s.io"
        if not base.is_dir():
            continue
        for directory in sorted(base.rglob("*"), key=lambda p: len(p.parts), reverse=True):
            if directory.is_dir():
                with contextlib.suppress(OSError):
                    directory.rmdir()
        with contextlib.suppress(OSError):
            base.rmdir()


def _remove_log_links(workdir: Path) -> None:
    """The kubelet links every container's log into /var/log/containers (a path it does not let us
    change); drop the links that point into our work directory."""
    links = Path("/var/log/containers")
    if not links.is_dir():
        return
    for link in links.iterdir():
        with contextlib.suppress(OSError):
            if link.is_symlink() and os.readlink(link).startswith(str(workdir)):
                link.unlink()
