"""The providers the e2e workflows switch between, as real processes on one or two control planes.

- upstream's Go provider (hack/upstream/build.sh: the binary and its own pool CRDs), webhooks off, as
  bench/claims.py runs it;
- ours (`incluster-ipam run`, tests/integration/faults/helpers.ProviderProcess) with its webhook server on
  loopback and the webhooks registered as shipped (conversion on the pool CRDs, validation and defaulting).

A component that cannot be built or started fails the test with its log tail.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from incluster_ipam.devcluster import ControlPlane
from incluster_ipam.devcluster.controlplane import free_port
from incluster_ipam.devcluster.process import ManagedProcess
from incluster_ipam.kube import KubeClient
from incluster_ipam.kube.resources import CRDS
from incluster_ipam.webhooks.registration import create_or_replace

from ..integration.faults.helpers import ProviderProcess
from ..integration.support import eventually

ROOT = Path(__file__).resolve().parents[2]
BUILD_TIMEOUT = 1800.0
"""Cold Go builds take minutes on 2 cores (docs/operations.md); cached afterwards."""


def build(script: str) -> str:
    """Run one of the repo's cached build scripts; its last stdout line (a path). Fails with its stderr."""
    done = subprocess.run(
        ["bash", str(ROOT / script)], capture_output=True, text=True, timeout=BUILD_TIMEOUT, check=False
    )
    assert done.returncode == 0, f"{script} failed ({done.returncode}):\n{done.stderr[-3000:]}"
    return done.stdout.strip().splitlines()[-1]


@dataclass(frozen=True)
class UpstreamBuild:
    binary: Path
    crds: list[dict[str, Any]]
    version: str


async def upstream_build() -> UpstreamBuild:
    cache = Path(await asyncio.to_thread(build, "hack/upstream/build.sh"))
    crds = [yaml.safe_load(p.read_text()) for p in sorted((cache / "crds").glob("*.yaml"))]
    assert len(crds) == 4, f"expected upstream's four pool CRDs in {cache / 'crds'}"
    return UpstreamBuild(
        cache / "bin" / "cluster-api-ipam-provider-in-cluster", crds, cache.name.split("_")[0]
    )


class UpstreamProcess:
    """upstream's provider as a child process (webhooks off, no leader election), as the benchmark runs it."""

    def __init__(self, build: UpstreamBuild, kubeconfig: Path, logs: Path, name: str = "upstream") -> None:
        self.health_port = free_port()
        argv = [
            str(build.binary),
            f"--kubeconfig={kubeconfig}",
            "--webhook-port=0",
            f"--health-probe-bind-address=127.0.0.1:{self.health_port}",
            "--insecure-diagnostics",
            f"--diagnostics-address=127.0.0.1:{free_port()}",
        ]
        self.process = ManagedProcess(name, argv, logs / f"{name}.log")

    async def __aenter__(self) -> UpstreamProcess:
        await self.process.start()
        await wait_healthy(self.process, self.health_port, "/readyz")
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.process.stop()


async def wait_healthy(process: ManagedProcess, port: int, path: str, within: float = 60.0) -> None:
    async def answers() -> bool:
        process.check_alive()
        try:
            async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}{path}") as resp:
                return resp.status == 200
        except aiohttp.ClientError:
            return False

    await eventually(answers, within, f"{process.name} to answer {path}")


def webhook_certs(plane: ControlPlane, directory: Path) -> Path:
    """A serving certificate for 127.0.0.1 signed by the control plane's CA (the apiserver trusts it)."""
    directory.mkdir(parents=True, exist_ok=True)
    serving = plane.ca.serving(("127.0.0.1", "localhost"))
    (directory / "tls.crt").write_bytes(serving.cert_pem)
    (directory / "tls.key").write_bytes(serving.key_pem)
    return directory


class OurProcess(ProviderProcess):
    """`incluster-ipam run` with its webhook server on loopback (webhook port, certificates, health)."""

    def __init__(self, plane: ControlPlane, logs: Path, name: str = "ours") -> None:
        self.webhook_port, self.health_port = free_port(), free_port()
        certs = webhook_certs(plane, logs / f"{name}-certs")
        super().__init__(
            name,
            plane.kubeconfig_path,
            logs,
            extra=[
                "--webhook-host=127.0.0.1",
                f"--webhook-port={self.webhook_port}",
                f"--webhook-cert-dir={certs}",
                f"--health-probe-bind-address=127.0.0.1:{self.health_port}",
            ],
        )

    @property
    def webhook_url(self) -> str:
        return f"https://127.0.0.1:{self.webhook_port}"

    async def wait_ready(self, within: float = 60.0) -> None:
        assert self.process is not None
        await wait_healthy(self.process, self.health_port, "/readyz", within)


async def apply_crds(client: KubeClient, crds: list[dict[str, Any]]) -> None:
    """Create or replace CRDs, as `kubectl apply` of a release's CRDs would."""
    for crd in crds:
        await create_or_replace(client, CRDS, crd)


async def audit_cli(kubeconfig: Path, namespace: str | None = None) -> tuple[int, str]:
    """`incluster-ipam audit` as an operator runs it (grace 0): exit code and report."""
    argv = [sys.executable, "-m", "incluster_ipam.cli", "audit", f"--kubeconfig={kubeconfig}"]
    argv += ["--grace-seconds=0"] + ([f"--namespace={namespace}"] if namespace else [])
    proc = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode()
