"""kube-controller-manager for the local control plane: only the controllers the workflows need (the garbage
collector and the namespace controller by default), on loopback, leader election off.

`controller_manager_argv` is pure (unit-tested); `ControlPlane(controller_manager=True)` writes the files it
names and runs the process. The garbage collector learns of new resources by rediscovery every 30 s, so the
CRDs it must act on are installed before it starts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

CONTROLLER_MANAGER_USER = "system:kube-controller-manager"
#: The garbage collector (owner references, foreground and orphan deletion) and the namespace controller
#: (a deleted namespace's contents). Neither needs service-account tokens.
DEFAULT_CONTROLLERS: tuple[str, ...] = ("garbagecollector", "namespace")


@dataclass(frozen=True)
class ControllerManagerFiles:
    """What the process reads: its own kubeconfig, the control plane's PKI, and a directory for the
    self-signed serving certificate it makes for its secure port."""

    kubeconfig: Path
    service_account_key: Path
    root_ca: Path
    cert_dir: Path


def controller_manager_argv(
    binary: Path,
    files: ControllerManagerFiles,
    *,
    host: str,
    port: int,
    controllers: Sequence[str] = DEFAULT_CONTROLLERS,
) -> list[str]:
    """The command line: `controllers` only, secure port `port` on `host`, no leader election (one
    instance), its own identity for every controller (no per-controller service accounts)."""
    if not controllers:
        raise ValueError("kube-controller-manager needs at least one controller")
    if any("," in name or not name for name in controllers):
        raise ValueError(f"controller names must be non-empty and without commas: {list(controllers)}")
    kubeconfig = str(files.kubeconfig)
    return [
        str(binary),
        f"--kubeconfig={kubeconfig}",
        f"--authentication-kubeconfig={kubeconfig}",
        f"--authorization-kubeconfig={kubeconfig}",
        f"--bind-address={host}",
        f"--secure-port={port}",
        f"--cert-dir={files.cert_dir}",
        f"--controllers={','.join(controllers)}",
        "--leader-elect=false",
        "--use-service-account-credentials=false",
        f"--service-account-private-key-file={files.service_account_key}",
        f"--root-ca-file={files.root_ca}",
        "--profiling=false",
    ]
