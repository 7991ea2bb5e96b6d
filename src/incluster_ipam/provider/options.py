"""The provider's runtime configuration (the command line maps onto it)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from incluster_ipam.kube.client import LIST_PAGE_SIZE, WATCH_IDLE_TIMEOUT
from incluster_ipam.serving.certwatch import DEFAULT_INTERVAL


@dataclass(frozen=True)
class Options:
    """How one provider process runs. Defaults suit tests and in-process use; the command line's defaults
    (`cli.py`) are the ones a Deployment gets."""

    namespace: str | None = None
    watch_filter: str | None = None
    leader_elect: bool = False
    leader_election_namespace: str | None = None
    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0
    identity: str | None = None
    webhook_host: str = "0.0.0.0"
    webhook_port: int = 9443
    webhook_cert_dir: Path = Path("/tmp/k8s-webhook-server/serving-certs")
    webhook_cert_name: str = "tls.crt"
    webhook_key_name: str = "tls.key"
    health_address: str = ":8081"
    metrics_address: str = ":8080"
    # Secure /metrics (serving/diagnostics.py). Off by default here (the command line defaults to ":8443")
    # so that tests and extra replicas in one process need no port.
    diagnostics_address: str = "0"
    insecure_diagnostics: bool = False
    diagnostics_cert_dir: Path | None = None  # tls.crt/tls.key; None: a self-signed certificate
    tls_min_version: str = "VersionTLS12"  # webhook and diagnostics servers
    tls_cipher_suites: tuple[str, ...] | None = None  # Go names; None: every forward-secret AEAD suite
    cert_poll_interval: float = DEFAULT_INTERVAL  # seconds between looks at the certificate files
    workers: int = 32
    # Budget for Normal Events (None: every one is written); Warnings are never limited (kube/events.py).
    normal_event_rate: float | None = 2.0
    normal_event_burst: int = 20
    resync_seconds: float = 600.0
    status_interval: float = 0.25
    shutdown_grace: float = 10.0  # seconds the reconciles in flight get to finish at a graceful stop
    watch_idle_timeout: float = WATCH_IDLE_TIMEOUT  # a watch silent this long counts as dead
    list_page_size: int = LIST_PAGE_SIZE  # objects per page when the informers and the takeover list


def split_address(address: str) -> tuple[str, int] | None:
    """`host:port` or `:port` -> (host, port); "0" or "" disables the server."""
    if address in ("", "0"):
        return None
    host, _, port = address.rpartition(":")
    return (host or "0.0.0.0", int(port))
