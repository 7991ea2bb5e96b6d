"""The API resources of the pool kinds, as the Kubernetes client addresses them. Apart from `objects` so
that the pure vocabulary does not pull in the client."""

from __future__ import annotations

from incluster_ipam.api.constants import GROUP, V1ALPHA2, PoolKind
from incluster_ipam.kube.resources import Resource


def pool_resource(kind: PoolKind) -> Resource:
    """A pool kind's resource, at its storage version v1alpha2 (listing it needs no conversion)."""
    return Resource(GROUP, V1ALPHA2, kind.plural, kind.kind, kind.namespaced)
