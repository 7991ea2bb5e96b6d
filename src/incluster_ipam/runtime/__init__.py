"""Controller machinery on asyncio: informers, work queues, leader election, shutdown and logging.

Imitates client-go's semantics (reflector/informer, workqueue, leaderelection); all API access goes through
`incluster_ipam.kube`.
"""

from __future__ import annotations

from .backoff import Backoff, ItemBackoff
from .fence import Fence, LeaseFence, NotLeading, Unfenced, send_within
from .informer import SYNC, Informer, ListWatch, ResourceListWatch
from .leaderelection import LeaderElectionConfig, LeaderElector, LeaseRecord, default_identity
from .logs import JsonFormatter, KeyValueFormatter, bind, setup_logging
from .signals import install_signal_handlers, remove_signal_handlers
from .store import IndexFunc, Store
from .workqueue import QueueShutDown, Result, WorkQueue

__all__ = [
    "SYNC",
    "Backoff",
    "Fence",
    "IndexFunc",
    "Informer",
    "ItemBackoff",
    "JsonFormatter",
    "KeyValueFormatter",
    "LeaderElectionConfig",
    "LeaderElector",
    "LeaseFence",
    "LeaseRecord",
    "ListWatch",
    "NotLeading",
    "QueueShutDown",
    "ResourceListWatch",
    "Result",
    "Store",
    "Unfenced",
    "WorkQueue",
    "bind",
    "default_identity",
    "install_signal_handlers",
    "remove_signal_handlers",
    "send_within",
    "setup_logging",
]
