"""The example spreadsheet backend (`examples/spreadsheet`), run as a provider against the real control
plane: claims of a Spreadsheet get rows of the CSV file, a full sheet makes claims wait until a row is
freed, and a deleted claim frees its row."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from examples.spreadsheet import GROUP as SHEETS
from examples.spreadsheet import KIND, Sheet, SpreadsheetBackend, run_claims

from incluster_ipam.api.constants import GROUP
from incluster_ipam.devcluster import ControlPlane
from incluster_ipam.kube import NAMESPACES, KubeClient, Resource
from incluster_ipam.kube.errors import is_not_found

from ..support import eventually

CLAIMS = Resource(GROUP, "v1beta2", "ipaddressclaims", "IPAddressClaim", True)
ADDRESSES = Resource(GROUP, "v1beta2", "ipaddresses", "IPAddress", True)

CSV = """sheet,address,prefix,gateway,state,claim,uid
lab,10.20.0.10,24,10.20.0.1,free,,
lab,10.20.0.11,24,10.20.0.1,free,,
other,192.168.7.5,25,,free,,
"""


@pytest.fixture
async def client(control_plane: ControlPlane) -> AsyncIterator[KubeClient]:
    async with KubeClient.from_kubeconfig(control_plane.kubeconfig_path) as kube:
        yield kube


async def namespace(client: KubeClient) -> str:
    name = f"sheet-{uuid.uuid4().hex[:8]}"
    await client.create(NAMESPACES, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    return name


async def claim(client: KubeClient, ns: str, name: str, sheet: str = "lab") -> dict[str, Any]:
    body = {
        "apiVersion": CLAIMS.api_version,
        "kind": "IPAddressClaim",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"poolRef": {"apiGroup": SHEETS, "kind": KIND, "name": sheet}},
    }
    return await client.create(CLAIMS, body, ns)


async def address_of(client: KubeClient, ns: str, name: str) -> dict[str, Any] | None:
    try:
        return await client.get(ADDRESSES, name, ns)
    except Exception as exc:
        if is_not_found(exc):
            return None
        raise


def rows(path: Path) -> list[list[str]]:
    return [line.split(",") for line in path.read_text().splitlines()[1:]]


async def test_claims_get_rows_wait_when_the_sheet_is_full_and_release_frees_rows(
    client: KubeClient, tmp_path: Path
) -> None:
    path = tmp_path / "addresses.csv"
    path.write_text(CSV)
    backend = SpreadsheetBackend(Sheet.load(path))
    stop = asyncio.Event()
    ns = await namespace(client)
    running = asyncio.create_task(run_claims(client, backend, stop, namespace=ns))
    try:
        uids = {}
        for name in ("vm-1", "vm-2", "vm-3"):  # the lab sheet has two rows: one of the three waits
            uids[name] = (await claim(client, ns, name))["metadata"]["uid"]
        await claim(client, ns, "edge", sheet="other")

        async def exhausted(name: str) -> bool:
            got = await client.get(CLAIMS, name, ns)
            ready = [c for c in (got.get("status") or {}).get("conditions") or [] if c["type"] == "Ready"]
            return bool(ready) and ready[0]["reason"] == "PoolExhausted"

        async def settled() -> tuple[dict[str, dict[str, Any]], str] | None:
            bound = {n: a for n in uids if (a := await address_of(client, ns, n)) is not None}
            waiting = [n for n in uids if n not in bound and await exhausted(n)]
            return (bound, waiting[0]) if len(bound) == 2 and len(waiting) == 1 else None

        bound, waiter = await eventually(settled, what="two lab claims bound and one PoolExhausted")
        edge = await eventually(lambda: address_of(client, ns, "edge"), what="edge's IPAddress")
        assert {a["spec"]["address"] for a in bound.values()} == {"10.20.0.10", "10.20.0.11"}
        one_name, one = sorted(bound.items())[0]
        assert one["spec"]["gateway"] == "10.20.0.1"
        assert (edge["spec"]["address"], edge["spec"]["prefix"]) == ("192.168.7.5", 25)
        assert one["spec"]["poolRef"] == {"apiGroup": SHEETS, "kind": KIND, "name": "lab"}
        # Owned by its claim only: a sheet is not a Kubernetes object.
        assert [o["uid"] for o in one["metadata"]["ownerReferences"]] == [uids[one_name]]

        await eventually(
            lambda: asyncio.sleep(0, result=all(r[4] == "held" for r in rows(path))),
            what="every row held in the file",
        )
        held = {r[5]: r[1] for r in rows(path)}
        assert held == {
            **{f"{ns}/{n}": a["spec"]["address"] for n, a in bound.items()},
            f"{ns}/edge": "192.168.7.5",
        }

        await client.delete(CLAIMS, one_name, ns)
        three = await eventually(
            lambda: address_of(client, ns, waiter), what=f"{waiter}'s IPAddress after {one_name} went"
        )
        assert three["spec"]["address"] == one["spec"]["address"]
        await eventually(
            lambda: asyncio.sleep(0, result=not any(r[5] == f"{ns}/{one_name}" for r in rows(path))),
            what=f"{one_name}'s row freed",
        )
        assert {r[5]: r[1] for r in rows(path)}[f"{ns}/{waiter}"] == one["spec"]["address"]
        assert await address_of(client, ns, one_name) is None
    finally:
        stop.set()
        await asyncio.wait_for(running, 30)


async def test_a_restart_keeps_what_the_file_says(client: KubeClient, tmp_path: Path) -> None:
    """A new process reads the held rows back: an existing IPAddress is adopted, nothing is handed out
    twice."""
    path = tmp_path / "addresses.csv"
    path.write_text(CSV)
    ns = await namespace(client)
    for attempt in range(2):
        backend = SpreadsheetBackend(Sheet.load(path))
        stop = asyncio.Event()
        running = asyncio.create_task(run_claims(client, backend, stop, namespace=ns))
        try:
            if attempt == 0:
                await claim(client, ns, "vm-1")
                await eventually(lambda: address_of(client, ns, "vm-1"), what="vm-1's IPAddress")
            else:
                await claim(client, ns, "vm-2")
                two = await eventually(lambda: address_of(client, ns, "vm-2"), what="vm-2's IPAddress")
                assert two["spec"]["address"] == "10.20.0.11"
        finally:
            stop.set()
            await asyncio.wait_for(running, 30)
