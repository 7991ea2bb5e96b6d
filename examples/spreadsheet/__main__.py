"""`python -m examples.spreadsheet --kubeconfig FILE --sheet FILE.csv`: run until Ctrl-C."""

from __future__ import annotations

import argparse
import asyncio
import logging
from pathlib import Path

from incluster_ipam.kube import KubeClient
from incluster_ipam.runtime import install_signal_handlers

from .backend import SpreadsheetBackend
from .controller import run_claims
from .sheet import Sheet


async def _main(kubeconfig: Path | None, sheet: Path) -> None:
    stop = asyncio.Event()
    install_signal_handlers(stop)
    async with KubeClient.from_environment(kubeconfig) as client:
        await run_claims(client, SpreadsheetBackend(Sheet.load(sheet)), stop)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m examples.spreadsheet", description=__doc__)
    parser.add_argument("--kubeconfig", type=Path, default=None)
    parser.add_argument("--sheet", type=Path, required=True, help="the CSV file of addresses")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    asyncio.run(_main(args.kubeconfig, args.sheet))


if __name__ == "__main__":
    main()
