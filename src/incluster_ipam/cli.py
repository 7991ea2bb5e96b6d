"""The `incluster-ipam` command line."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from . import __version__
from .devcluster import CURRENT_CAPI, ControlPlane
from .kube import KubeClient
from .provider.manager import Options, Provider
from .runtime import install_signal_handlers, setup_logging


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="incluster-ipam", description=__doc__)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="run the provider against a cluster (what the Deployment runs)")
    add_provider_flags(run)
    run.add_argument(
        "--kubeconfig", type=Path, default=None, help="kubeconfig (default: $KUBECONFIG, in-cluster)"
    )

    dev = commands.add_parser(
        "dev-cluster",
        help="run a local control plane (etcd + kube-apiserver) with the Cluster API CRDs until Ctrl-C",
    )
    dev.add_argument(
        "--kubeconfig", type=Path, default=Path(".dev/kubeconfig"), help="where to write the kubeconfig"
    )
    dev.add_argument(
        "--workdir", type=Path, default=Path(".dev/controlplane"), help="PKI, etcd data and process logs"
    )
    dev.add_argument("--capi-version", default=None, help="Cluster API release whose CRDs to install")
    return parser


def add_provider_flags(parser: argparse.ArgumentParser) -> None:
    """Upstream's flags (spec §6.1) plus ours."""
    parser.add_argument(
        "--leader-elect", action="store_true", help="elect one active replica through a Lease"
    )
    parser.add_argument(
        "--leader-election-namespace", default=None, help="namespace of the Lease (default: own)"
    )
    parser.add_argument("--namespace", default=None, help="only watch this namespace (default: all)")
    parser.add_argument(
        "--watch-filter", default=None, help="only claims labelled cluster.x-k8s.io/watch-filter=<value>"
    )
    parser.add_argument(
        "--webhook-port", type=int, default=9443, help="webhook server port; 0 disables webhooks"
    )
    parser.add_argument("--webhook-host", default="0.0.0.0", help="webhook server address")
    parser.add_argument(
        "--webhook-cert-dir", type=Path, default=Path("/tmp/k8s-webhook-server/serving-certs")
    )
    parser.add_argument("--webhook-cert-name", default="tls.crt")
    parser.add_argument("--webhook-key-name", default="tls.key")
    parser.add_argument(
        "--health-probe-bind-address", default=":8081", help="/healthz and /readyz; 0 disables"
    )
    parser.add_argument("--metrics-bind-address", default=":8080", help="Prometheus /metrics; 0 disables")
    parser.add_argument("--workers", type=int, default=32, help="claims reconciled concurrently")
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    parser.add_argument("--log-format", default="text", choices=["text", "json"])


def provider_options(args: argparse.Namespace, **overrides: Any) -> Options:
    fields: dict[str, Any] = {
        "namespace": args.namespace,
        "watch_filter": args.watch_filter,
        "leader_elect": args.leader_elect,
        "leader_election_namespace": args.leader_election_namespace,
        "webhook_host": args.webhook_host,
        "webhook_port": args.webhook_port,
        "webhook_cert_dir": args.webhook_cert_dir,
        "webhook_cert_name": args.webhook_cert_name,
        "webhook_key_name": args.webhook_key_name,
        "health_address": args.health_probe_bind_address,
        "metrics_address": args.metrics_bind_address,
        "workers": args.workers,
    }
    fields.update(overrides)
    return Options(**fields)


async def _run(args: argparse.Namespace) -> int:
    stop = install_signal_handlers()
    async with KubeClient.from_environment(args.kubeconfig) as client:
        return await Provider(client, provider_options(args)).run(stop)


async def _wait_for_stop_signal() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


async def _dev_cluster(args: argparse.Namespace) -> int:
    kubeconfig = args.kubeconfig.resolve()
    plane = ControlPlane(
        capi_version=args.capi_version or CURRENT_CAPI,
        workdir=args.workdir.resolve(),
        kubeconfig_path=kubeconfig,
    )
    print("starting etcd and kube-apiserver on 127.0.0.1 ...", flush=True)
    async with plane:
        print(
            f"control plane ready in {plane.startup_seconds:.1f} s: {plane.server}\n"
            f"  kubeconfig:  {kubeconfig}\n"
            f"  logs:        {plane.workdir / 'logs'}\n"
            f"  try:         kubectl --kubeconfig {kubeconfig} get crd\n"
            "Press Ctrl-C to stop.",
            flush=True,
        )
        await _wait_for_stop_signal()
        print("stopping ...", flush=True)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    setup_logging(
        getattr(args, "log_level", "info"), json_format=getattr(args, "log_format", "text") == "json"
    )
    if args.command == "run":
        return asyncio.run(_run(args))
    if args.command == "dev-cluster":
        return asyncio.run(_dev_cluster(args))
    return 2  # pragma: no cover - argparse rejects unknown commands


if __name__ == "__main__":
    sys.exit(main())
