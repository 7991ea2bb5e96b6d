"""Follow an object's owner references through the API, whatever their kinds: each `apiVersion` and `kind`
is resolved to its resource through API discovery (one request per group version, cached), so a claim
owned by any provider's infrastructure machine, owned in turn by a Machine, is walked the same way.

Nothing here raises for a missing, forbidden or unserved owner: the chain ends with a link that says so.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from incluster_ipam.kube import ApiError, KubeClient, KubeError, Resource
from incluster_ipam.kube import requests as rq

from .who import Link, State, owner_reference

#: Owner links followed at most (a real chain is 2-4 long; this bounds a loop of references).
MAX_DEPTH = 10


class Resolver:
    """`(apiVersion, kind)` to the served resource, by discovery."""

    def __init__(self, client: KubeClient) -> None:
        self._client = client
        self._lists: dict[str, dict[str, Resource]] = {}

    async def resource(self, api_version: str, kind: str) -> Resource | None:
        """The resource serving `kind` in `api_version`; None when the group version does not serve it.
        Raises `KubeError` when discovery itself fails (forbidden, unreachable)."""
        if api_version not in self._lists:
            group, _, version = api_version.rpartition("/")
            try:
                listing = await self._client.request(rq.resources_discovery_request(group, version))
            except ApiError as exc:
                if not exc.is_not_found:
                    raise
                listing = {}
            kinds: dict[str, Resource] = {}
            for entry in listing.get("resources") or []:
                name = str(entry.get("name", ""))
                if "/" in name or not entry.get("kind"):
                    continue  # subresources
                kinds[str(entry["kind"])] = Resource(
                    group, version, name, str(entry["kind"]), bool(entry.get("namespaced"))
                )
            self._lists[api_version] = kinds
        return self._lists[api_version].get(kind)

    async def read(self, api_version: str, kind: str, name: str, namespace: str) -> Link:
        """One object named by apiVersion and kind (an owner reference); a kind the server does not serve,
        or discovery failing, ends up in the link's state."""
        try:
            resource = await self.resource(api_version, kind)
        except ApiError as exc:
            state = State.FORBIDDEN if exc.is_forbidden else State.ERROR
            return Link(kind, api_version, namespace, name, state, str(exc))
        except KubeError as exc:
            return Link(kind, api_version, namespace, name, State.ERROR, str(exc))
        if resource is None:
            return Link(kind, api_version, namespace, name, State.UNKNOWN_KIND)
        return await read_object(self._client, resource, api_version, name, namespace)


async def read_object(
    client: KubeClient, resource: Resource, api_version: str, name: str, namespace: str
) -> Link:
    """One object of a known resource as a link: found (with the object), not found, forbidden or an
    error. `namespace` is ignored for cluster-scoped resources."""
    namespace = namespace if resource.namespaced else ""
    link = Link(resource.kind, api_version, namespace, name)
    try:
        obj = await client.get(resource, name, namespace or None)
    except ApiError as exc:
        if exc.is_not_found:
            return replace(link, state=State.NOT_FOUND)
        if exc.is_forbidden:
            return replace(link, state=State.FORBIDDEN, detail=exc.message)
        return replace(link, state=State.ERROR, detail=str(exc))
    except KubeError as exc:
        return replace(link, state=State.ERROR, detail=str(exc))
    return replace(link, obj=obj)


async def owner_chain(
    resolver: Resolver, obj: Mapping[str, Any], max_depth: int = MAX_DEPTH
) -> tuple[Link, ...]:
    """The owner of `obj` (its controller reference, else its first), that owner's owner, and so on, up to
    and including a Cluster API Machine; it stops early at an owner that cannot be read or a loop."""
    namespace = str((obj.get("metadata") or {}).get("namespace") or "")
    seen = {(obj.get("metadata") or {}).get("uid")}
    chain: list[Link] = []
    current: Mapping[str, Any] = obj
    for _ in range(max_depth):
        ref = owner_reference(current)
        if ref is None:
            break
        api_version, kind, name = (str(ref.get(k) or "") for k in ("apiVersion", "kind", "name"))
        link = await resolver.read(api_version, kind, name, namespace)
        chain.append(link)
        if link.obj is None or link.is_machine:
            break
        uid = (link.obj.get("metadata") or {}).get("uid")
        if uid in seen:
            break
        seen.add(uid)
        current = link.obj
    return tuple(chain)
