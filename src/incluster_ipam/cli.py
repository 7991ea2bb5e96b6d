"""The `incluster-ipam` command line."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from . import __version__
from .api.crds import crds
from .audit import command as audit_command
from .devcluster import CURRENT_CAPI, ControlPlane
from .devcluster.controlplane import free_port
from .kube import KubeClient
from .kube.client import LIST_PAGE_SIZE, WATCH_IDLE_TIMEOUT
from .provider import Options, Provider
from .runtime import collector, install_signal_handlers, setup_logging
from .serving.tls import TLS_VERSIONS, cipher_list
from .webhooks.registration import install_webhooks


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
    dev.add_argument("--no-provider", action="store_true", help="only the control plane, no provider")
    dev.add_argument(
        "--controller-manager",
        action="store_true",
        help="also run kube-controller-manager (garbage collector, namespace controller)",
    )
    add_provider_flags(dev)
    # Local development: plain metrics on :8080, no authenticated diagnostics endpoint.
    dev.set_defaults(metrics_bind_address=":8080", diagnostics_address="0")

    audit = commands.add_parser(
        "audit",
        help="report duplicate, orphaned and out-of-range addresses and unbound claims; exit 1 if any",
    )
    audit_command.add_arguments(audit)
    return parser


def add_provider_flags(parser: argparse.ArgumentParser) -> None:
    """Upstream's flags (spec §6.1) plus ours."""
    parser.add_argument(
        "--leader-elect", action="store_true", help="elect one active replica through a Lease"
    )
    parser.add_argument(
        "--leader-election-namespace", default=None, help="namespace of the Lease (default: own)"
    )
    parser.add_argument("--leader-elect-lease-duration", type=float, default=15.0, help="seconds")
    parser.add_argument("--leader-elect-renew-deadline", type=float, default=10.0, help="seconds")
    parser.add_argument("--leader-elect-retry-period", type=float, default=2.0, help="seconds")
    parser.add_argument(
        "--leader-elect-identity", default=None, help="this replica's name (default: host_uuid)"
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
    parser.add_argument(
        "--metrics-bind-address", default="0", help="plain-HTTP /metrics, no auth (development); 0 disables"
    )
    parser.add_argument(
        "--diagnostics-address",
        default=":8443",
        help="/metrics over HTTPS for callers the apiserver authenticates and authorizes; 0 disables",
    )
    parser.add_argument(
        "--insecure-diagnostics",
        action="store_true",
        help="serve --diagnostics-address over plain HTTP without authentication or authorization",
    )
    parser.add_argument(
        "--diagnostics-cert-dir",
        type=Path,
        default=None,
        help="tls.crt and tls.key of the diagnostics server, reloaded on change (default: self-signed)",
    )
    parser.add_argument(
        "--tls-min-version",
        default="VersionTLS12",
        choices=list(TLS_VERSIONS),
        help="minimum TLS version of the webhook and diagnostics servers",
    )
    parser.add_argument(
        "--tls-cipher-suites",
        type=_cipher_suites,
        default=None,
        metavar="SUITE,...",
        help="TLS 1.2 cipher suites of the webhook and diagnostics servers, by Go name (default: every "
        "ECDHE suite with AES-GCM or ChaCha20-Poly1305; TLS 1.3 suites are always on)",
    )
    parser.add_argument(
        "--watch-idle-timeout",
        type=float,
        default=WATCH_IDLE_TIMEOUT,
        help="seconds a watch may stay silent before its connection counts as dead (default 120)",
    )
    parser.add_argument("--workers", type=int, default=32, help="claims reconciled concurrently")
    parser.add_argument(
        "--list-page-size",
        type=_page_size,
        default=LIST_PAGE_SIZE,
        metavar="OBJECTS",
        help="objects per page when the caches and a takeover read a collection: larger pages cost the "
        "apiserver less CPU per object, smaller ones hold less memory at once (default 2000)",
    )
    parser.add_argument(
        "--normal-event-rate",
        type=_event_rate,
        default=2.0,
        metavar="PER_SECOND|unlimited",
        help="Normal Events (AddressAllocated, AddressReleased) written per second on average; Warning "
        "Events are never limited (default 2)",
    )
    parser.add_argument(
        "--normal-event-burst",
        type=int,
        default=20,
        help="Normal Events written at once, then the rate (default 20)",
    )
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    parser.add_argument("--log-format", default="text", choices=["text", "json"])


def _cipher_suites(text: str) -> tuple[str, ...]:
    suites = tuple(part.strip() for part in text.split(",") if part.strip())
    try:
        cipher_list(suites)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return suites


def _page_size(text: str) -> int:
    try:
        size = int(text)
    except ValueError:
        size = 0
    if size < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of objects, 1 or more, not {text!r}")
    return size


def _event_rate(text: str) -> float | None:
    if text == "unlimited":
        return None
    try:
        rate = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of events per second: {text!r}") from None
    if not rate >= 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more (or 'unlimited'), not {text!r}")
    return rate


def provider_options(args: argparse.Namespace, **overrides: Any) -> Options:
    fields: dict[str, Any] = {
        "namespace": args.namespace,
        "watch_filter": args.watch_filter,
        "leader_elect": args.leader_elect,
        "leader_election_namespace": args.leader_election_namespace,
        "lease_duration": args.leader_elect_lease_duration,
        "renew_deadline": args.leader_elect_renew_deadline,
        "retry_period": args.leader_elect_retry_period,
        "identity": args.leader_elect_identity,
        "webhook_host": args.webhook_host,
        "webhook_port": args.webhook_port,
        "webhook_cert_dir": args.webhook_cert_dir,
        "webhook_cert_name": args.webhook_cert_name,
        "webhook_key_name": args.webhook_key_name,
        "health_address": args.health_probe_bind_address,
        "metrics_address": args.metrics_bind_address,
        "diagnostics_address": args.diagnostics_address,
        "insecure_diagnostics": args.insecure_diagnostics,
        "diagnostics_cert_dir": args.diagnostics_cert_dir,
        "tls_min_version": args.tls_min_version,
        "tls_cipher_suites": args.tls_cipher_suites,
        "watch_idle_timeout": args.watch_idle_timeout,
        "workers": args.workers,
        "list_page_size": args.list_page_size,
        "normal_event_rate": args.normal_event_rate,
        "normal_event_burst": args.normal_event_burst,
    }
    fields.update(overrides)
    return Options(**fields)


async def _run(args: argparse.Namespace) -> int:
    stop = install_signal_handlers()
    async with KubeClient.from_environment(args.kubeconfig) as client:
        return await Provider(client, provider_options(args)).run(stop)


async def _dev_cluster(args: argparse.Namespace) -> int:
    """The main job for a first run: a local control plane, and the provider with its webhooks registered."""
    kubeconfig = args.kubeconfig.resolve()
    workdir = args.workdir.resolve()
    plane = ControlPlane(
        capi_version=args.capi_version or CURRENT_CAPI,
        extra_crds=crds(""),
        workdir=workdir,
        kubeconfig_path=kubeconfig,
        controller_manager=args.controller_manager,
    )
    stop = install_signal_handlers()
    names = "etcd, kube-apiserver and kube-controller-manager" if args.controller_manager else ""
    print(f"starting {names or 'etcd and kube-apiserver'} on 127.0.0.1 ...", flush=True)
    async with plane:
        print(f"control plane ready in {plane.startup_seconds:.1f} s: {plane.server}", flush=True)
        if args.no_provider:
            _print_usage(kubeconfig, workdir, None)
            await stop.wait()
            return 0
        return await _run_dev_provider(args, plane, kubeconfig, workdir, stop)


async def _run_dev_provider(
    args: argparse.Namespace, plane: ControlPlane, kubeconfig: Path, workdir: Path, stop: asyncio.Event
) -> int:
    cert_dir = workdir / "webhook"
    cert_dir.mkdir(parents=True, exist_ok=True)
    serving = plane.ca.serving(("127.0.0.1", "localhost"))
    (cert_dir / "tls.crt").write_bytes(serving.cert_pem)
    (cert_dir / "tls.key").write_bytes(serving.key_pem)
    options = provider_options(
        args,
        webhook_host="127.0.0.1",
        webhook_port=args.webhook_port or free_port(),
        webhook_cert_dir=cert_dir,
    )
    async with KubeClient.from_kubeconfig(kubeconfig) as client:
        provider = Provider(client, options)
        task = asyncio.create_task(provider.run(stop))
        ready = asyncio.create_task(provider.ready.wait())
        await asyncio.wait({task, ready}, return_when=asyncio.FIRST_COMPLETED)
        if task.done():
            return task.result()
        assert provider.webhook_url is not None
        await install_webhooks(client, provider.webhook_url, plane.ca.cert_pem)
        _print_usage(kubeconfig, workdir, provider.webhook_url)
        code = await task
    print("stopped.", flush=True)
    return code


def _print_usage(kubeconfig: Path, workdir: Path, webhook_url: str | None) -> None:
    lines = [
        f"  kubeconfig:  {kubeconfig}",
        f"  logs:        {workdir / 'logs'} (etcd, kube-apiserver)",
    ]
    if webhook_url:
        lines.append(f"  provider:    running here (webhooks at {webhook_url}); its log follows below")
        lines.append(f"  try:         kubectl --kubeconfig {kubeconfig} apply -f config/samples/")
        resources = "inclusterippools,globalinclusterippools,ipaddressclaims,ipaddresses"
        lines.append(f"               kubectl --kubeconfig {kubeconfig} get -A {resources}")
    else:
        lines.append(f"  try:         kubectl --kubeconfig {kubeconfig} get crd")
    print("\n".join([*lines, "Press Ctrl-C to stop."]), flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    setup_logging(
        getattr(args, "log_level", "info"), json_format=getattr(args, "log_format", "text") == "json"
    )
    if args.command == "run":
        collector.tune_for_bulk_reads()
        return asyncio.run(_run(args))
    if args.command == "dev-cluster":
        return asyncio.run(_dev_cluster(args))
    if args.command == "audit":
        return asyncio.run(audit_command.run(args))
    return 2  # pragma: no cover - argparse rejects unknown commands


if __name__ == "__main__":
    sys.exit(main())
