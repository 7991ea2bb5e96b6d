"""The spreadsheet as a `ClaimBackend`: claims of `Spreadsheet` pools get the first free row of their
sheet. Every change is made in memory first (so two claims reconciled at once never get one row) and then
saved to the file."""

from __future__ import annotations

import ipaddress
from collections import defaultdict
from collections.abc import Callable, Mapping
from typing import Any

from incluster_ipam.capi.contract import PoolRef
from incluster_ipam.capi.objects import address_text, key_of, uid_of
from incluster_ipam.claimcore import Allocation, Exhausted, Unavailable

from .sheet import FREE, HELD, RESERVED, Row, Sheet

GROUP = "sheets.example.com"
KIND = "Spreadsheet"


def _sheet_of(obj: Mapping[str, Any]) -> str | None:
    """The sheet a claim's or IPAddress's `spec.poolRef` names, if it names a Spreadsheet."""
    ref = (obj.get("spec") or {}).get("poolRef")
    if not isinstance(ref, Mapping) or ref.get("apiGroup") != GROUP or ref.get("kind") != KIND:
        return None
    name = ref.get("name")
    return name if isinstance(name, str) and name else None


class SpreadsheetBackend:
    """Addresses from the rows of a `Sheet`. Sheets are cluster-wide pools that are not Kubernetes objects
    (their `PoolRef` has no UID, so IPAddresses are owned by their claims only)."""

    def __init__(self, sheet: Sheet) -> None:
        self.sheet = sheet
        self.wake: Callable[[str], None] = lambda _claim_key: None  # the controller queues the claim
        self._waiting: dict[str, set[str]] = defaultdict(set)  # sheet -> claims waiting for a free row

    # ---- which claims are ours -----------------------------------------------------------------------

    def pool_key(self, claim: Mapping[str, Any]) -> str | None:
        return _sheet_of(claim)

    def pool_of_address(self, address: Mapping[str, Any]) -> str | None:
        return _sheet_of(address)

    def describe(self, pool_key: str) -> str:
        return f"{KIND} {pool_key}"

    def pool(self, pool_key: str) -> PoolRef | None:
        if not self.sheet.of(pool_key):
            return None
        return PoolRef(
            key=pool_key, group=GROUP, version="v1", kind=KIND, name=pool_key, namespace="", uid=""
        )

    def unusable(self, pool: PoolRef) -> str | None:
        return None

    # ---- reservations ---------------------------------------------------------------------------------

    def _row_of_claim(self, claim_key: str, *states: str) -> Row | None:
        return next((r for r in self.sheet.rows if r.claim == claim_key and r.state in states), None)

    async def reserve(self, claim_key: str, pool: PoolRef, requested: str | None = None) -> Allocation:
        row = self._row_of_claim(claim_key, RESERVED)  # a retry after a create of unknown outcome
        if row is not None and requested is not None and not _same(row.address, requested):
            await self._free(row)  # it asks for another address now
            row = None
        if row is None:
            row = self._free_row(claim_key, pool, requested)
            row.state, row.claim = RESERVED, claim_key
            await self.sheet.save()
        return Allocation(row.address, row.prefix, row.gateway)

    def _free_row(self, claim_key: str, pool: PoolRef, requested: str | None) -> Row:
        rows = self.sheet.of(pool.key)
        if requested is None:
            found = next((r for r in rows if r.state == FREE), None)
            if found is None:
                self._waiting[pool.key].add(claim_key)
                raise Exhausted
            return found
        try:
            ipaddress.ip_address(requested.strip())
        except ValueError:
            raise Unavailable("is not an IP address") from None
        found = next((r for r in rows if _same(r.address, requested)), None)
        if found is None:
            raise Unavailable(f"is not a row of sheet {pool.key!r}")
        if found.state != FREE:
            self._waiting[pool.key].add(claim_key)
            raise Unavailable("is held by another claim; the claim gets it once its row is free")
        return found

    async def confirm(self, claim_key: str, pool: PoolRef, address: Mapping[str, Any]) -> None:
        row = self._row_of_claim(claim_key, RESERVED)
        if row is not None:
            row.state, row.claim, row.uid = HELD, key_of(address), uid_of(address) or ""
            await self.sheet.save()

    async def abandon(self, claim_key: str) -> None:
        for waiting in self._waiting.values():
            waiting.discard(claim_key)
        row = self._row_of_claim(claim_key, RESERVED)
        if row is not None:
            await self._free(row)

    async def _free(self, row: Row) -> None:
        row.free()
        await self.sheet.save()
        for claim_key in sorted(self._waiting.pop(row.sheet, set())):
            self.wake(claim_key)

    # ---- what the rows say about IPAddresses ------------------------------------------------------------

    def known_address(self, claim_key: str, pool: PoolRef) -> str | None:
        row = self._row_of_claim(claim_key, HELD)
        return row.address if row is not None and row.sheet == pool.key else None

    def holds(self, address_key: str) -> bool:
        return self._row_of_claim(address_key, HELD) is not None

    def _row_of_address(self, sheet: str, address: Mapping[str, Any]) -> Row | None:
        text = address_text(address)
        return next((r for r in self.sheet.of(sheet) if r.address == text), None)

    def refusal(self, claim: Mapping[str, Any], pool: PoolRef, address: Mapping[str, Any]) -> str | None:
        row = self._row_of_address(pool.key, address)
        if row is None:
            return f"{address_text(address)} is not a row of sheet {pool.key}"
        if row.state != FREE and row.claim not in (key_of(claim), key_of(address)):
            return f"{row.address} is {row.state} by {row.claim} in sheet {pool.key}"
        return None

    def outside(self, pool: PoolRef, address: Mapping[str, Any]) -> bool:
        return self._row_of_address(pool.key, address) is None

    async def adopted(self, pool: PoolRef, address: Mapping[str, Any]) -> None:
        row = self._row_of_address(pool.key, address)
        if row is not None and (row.state, row.claim, row.uid) != (
            HELD,
            key_of(address),
            uid_of(address) or "",
        ):
            row.state, row.claim, row.uid = HELD, key_of(address), uid_of(address) or ""
            await self.sheet.save()

    async def released(self, address: Mapping[str, Any]) -> None:
        row = self._row_of_claim(key_of(address), HELD)
        if row is not None and row.uid in ("", uid_of(address) or ""):
            await self._free(row)

    async def gone(self, address_key: str, keep_uid: str | None) -> None:
        row = self._row_of_claim(address_key, HELD)
        if row is not None and row.uid != (keep_uid or ""):
            await self._free(row)

    def needs_check(self, address_key: str) -> bool:
        return False

    def grace_remaining(self, claim: Mapping[str, Any], pool: PoolRef | None, now: float) -> float:
        return 0.0


def _same(address: str, requested: str) -> bool:
    """One address in two spellings (`fd00::5` and `fd00:0::0005`)."""
    try:
        return ipaddress.ip_address(address.strip()) == ipaddress.ip_address(requested.strip())
    except ValueError:
        return False
