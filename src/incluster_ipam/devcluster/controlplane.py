"""A real local control plane (etcd + kube-apiserver on loopback) for tests, benchmarks and the dev run.

Start-up follows envtest: throwaway PKI, free loopback ports, readiness probes, an admin identity in
system:masters, then CRDs installed and waited on until they are Established and served by discovery.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import shutil
import socket
import ssl
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from .assets import CURRENT_CAPI, Assets, AssetsError, ensure_assets
from .controllermanager import (
    CONTROLLER_MANAGER_USER,
    DEFAULT_CONTROLLERS,
    ControllerManagerFiles,
    controller_manager_argv,
)
from .nodeconfig import NodeNetwork, apiserver_node_args, serving_hosts
from .pki import CertificateAuthority, service_account_keys
from .process import Lifecycle, ManagedProcess, ProcessError

ADMIN_USER = "incluster-ipam-admin"
HOST = "127.0.0.1"


class ControlPlaneError(RuntimeError):
    """The control plane could not be started or configured."""


def free_port(host: str = HOST) -> int:
    """A port that was free a moment ago (racy by nature, as envtest's; start-up retries on a clash)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


class ControlPlane(Lifecycle):
    """etcd and kube-apiserver on 127.0.0.1 with a temp data dir, usable as an async context manager.

    `crds` are installed after start; `capi_version` selects which Cluster API release's CRDs are
    installed (None: none). With `controller_manager`, kube-controller-manager runs too (`controllers`, by
    default the garbage collector and the namespace controller), started after the CRDs are installed and
    ready once the garbage collector has collected a probe object.

    With `node` (a `NodeNetwork` whose bridge exists), the apiserver serves a real node
    (`devcluster.node.NodeCluster`): it listens and advertises on the bridge's address, authorizes the
    kubelet as a node, admits ServiceAccounts and publishes the `kubernetes` Service's endpoint.
    """

    def __init__(
        self,
        assets: Assets | None = None,
        *,
        capi_version: str | None = CURRENT_CAPI,
        extra_crds: Iterable[Mapping[str, Any]] = (),
        workdir: Path | None = None,
        kubeconfig_path: Path | None = None,
        start_timeout: float = 90.0,
        controller_manager: bool = False,
        controllers: Sequence[str] = DEFAULT_CONTROLLERS,
        node: NodeNetwork | None = None,
    ) -> None:
        self._assets = assets
        self.node = node
        #: Where kube-apiserver listens: loopback, or the pod bridge's address for a node.
        self.host = node.gateway if node else HOST
        self._capi_version = capi_version
        self._extra_crds = [dict(crd) for crd in extra_crds]
        self._own_workdir = workdir is None
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="incluster-ipam-cp-"))
        self.kubeconfig_path = kubeconfig_path or self.workdir / "kubeconfig"
        self._start_timeout = start_timeout
        self.etcd: ManagedProcess | None = None
        self.apiserver: ManagedProcess | None = None
        self.controller_manager: ManagedProcess | None = None
        self._with_controller_manager = controller_manager
        self._controllers = tuple(controllers)
        self.controller_manager_seconds = 0.0
        self.etcd_url = ""
        self.server = ""
        self.ca_file = self.workdir / "pki" / "ca.crt"
        self.admin_cert_file = self.workdir / "pki" / "admin.crt"
        self.admin_key_file = self.workdir / "pki" / "admin.key"
        self.startup_seconds = 0.0

    # ---- lifecycle -------------------------------------------------------------------------------

    async def start(self) -> None:
        started = time.monotonic()
        if self._assets is None:
            self._assets = await ensure_assets()
        self._write_pki()
        await self._start_etcd()
        await self._start_apiserver()
        self._write_kubeconfig()
        crds = list(self._assets.capi_crds(self._capi_version)) if self._capi_version else []
        await self.install_crds([*crds, *self._extra_crds])
        if self._with_controller_manager:
            await self._start_controller_manager()
        self.startup_seconds = time.monotonic() - started

    async def stop(self) -> None:
        """Stop the processes (controller manager, apiserver, etcd) and remove the temp dir; safe to call
        twice."""
        for proc in (self.controller_manager, self.apiserver, self.etcd):
            if proc is not None:
                await proc.stop()
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    async def restart_apiserver(self) -> None:
        """Stop and start kube-apiserver on the same port and etcd (for fault tests)."""
        assert self.apiserver is not None
        await self.apiserver.stop()
        await self.apiserver.start()
        await self._wait_apiserver_ready(self.apiserver)

    # ---- PKI and kubeconfig ------------------------------------------------------------------------

    def _write_pki(self) -> None:
        pki = self.workdir / "pki"
        pki.mkdir(parents=True, exist_ok=True)
        ca = CertificateAuthority()
        serving = ca.serving(
            serving_hosts(self.node, (HOST, "localhost")) if self.node else (HOST, "localhost")
        )
        admin = ca.client(ADMIN_USER, ("system:masters",))
        # Its own identity; in system:masters because with one identity for every controller the
        # garbage collector must delete any kind (a real cluster gives it a service account instead).
        controllers = ca.client(CONTROLLER_MANAGER_USER, ("system:masters",))
        service_accounts = service_account_keys()
        files = {
            "ca.crt": ca.cert_pem,
            "serving.crt": serving.cert_pem,
            "serving.key": serving.key_pem,
            "admin.crt": admin.cert_pem,
            "admin.key": admin.key_pem,
            "controller-manager.crt": controllers.cert_pem,
            "controller-manager.key": controllers.key_pem,
            "kubelet-client.crt": admin.cert_pem,
            "kubelet-client.key": admin.key_pem,
            "sa.pub": service_accounts.cert_pem,
            "sa.key": service_accounts.key_pem,
        }
        for name, data in files.items():
            path = pki / name
            path.write_bytes(data)
            path.chmod(0o600)
        self._ca = ca

    @property
    def ca(self) -> CertificateAuthority:
        """The CA that signed the apiserver's serving cert and trusts client certs (reuse it for webhooks)."""
        return self._ca

    def _write_kubeconfig(self) -> None:
        self.write_kubeconfig_for(self.kubeconfig_path, ADMIN_USER, self.admin_cert_file, self.admin_key_file)

    def write_kubeconfig_for(self, path: Path, user: str, cert_file: Path, key_file: Path) -> None:
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "incluster-ipam-dev",
                    "cluster": {
                        "server": self.server,
                        "certificate-authority-data": _b64(self.ca_file.read_bytes()),
                    },
                }
            ],
            "users": [
                {
                    "name": user,
                    "user": {
                        "client-certificate-data": _b64(cert_file.read_bytes()),
                        "client-key-data": _b64(key_file.read_bytes()),
                    },
                }
            ],
            "contexts": [
                {
                    "name": "incluster-ipam-dev",
                    "context": {"cluster": "incluster-ipam-dev", "user": user},
                }
            ],
            "current-context": "incluster-ipam-dev",
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        path.chmod(0o600)

    def ssl_context(self) -> ssl.SSLContext:
        """A client TLS context that trusts the apiserver and presents the admin certificate."""
        context = ssl.create_default_context(cafile=str(self.ca_file))
        context.load_cert_chain(str(self.admin_cert_file), str(self.admin_key_file))
        return context

    # ---- processes ---------------------------------------------------------------------------------

    async def _on_free_ports(
        self,
        launch: Callable[[], Awaitable[ManagedProcess]],
        ready: Callable[[ManagedProcess], Awaitable[None]],
        *,
        any_failure: bool = False,
    ) -> None:
        """Start a process on ports `launch` picks (free a moment ago: racy, as envtest's) and wait until
        `ready`; when it lost a port to someone else (`address already in use`, or any failure with
        `any_failure`), stop it and try fresh ports, three times in all."""
        last_error: ProcessError | None = None
        for _attempt in range(3):
            proc = await launch()
            try:
                await ready(proc)
                return
            except ProcessError as exc:
                last_error = exc
                await proc.stop()
                if not any_failure and "address already in use" not in str(exc):
                    raise
        assert last_error is not None
        raise last_error

    async def _start_etcd(self) -> None:
        assert self._assets is not None
        etcd = self._assets.etcd

        async def launch() -> ManagedProcess:
            client_port, peer_port = free_port(), free_port()
            data_dir = self.workdir / "etcd-data"
            shutil.rmtree(data_dir, ignore_errors=True)
            self.etcd_url = f"http://{HOST}:{client_port}"
            proc = ManagedProcess(
                "etcd",
                [
                    str(etcd),
                    f"--data-dir={data_dir}",
                    f"--listen-client-urls={self.etcd_url}",
                    f"--advertise-client-urls={self.etcd_url}",
                    f"--listen-peer-urls=http://{HOST}:{peer_port}",
                    f"--initial-advertise-peer-urls=http://{HOST}:{peer_port}",
                    f"--initial-cluster=default=http://{HOST}:{peer_port}",
                    "--unsafe-no-fsync=true",
                    "--log-level=warn",
                ],
                self.workdir / "logs" / "etcd.log",
            )
            await proc.start()
            self.etcd = proc
            return proc

        async def ready(proc: ManagedProcess) -> None:
            await self.wait_http(proc, f"{self.etcd_url}/health", ssl_context=None)

        await self._on_free_ports(launch, ready, any_failure=True)

    async def _start_apiserver(self) -> None:
        assert self._assets is not None
        pki = self.workdir / "pki"
        apiserver = self._assets.kube_apiserver

        if self.node:
            kubelet_client = (pki / "kubelet-client.crt", pki / "kubelet-client.key")
            mode_args = apiserver_node_args(self.node, kubelet_client)
        else:
            mode_args = [
                "--authorization-mode=RBAC",
                "--service-cluster-ip-range=10.0.0.0/24",
                "--disable-admission-plugins=ServiceAccount",
                # 1.37 refuses a loopback advertise address for the kubernetes Service endpoints;
                # nothing here needs that Service.
                "--endpoint-reconciler-type=none",
            ]

        async def launch() -> ManagedProcess:
            port = free_port(self.host)
            self.server = f"https://{self.host}:{port}"
            proc = ManagedProcess(
                "kube-apiserver",
                [
                    str(apiserver),
                    f"--etcd-servers={self.etcd_url}",
                    f"--bind-address={self.host}",
                    f"--advertise-address={self.host}",
                    f"--secure-port={port}",
                    f"--cert-dir={pki}",
                    f"--tls-cert-file={pki / 'serving.crt'}",
                    f"--tls-private-key-file={pki / 'serving.key'}",
                    f"--client-ca-file={pki / 'ca.crt'}",
                    *mode_args,
                    "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                    f"--service-account-key-file={pki / 'sa.pub'}",
                    f"--service-account-signing-key-file={pki / 'sa.key'}",
                    "--allow-privileged=true",
                    "--profiling=false",
                ],
                self.workdir / "logs" / "kube-apiserver.log",
            )
            await proc.start()
            self.apiserver = proc
            return proc

        await self._on_free_ports(launch, self._wait_apiserver_ready)

    async def _start_controller_manager(self) -> None:
        assert self._assets is not None
        binary = self._assets.kube_controller_manager
        if not binary.is_file():
            raise AssetsError(
                f"{binary} is missing: run hack/controlplane/build.sh (it builds kube-controller-manager)"
            )
        started = time.monotonic()
        pki = self.workdir / "pki"
        files = ControllerManagerFiles(
            kubeconfig=self.workdir / "controller-manager.kubeconfig",
            service_account_key=pki / "sa.key",
            root_ca=pki / "ca.crt",
            cert_dir=self.workdir / "controller-manager-certs",
        )
        self.write_kubeconfig_for(
            files.kubeconfig,
            CONTROLLER_MANAGER_USER,
            pki / "controller-manager.crt",
            pki / "controller-manager.key",
        )
        healthz = ""

        async def launch() -> ManagedProcess:
            nonlocal healthz
            port = free_port()
            healthz = f"https://{HOST}:{port}/healthz"
            argv = controller_manager_argv(binary, files, host=HOST, port=port, controllers=self._controllers)
            proc = ManagedProcess(
                "kube-controller-manager", argv, self.workdir / "logs" / "kube-controller-manager.log"
            )
            await proc.start()
            self.controller_manager = proc
            return proc

        async def ready(proc: ManagedProcess) -> None:
            await self.wait_http(proc, healthz, ssl_context=None)

        await self._on_free_ports(launch, ready)
        assert self.controller_manager is not None
        if "garbagecollector" in self._controllers:
            await self._wait_garbage_collector(self.controller_manager)
        self.controller_manager_seconds = time.monotonic() - started

    async def _wait_garbage_collector(self, proc: ManagedProcess) -> None:
        """Ready means working: a ConfigMap owned by a deleted ConfigMap is collected."""
        path = "/api/v1/namespaces/default/configmaps"
        stem = f"gc-probe-{int(time.time() * 1000)}"
        deadline = time.monotonic() + self._start_timeout
        async with self.session() as http:
            async with http.post(path, json={"metadata": {"name": f"{stem}-owner"}}) as resp:
                await _expect_ok(resp, "create the garbage collector's probe owner")
                owner = await resp.json()
            reference = {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "name": owner["metadata"]["name"],
                "uid": owner["metadata"]["uid"],
            }
            dependent = {"metadata": {"name": f"{stem}-dependent", "ownerReferences": [reference]}}
            async with http.post(path, json=dependent) as resp:
                await _expect_ok(resp, "create the garbage collector's probe dependent")
            async with http.delete(f"{path}/{stem}-owner") as resp:
                await _expect_ok(resp, "delete the garbage collector's probe owner")
            while True:
                proc.check_alive()
                async with http.get(f"{path}/{stem}-dependent") as resp:
                    if resp.status == 404:
                        return
                if time.monotonic() > deadline:
                    raise proc.failure(
                        f"did not collect a dependent of a deleted object within {self._start_timeout:.0f} s"
                    )
                await asyncio.sleep(0.1)

    async def _wait_apiserver_ready(self, proc: ManagedProcess) -> None:
        context = ssl.create_default_context(cafile=str(self.ca_file))
        await self.wait_http(proc, f"{self.server}/readyz", ssl_context=context)

    async def wait_http(self, proc: ManagedProcess, url: str, ssl_context: ssl.SSLContext | None) -> None:
        """Poll `url` until it answers 200, failing fast (with the log tail) if the process dies."""
        deadline = time.monotonic() + self._start_timeout
        timeout = aiohttp.ClientTimeout(total=2)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            while True:
                proc.check_alive()
                with contextlib.suppress(aiohttp.ClientError, TimeoutError, OSError):
                    async with session.get(url, ssl=ssl_context if ssl_context else False) as resp:
                        if resp.status == 200:
                            return
                if time.monotonic() > deadline:
                    raise proc.failure(f"did not become ready at {url} within {self._start_timeout:.0f} s")
                await asyncio.sleep(0.1)

    # ---- API access ----------------------------------------------------------------------------------

    def session(self) -> aiohttp.ClientSession:
        """A raw HTTP session authenticated as the admin (callers close it)."""
        connector = aiohttp.TCPConnector(ssl=self.ssl_context())
        return aiohttp.ClientSession(base_url=self.server, connector=connector)

    async def install_crds(self, crds: Iterable[Mapping[str, Any]], wait_seconds: float = 60.0) -> None:
        """Create (or replace) CRDs, then wait until each is Established and its versions are discoverable."""
        crd_list = [dict(crd) for crd in crds]
        if not crd_list:
            return
        path = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
        async with self.session() as http:
            for crd in crd_list:
                name = crd["metadata"]["name"]
                async with http.post(path, json=crd) as resp:
                    if resp.status == 409:
                        async with http.get(f"{path}/{name}") as current:
                            existing = await current.json()
                        replacement = {**crd, "metadata": {**crd["metadata"], **_version_of(existing)}}
                        async with http.put(f"{path}/{name}", json=replacement) as replaced:
                            await _expect_ok(replaced, f"replace CRD {name}")
                    else:
                        await _expect_ok(resp, f"create CRD {name}")
            deadline = time.monotonic() + wait_seconds
            for crd in crd_list:
                await self._wait_crd_served(http, crd, deadline)

    async def _wait_crd_served(
        self, http: aiohttp.ClientSession, crd: Mapping[str, Any], deadline: float
    ) -> None:
        name = crd["metadata"]["name"]
        group = crd["spec"]["group"]
        plural = crd["spec"]["names"]["plural"]
        versions = [v["name"] for v in crd["spec"]["versions"] if v.get("served", True)]
        while True:
            async with http.get(f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}") as resp:
                status = ((await resp.json()).get("status") or {}) if resp.status == 200 else {}
            established = any(
                c.get("type") == "Established" and c.get("status") == "True"
                for c in status.get("conditions") or []
            )
            if established and await _all_discoverable(http, group, versions, plural):
                return
            if time.monotonic() > deadline:
                raise ControlPlaneError(
                    f"CRD {name} was not Established and served in time (status: {status})"
                )
            await asyncio.sleep(0.1)


def _version_of(obj: Mapping[str, Any]) -> dict[str, Any]:
    return {"resourceVersion": obj.get("metadata", {}).get("resourceVersion")}


async def _all_discoverable(
    http: aiohttp.ClientSession, group: str, versions: list[str], plural: str
) -> bool:
    for version in versions:
        async with http.get(f"/apis/{group}/{version}") as resp:
            if resp.status != 200:
                return False
            resources = (await resp.json()).get("resources", [])
        if not any(r.get("name") == plural for r in resources):
            return False
    return True


async def _expect_ok(resp: aiohttp.ClientResponse, what: str) -> None:
    if resp.status >= 300:
        raise ControlPlaneError(f"could not {what}: HTTP {resp.status}: {await resp.text()}")
