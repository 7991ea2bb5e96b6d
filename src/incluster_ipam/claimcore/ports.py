"""What the claim lifecycle needs of the world around it, as protocols: a cache to read claims, IPAddresses
and Clusters from, a client to write with, and an Event recorder. The provider passes its informers,
`incluster_ipam.kube.KubeClient` and `EventRecorder`; unit tests pass dicts and in-memory fakes."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from incluster_ipam.capi.objects import Obj
from incluster_ipam.kube.resources import Resource


class Cache(Protocol):
    """What the lifecycle reads of an informer (`incluster_ipam.runtime.Informer`)."""

    def get(self, key: str) -> Obj | None: ...

    def get_object(self, namespace: str | None, name: str) -> Obj | None: ...


@dataclass
class Caches:
    """The Cluster API objects the lifecycle reads (projections, see `capi.objects.project`)."""

    claims: Cache
    addresses: Cache
    clusters: Cache | None  # None: Cluster API core is not installed


@dataclass(frozen=True)
class Resources:
    """The API resources written, in the versions the cluster serves."""

    claims: Resource
    addresses: Resource


class Client(Protocol):
    """The four calls the lifecycle makes (`incluster_ipam.kube.KubeClient` has them). Failures are
    `incluster_ipam.kube` errors: `ApiError` for an answer, other `KubeError`s for none."""

    async def get(self, resource: Resource, name: str, namespace: str | None = None) -> Obj: ...

    async def create(
        self, resource: Resource, obj: Obj, namespace: str | None = None, *, send_within: float | None = None
    ) -> Obj: ...

    async def patch(
        self,
        resource: Resource,
        name: str,
        patch: Obj,
        namespace: str | None = None,
        *,
        subresource: str | None = None,
        send_within: float | None = None,
    ) -> Obj: ...

    async def delete(
        self,
        resource: Resource,
        name: str,
        namespace: str | None = None,
        *,
        uid: str | None = None,
        send_within: float | None = None,
    ) -> Obj: ...


class Recorder(Protocol):
    """Events on claims (`incluster_ipam.kube.EventRecorder`: queued, written in the background)."""

    def normal(self, obj: Mapping[str, Any], reason: str, message: str) -> None: ...

    def warning(self, obj: Mapping[str, Any], reason: str, message: str) -> None: ...
