"""The webhook server, registered with the real kube-apiserver, and raw-HTTP helpers to talk to it.

One server for the whole package: a serving certificate from the control plane's CA, `WebhookServer` on
127.0.0.1 (free port) answering from informer-backed lookups, and `install_webhooks` pointing the pool CRDs'
conversion and both webhook configurations at it. Teardown unregisters everything (pools stay, conversion
None), so later test packages see plain CRDs.

Requests go over raw HTTP as the admin (`ControlPlane.session`): the tests need the status code, the
`Warning` headers and the Table format, which typed clients hide.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import pytest

from incluster_ipam.api.constants import (
    GROUP,
    POOL_KINDS_BY_NAME,
    SKIP_VALIDATE_DELETE_ANNOTATION,
    PoolKind,
)
from incluster_ipam.api.crds import crds
from incluster_ipam.devcluster import ControlPlane
from incluster_ipam.kube import NAMESPACES, KubeClient, Resource
from incluster_ipam.webhooks import WebhookServer
from incluster_ipam.webhooks.lookups import InformerLookups, start_lookups
from incluster_ipam.webhooks.registration import install_webhooks, uninstall_webhooks

from ..support import eventually

T = TypeVar("T")

ADDRESSES = Resource(GROUP, "v1beta2", "ipaddresses", "IPAddress", namespaced=True)


def pool_kind(name: str) -> PoolKind:
    return POOL_KINDS_BY_NAME[name]


def pool_path(kind: PoolKind, version: str = "v1alpha2", namespace: str | None = None, name: str = "") -> str:
    where = f"namespaces/{namespace}/" if kind.namespaced else ""
    path = f"/apis/{GROUP}/{version}/{where}{kind.plural}"
    return f"{path}/{name}" if name else path


def pool_body(
    kind: PoolKind,
    name: str,
    spec: dict[str, Any] | None,
    *,
    namespace: str | None = None,
    version: str = "v1alpha2",
    annotations: dict[str, str] | None = None,
) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name}
    if kind.namespaced:
        metadata["namespace"] = namespace
    if annotations:
        metadata["annotations"] = annotations
    body: dict[str, Any] = {"apiVersion": f"{GROUP}/{version}", "kind": kind.kind, "metadata": metadata}
    if spec is not None:
        body["spec"] = spec
    return body


def _warning_text(header: str) -> str:
    """`299 - "text"` (Go-quoted text) -> text."""
    _code, _agent, quoted = header.split(" ", 2)
    text: str = json.loads(quoted)
    return text


@dataclass(frozen=True)
class Answer:
    status: int
    body: dict[str, Any]
    warnings: list[str]

    @property
    def message(self) -> str:
        return str(self.body.get("message", ""))


@dataclass
class Api:
    """Raw HTTP to the API server as the admin."""

    session: aiohttp.ClientSession

    async def call(
        self, method: str, path: str, body: Any = None, *, headers: dict[str, str] | None = None
    ) -> Answer:
        async with self.session.request(method, path, json=body, headers=headers) as resp:
            raw = await resp.read()
            warnings = [_warning_text(h) for h in resp.headers.getall("Warning", [])]
            return Answer(resp.status, json.loads(raw) if raw else {}, warnings)

    async def create(self, obj: dict[str, Any]) -> Answer:
        kind = pool_kind(obj["kind"])
        version = obj["apiVersion"].split("/")[1]
        return await self.call("POST", pool_path(kind, version, obj["metadata"].get("namespace")), obj)

    async def get(
        self, kind: PoolKind, name: str, namespace: str | None, version: str = "v1alpha2"
    ) -> Answer:
        return await self.call("GET", pool_path(kind, version, namespace, name))

    async def replace(self, obj: dict[str, Any]) -> Answer:
        kind = pool_kind(obj["kind"])
        version = obj["apiVersion"].split("/")[1]
        meta = obj["metadata"]
        return await self.call("PUT", pool_path(kind, version, meta.get("namespace"), meta["name"]), obj)

    async def delete(self, kind: PoolKind, name: str, namespace: str | None) -> Answer:
        return await self.call("DELETE", pool_path(kind, "v1alpha2", namespace, name))


@dataclass
class Webhooks:
    """The running, registered webhook server and what the tests use to drive it."""

    plane: ControlPlane
    kube: KubeClient
    api: Api
    server: WebhookServer
    lookups: InformerLookups
    global_pools: list[tuple[PoolKind, str]] = field(default_factory=list)

    def global_name(self, stem: str) -> str:
        return f"{stem}-{uuid.uuid4().hex[:8]}"

    def track(self, kind: PoolKind, name: str) -> None:
        """Delete this global pool after the test (global pools would otherwise leak into other tests)."""
        self.global_pools.append((kind, name))

    async def wait_for_pool(self, kind: PoolKind, namespace: str | None, name: str) -> None:
        informer = self.lookups.pool_informers[kind.kind]
        await informer.wait_for(lambda i: i.get_object(namespace, name) is not None, 10.0)

    async def wait_for_addresses(self, kind: PoolKind, namespace: str | None, pool: str, count: int) -> None:
        async def seen() -> bool:
            return len(await self.lookups.addresses(kind.kind, namespace, pool)) == count

        await eventually(seen, 10.0, f"{count} IPAddresses of {kind.kind} {pool} in the informer")

    async def ip_address(
        self, namespace: str, name: str, address: str, *, kind: PoolKind, pool: str, prefix: int = 24
    ) -> None:
        body = {
            "apiVersion": ADDRESSES.api_version,
            "kind": ADDRESSES.kind,
            "metadata": {"name": name, "namespace": namespace},
            "spec": {
                "address": address,
                "prefix": prefix,
                "claimRef": {"name": name},
                "poolRef": {"apiGroup": GROUP, "kind": kind.kind, "name": pool},
            },
        }
        await self.kube.create(ADDRESSES, body, namespace)

    async def cleanup_global_pools(self) -> None:
        for kind, name in self.global_pools:
            path = pool_path(kind, name=name)
            patch = {"metadata": {"annotations": {SKIP_VALIDATE_DELETE_ANNOTATION: "cleanup"}}}
            headers = {"Content-Type": "application/merge-patch+json"}
            async with self.api.session.patch(path, data=json.dumps(patch), headers=headers) as resp:
                assert resp.status in (200, 404), await resp.text()
            answer = await self.api.call("DELETE", path)
            assert answer.status in (200, 404), answer.body
        self.global_pools.clear()


@pytest.fixture(scope="package")
async def webhooks(
    control_plane: ControlPlane, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Webhooks]:
    directory: Path = tmp_path_factory.mktemp("webhook-certs")
    pair = control_plane.ca.serving(("127.0.0.1", "localhost"))
    cert_file, key_file = directory / "tls.crt", directory / "tls.key"
    cert_file.write_bytes(pair.cert_pem)
    key_file.write_bytes(pair.key_pem)

    kube = KubeClient.from_kubeconfig(control_plane.kubeconfig_path)
    session = control_plane.session()
    stop_lookups: Callable[[], Awaitable[None]] | None = None
    server: WebhookServer | None = None
    registered = False
    try:
        # The pool informers need the CRDs; conversion goes to the server once it runs.
        await control_plane.install_crds(crds(""))
        lookups, stop_lookups = await start_lookups(kube, sync_seconds=30.0)
        server = WebhookServer(
            "127.0.0.1", 0, cert_file, key_file, addresses=lookups.addresses, pools=lookups.pools
        )
        await server.start()
        registered = True
        await install_webhooks(kube, server.url, control_plane.ca.cert_pem, wait_seconds=30.0)
        hooks = Webhooks(control_plane, kube, Api(session), server, lookups)
        yield hooks
        await hooks.cleanup_global_pools()
    finally:
        if registered:  # unregister while the server still answers, so nothing is left failing closed
            await uninstall_webhooks(kube, wait_seconds=30.0)
        if server is not None:
            await server.stop()
        if stop_lookups is not None:
            await stop_lookups()
        await session.close()
        await kube.close()


@pytest.fixture
async def hooks(webhooks: Webhooks) -> AsyncIterator[Webhooks]:
    """The package's webhooks; global pools the test tracked are deleted afterwards."""
    yield webhooks
    await webhooks.cleanup_global_pools()


@pytest.fixture(scope="package")
async def other_namespace(webhooks: Webhooks) -> str:
    """A second namespace, shared by the package (IPAddresses of global pools elsewhere, pools that must
    not meet the test's own)."""
    name = f"t-{uuid.uuid4().hex[:10]}"
    await webhooks.kube.create(
        NAMESPACES, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
    )
    return name
