"""The example spreadsheet backend (`examples/spreadsheet`) under the claim lifecycle, with the claim-core
fakes: rows handed out in file order, idempotent reservations, the file kept in step, waiting claims woken,
adoption only of rows that are free or the claim's own."""

from __future__ import annotations

from pathlib import Path

import pytest
from examples.spreadsheet import GROUP, KIND, Sheet, SpreadsheetBackend
from examples.spreadsheet.sheet import SheetError

from incluster_ipam.kube import TransportError
from tests.unit.claimcore.fakes import World

CSV = """sheet,address,prefix,gateway,state,claim,uid
lab,10.20.0.10,24,10.20.0.1,free,,
lab,10.20.0.11,24,10.20.0.1,free,,
"""


@pytest.fixture
def sheet_file(tmp_path: Path) -> Path:
    path = tmp_path / "addresses.csv"
    path.write_text(CSV)
    return path


def world_over(path: Path) -> tuple[World, SpreadsheetBackend]:
    backend = SpreadsheetBackend(Sheet.load(path))
    return World(backend=backend), backend


def rows(path: Path) -> list[list[str]]:
    return [line.split(",") for line in path.read_text().splitlines()[1:]]


def claim(world: World, name: str, sheet: str = "lab") -> None:
    world.claim(name, pool=sheet, kind=KIND, group=GROUP)


async def test_claims_get_rows_in_order_and_the_file_follows(sheet_file: Path) -> None:
    world, _ = world_over(sheet_file)
    claim(world, "a")
    claim(world, "b")
    await world.reconciler.reconcile("ns/a")
    await world.reconciler.reconcile("ns/b")
    a, b = world.stored_address("a"), world.stored_address("b")
    assert a is not None
    assert b is not None
    assert (a["spec"]["address"], b["spec"]["address"]) == ("10.20.0.10", "10.20.0.11")
    assert [(r[4], r[5], r[6]) for r in rows(sheet_file)] == [
        ("held", "ns/a", a["metadata"]["uid"]),
        ("held", "ns/b", b["metadata"]["uid"]),
    ]
    assert [o["kind"] for o in a["metadata"]["ownerReferences"]] == ["IPAddressClaim"]


async def test_a_full_sheet_makes_claims_wait_and_a_release_wakes_them(sheet_file: Path) -> None:
    world, backend = world_over(sheet_file)
    woken: list[str] = []
    backend.wake = woken.append
    for name in ("a", "b", "c"):
        claim(world, name)
        await world.reconciler.reconcile(f"ns/{name}")
    ready = world.ready("c")
    assert ready is not None
    assert (ready["reason"], ready["message"]) == (
        "PoolExhausted",
        "pool Spreadsheet lab has no free address",
    )
    await world.api.delete(world.claims_resource, "a", "ns")
    await world.reconciler.reconcile("ns/a")
    assert woken == ["ns/c"]
    await world.reconciler.reconcile("ns/c")
    c = world.stored_address("c")
    assert c is not None
    assert c["spec"]["address"] == "10.20.0.10"


async def test_a_retried_create_gets_the_same_row(sheet_file: Path) -> None:
    world, _ = world_over(sheet_file)
    claim(world, "a")
    world.api.fail("create", TransportError("reset"))
    with pytest.raises(TransportError):
        await world.reconciler.reconcile("ns/a")
    assert rows(sheet_file)[0][4:6] == ["reserved", "ns/a"]
    await world.reconciler.reconcile("ns/a")
    address = world.stored_address("a")
    assert address is not None
    assert address["spec"]["address"] == "10.20.0.10"
    assert rows(sheet_file)[1][4] == "free"


async def test_an_existing_ipaddress_on_a_free_row_is_adopted_and_one_on_a_held_row_refused(
    sheet_file: Path,
) -> None:
    world, _ = world_over(sheet_file)
    claim(world, "a")
    await world.reconciler.reconcile("ns/a")
    for name, text in (("restored", "10.20.0.11"), ("squatter", "10.20.0.10"), ("stranger", "10.99.0.1")):
        claim(world, name)
        body = world.address(name, text)
        body["spec"]["poolRef"] = {"apiGroup": GROUP, "kind": KIND, "name": "lab"}
        world.api.objects[("ipaddresses", "ns", name)]["spec"] = body["spec"]
        await world.reconciler.reconcile(f"ns/{name}")
    assert rows(sheet_file)[1][4:6] == ["held", "ns/restored"]
    squatter, stranger = world.ready("squatter"), world.ready("stranger")
    assert squatter is not None
    assert stranger is not None
    assert squatter["message"] == "10.20.0.10 is held by ns/a in sheet lab"
    assert stranger["message"] == "10.99.0.1 is not a row of sheet lab"


async def test_a_claim_of_an_unknown_sheet_is_pool_not_ready(sheet_file: Path) -> None:
    world, _ = world_over(sheet_file)
    claim(world, "a", sheet="nope")
    await world.reconciler.reconcile("ns/a")
    ready = world.ready("a")
    assert ready is not None
    assert (ready["reason"], ready["message"]) == ("PoolNotReady", "pool Spreadsheet nope not found")


def test_a_broken_file_says_where(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("sheet,address,prefix\nlab,10.0.0.1,twenty\n")
    with pytest.raises(SheetError, match=r"bad\.csv:2: prefix 'twenty'"):
        Sheet.load(path)
    path.write_text("sheet,address\n")
    with pytest.raises(SheetError, match="missing columns"):
        Sheet.load(path)
