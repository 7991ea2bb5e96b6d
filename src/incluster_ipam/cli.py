"""The `incluster-ipam` command line."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from . import __version__
from .devcluster import CURRENT_CAPI, ControlPlane


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="incluster-ipam", description=__doc__)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

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
    if args.command == "dev-cluster":
        return asyncio.run(_dev_cluster(args))
    return 2  # pragma: no cover - argparse rejects unknown commands


if __name__ == "__main__":
    sys.exit(main())
