"""A real local control plane (etcd + kube-apiserver, built from Go modules) for tests and dev runs.

Development tooling at the I/O edge: nothing in the provider imports it.
"""

from .assets import CURRENT_CAPI, OLD_CAPI, Assets, AssetsError, ensure_assets
from .controlplane import ControlPlane, ControlPlaneError
from .process import ProcessError

__all__ = [
    "CURRENT_CAPI",
    "OLD_CAPI",
    "Assets",
    "AssetsError",
    "ControlPlane",
    "ControlPlaneError",
    "ProcessError",
    "ensure_assets",
]
