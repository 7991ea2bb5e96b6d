"""Names shared by the pool API, the webhooks and the controllers: group, versions, kinds, annotations."""

from __future__ import annotations

import enum
from dataclasses import dataclass

GROUP = "ipam.cluster.x-k8s.io"
V1ALPHA1 = "v1alpha1"
V1ALPHA2 = "v1alpha2"
HUB_VERSION = V1ALPHA2
API_VERSION_V1ALPHA1 = f"{GROUP}/{V1ALPHA1}"
API_VERSION_V1ALPHA2 = f"{GROUP}/{V1ALPHA2}"

#: Lets a pool be deleted while IPAddresses still reference it (upstream, for clusterctl move).
SKIP_VALIDATE_DELETE_ANNOTATION = "ipam.cluster.x-k8s.io/skip-validate-delete-webhook"
#: Cluster API's own annotation set by ``clusterctl move`` on objects it deletes from the source cluster.
DELETE_FOR_MOVE_ANNOTATION = "clusterctl.cluster.x-k8s.io/delete-for-move"
#: Cluster API's convention for data that a down-conversion would otherwise lose.
CONVERSION_DATA_ANNOTATION = "cluster.x-k8s.io/conversion-data"
#: Ours, on an IPAddress left behind by ``clusterctl move``: its claim moved to another management cluster but
#: the IPAddress stayed, as clusterctl neither deletes a cluster-scoped pool nor what the pool owns. The
#: provider keeps such an IPAddress (its address now belongs to the target) so that this cluster never hands
#: the address out again; the value is when the provider saw the move.
MOVED_AWAY_ANNOTATION = "ipam.cluster.x-k8s.io/moved-away"
#: Pause annotation honoured by the controllers.
PAUSED_ANNOTATION = "cluster.x-k8s.io/paused"
#: Label that makes ``clusterctl move`` carry the pools and what they own.
MOVE_HIERARCHY_LABEL = "clusterctl.cluster.x-k8s.io/move-hierarchy"

POOL_FINALIZER = "ipam.cluster.x-k8s.io/ProtectPool"
ADDRESS_FINALIZER = "ipam.cluster.x-k8s.io/ProtectAddress"
CLAIM_FINALIZER = "ipam.cluster.x-k8s.io/ReleaseAddress"

DEFAULT_ALLOCATION_PREFIX_LENGTH = 64


class PoolFamily(enum.Enum):
    """Which spec type a pool kind carries."""

    IP = "ip"
    PREFIX = "prefix"


@dataclass(frozen=True)
class PoolKind:
    """Static facts about one pool kind."""

    kind: str
    plural: str
    namespaced: bool
    family: PoolFamily
    versions: tuple[str, ...]

    @property
    def singular(self) -> str:
        return self.kind.lower()

    @property
    def crd_name(self) -> str:
        return f"{self.plural}.{GROUP}"

    @property
    def qualified(self) -> str:
        """``Kind.group``, the way Kubernetes names a group kind in error messages."""
        return f"{self.kind}.{GROUP}"


IN_CLUSTER_IP_POOL = PoolKind(
    "InClusterIPPool", "inclusterippools", True, PoolFamily.IP, (V1ALPHA1, V1ALPHA2)
)
GLOBAL_IN_CLUSTER_IP_POOL = PoolKind(
    "GlobalInClusterIPPool", "globalinclusterippools", False, PoolFamily.IP, (V1ALPHA1, V1ALPHA2)
)
IN_CLUSTER_PREFIX_POOL = PoolKind(
    "InClusterPrefixPool", "inclusterprefixpools", True, PoolFamily.PREFIX, (V1ALPHA2,)
)
GLOBAL_IN_CLUSTER_PREFIX_POOL = PoolKind(
    "GlobalInClusterPrefixPool", "globalinclusterprefixpools", False, PoolFamily.PREFIX, (V1ALPHA2,)
)

POOL_KINDS: tuple[PoolKind, ...] = (
    IN_CLUSTER_IP_POOL,
    GLOBAL_IN_CLUSTER_IP_POOL,
    IN_CLUSTER_PREFIX_POOL,
    GLOBAL_IN_CLUSTER_PREFIX_POOL,
)
POOL_KINDS_BY_NAME: dict[str, PoolKind] = {k.kind: k for k in POOL_KINDS}
POOL_KINDS_BY_PLURAL: dict[str, PoolKind] = {k.plural: k for k in POOL_KINDS}


def pool_kind(kind: str) -> PoolKind | None:
    """The pool kind called ``kind``, or None for a kind this provider does not serve."""
    return POOL_KINDS_BY_NAME.get(kind)
