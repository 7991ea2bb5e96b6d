"""The claim lifecycle of a Cluster API IPAM provider, reusable with any address backend (the equivalent of
upstream's `pkg/ipamutil`).

`ClaimReconciler` (reconciler.py) does what every IPAM provider must do for an IPAddressClaim: the claim's
finalizer, Cluster and pool pause, the missing Cluster, the IPAddress named after the claim with its owner
references, cluster label and finalizer, adoption of an existing IPAddress, release (with a grace period),
IPAddresses that outlived their claims, the Ready condition in either IPAM contract, Events and metrics, and
write fencing under leader election. Where addresses come from is a `ClaimBackend` (backend.py): the
in-cluster pools are one (`incluster_ipam.backend`); `examples/` and `docs/extending.md` show another.

Public surface: `ClaimBackend`, `PoolRef`, `Allocation`, `Exhausted`, `NotReady`, `Unavailable`,
`ClaimReconciler`,
`ClaimMetrics`, the ports it is given (`Caches`, `Client`, `Recorder`, `Resources`), `discover` and
`Served`.
"""

from .backend import Allocation, ClaimBackend, Exhausted, NotReady, PoolRef, Unavailable
from .discovery import Served, discover
from .metrics import ClaimMetrics
from .ports import Cache, Caches, Client, Recorder, Resources
from .reconciler import ClaimReconciler

__all__ = [
    "Allocation",
    "Cache",
    "Caches",
    "ClaimBackend",
    "ClaimMetrics",
    "ClaimReconciler",
    "Client",
    "Exhausted",
    "NotReady",
    "PoolRef",
    "Recorder",
    "Resources",
    "Served",
    "Unavailable",
    "discover",
]
