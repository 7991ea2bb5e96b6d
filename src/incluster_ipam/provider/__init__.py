"""The provider process: the claim lifecycle (`incluster_ipam.claimcore`) over the in-cluster pools
(`incluster_ipam.backend`), with its informers, servers and leader election.

- `app`: the composition and the process's life (build, serve, lead, stand down), mapping informer events
  to claims with `claimcore.watches`;
- `servers`: health, metrics, webhooks and the secure diagnostics server;
- `options`: the runtime configuration; `metrics`: the process's Prometheus registry.
"""

from .app import LEASE_NAME, Provider
from .metrics import Metrics
from .options import Options

__all__ = ["LEASE_NAME", "Metrics", "Options", "Provider"]
