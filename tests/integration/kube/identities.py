"""Real identities and the pieces around a laptop's kubeconfig, for the kubeconfig integration tests:
ServiceAccount tokens minted by the TokenRequest API, an exec plugin script that hands them out, a loopback
HTTP CONNECT proxy that counts what it carries, and kubeconfig files pointing at the test control plane."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from incluster_ipam.devcluster import ControlPlane
from incluster_ipam.kube import KubeClient, Resource
from incluster_ipam.kube import requests as rq

SERVICE_ACCOUNTS = Resource("", "v1", "serviceaccounts", "ServiceAccount", True)
CLUSTER_ROLE_BINDINGS = Resource(
    "rbac.authorization.k8s.io", "v1", "clusterrolebindings", "ClusterRoleBinding", False
)
SELF_SUBJECT_REVIEWS = Resource(
    "authentication.k8s.io", "v1", "selfsubjectreviews", "SelfSubjectReview", False
)
EXEC_V1 = "client.authentication.k8s.io/v1"


async def service_account_token(admin: KubeClient, *, cluster_admin: bool = False) -> tuple[str, str]:
    """A new ServiceAccount in `default` and a token for it (TokenRequest); returns (username, token)."""
    name = f"sa-{uuid.uuid4().hex[:8]}"
    await admin.create(
        SERVICE_ACCOUNTS,
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name, "namespace": "default"}},
    )
    if cluster_admin:
        await admin.create(
            CLUSTER_ROLE_BINDINGS,
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRoleBinding",
                "metadata": {"name": name},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "ClusterRole",
                    "name": "cluster-admin",
                },
                "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": "default"}],
            },
        )
    request = rq.Request(
        "POST",
        f"/api/v1/namespaces/default/serviceaccounts/{name}/token",
        json.dumps(
            {
                "apiVersion": "authentication.k8s.io/v1",
                "kind": "TokenRequest",
                "spec": {"expirationSeconds": 3600},
            }
        ).encode(),
        rq.JSON,
    )
    body = await admin.request(request)
    return f"system:serviceaccount:default:{name}", str(body["status"]["token"])


async def whoami(client: KubeClient) -> str:
    """The username the apiserver sees for `client` (SelfSubjectReview, allowed to every user)."""
    review = await client.create(
        SELF_SUBJECT_REVIEWS, {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}
    )
    return str(review["status"]["userInfo"]["username"])


def write_plugin(directory: Path, tokens: list[str], *, expires_in: float | None = None) -> Path:
    """An exec plugin: run n hands out tokens[min(n, len - 1)] (expiring `expires_in` seconds later) and
    counts its runs in directory/runs; it also keeps the KUBERNETES_EXEC_INFO it was given."""
    directory.mkdir(parents=True, exist_ok=True)
    plan = directory / "plan.json"
    plan.write_text(json.dumps({"tokens": tokens, "expires_in": expires_in}))
    script = directory / "plugin.py"
    script.write_text(
        "import datetime, json, os, sys\n"
        f"here = {str(directory)!r}\n"
        "plan = json.load(open(os.path.join(here, 'plan.json')))\n"
        "runs = os.path.join(here, 'runs')\n"
        "n = int(open(runs).read()) if os.path.exists(runs) else 0\n"
        "open(runs, 'w').write(str(n + 1))\n"
        "info = json.loads(os.environ['KUBERNETES_EXEC_INFO'])\n"
        "open(os.path.join(here, 'exec-info.json'), 'w').write(json.dumps(info))\n"
        "status = {'token': plan['tokens'][min(n, len(plan['tokens']) - 1)]}\n"
        "if plan['expires_in'] is not None:\n"
        "    delta = datetime.timedelta(seconds=plan['expires_in'])\n"
        "    at = datetime.datetime.now(datetime.timezone.utc) + delta\n"
        "    status['expirationTimestamp'] = at.strftime('%Y-%m-%dT%H:%M:%S.%fZ')\n"
        "print(json.dumps({'apiVersion': info['apiVersion'], 'kind': 'ExecCredential', 'status': status}))\n"
    )
    return script


def runs(directory: Path) -> int:
    counter = directory / "runs"
    return int(counter.read_text()) if counter.exists() else 0


def exec_user(script: Path, **extra: Any) -> dict[str, Any]:
    return {
        "exec": {
            "apiVersion": EXEC_V1,
            "command": sys.executable,
            "args": [str(script)],
            "interactiveMode": "Never",
            **extra,
        }
    }


def kubeconfig(
    plane: ControlPlane,
    user: dict[str, Any],
    *,
    server: str | None = None,
    **cluster: Any,
) -> dict[str, Any]:
    """A one-context kubeconfig for `plane` with the given user body and cluster fields."""
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "test",
                "cluster": {
                    "server": server or plane.server,
                    "certificate-authority-data": base64.b64encode(plane.ca_file.read_bytes()).decode(),
                    **cluster,
                },
            }
        ],
        "users": [{"name": "me", "user": user}],
        "contexts": [{"name": "test", "context": {"cluster": "test", "user": "me"}}],
        "current-context": "test",
    }


def write_yaml(path: Path, data: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data))
    return path


@dataclass
class ConnectProxy:
    """A loopback HTTP CONNECT proxy. Every tunnel goes to 127.0.0.1 at the requested port, whatever the
    host asked for (so a made-up name still stays on loopback); `targets` records what was asked."""

    port: int = 0
    targets: list[str] = field(default_factory=list)
    _server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            method, target, _ = head.split(b"\r\n", 1)[0].decode().split(" ", 2)
            if method != "CONNECT":
                writer.write(b"HTTP/1.1 405 Method Not Allowed\r\ncontent-length: 0\r\n\r\n")
                return
            self.targets.append(target)
            port = int(target.rsplit(":", 1)[1])
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        except (OSError, asyncio.IncompleteReadError, ValueError):
            pass
        finally:
            writer.close()

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[ConnectProxy]:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        try:
            yield self
        finally:
            self._server.close()
            await self._server.wait_closed()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while chunk := await reader.read(65536):
            writer.write(chunk)
            await writer.drain()
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            writer.close()
