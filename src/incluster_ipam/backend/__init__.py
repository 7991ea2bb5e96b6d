"""The in-cluster pools (InClusterIPPool, GlobalInClusterIPPool and the prefix-pool kinds) as the claim
lifecycle's backend: the leader's allocation book (`book`), the backend over it (`incluster`), taking over
(`takeover`) and pool status (`status`). The allocation rule itself (lowest free address, what a pool hands
out) is pure and lives in `incluster_ipam.ipam`."""

from .book import PoolBook, PoolSpecError, PoolState
from .incluster import InClusterPools
from .status import PoolMetrics, PoolStatusWriter
from .takeover import Listed, TakeoverFailed, build_book, fresh_list

__all__ = [
    "InClusterPools",
    "Listed",
    "PoolBook",
    "PoolMetrics",
    "PoolSpecError",
    "PoolState",
    "PoolStatusWriter",
    "TakeoverFailed",
    "build_book",
    "fresh_list",
]
