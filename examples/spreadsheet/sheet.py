"""The spreadsheet: one row per address, saved to a CSV file after every change.

    sheet,address,prefix,gateway,state,claim,uid
    lab,10.20.0.10,24,10.20.0.1,free,,
    lab,10.20.0.11,24,10.20.0.1,held,default/vm-1,3f0c...

`state` is `free`, `reserved` (handed to a claim whose IPAddress is being created) or `held` (by the
IPAddress named `claim`, whose UID is `uid`). A person may add rows while the provider is stopped; the
provider owns the file while it runs.
"""

from __future__ import annotations

import asyncio
import csv
import io
import os
from dataclasses import dataclass, fields
from pathlib import Path

FREE, RESERVED, HELD = "free", "reserved", "held"
COLUMNS = ("sheet", "address", "prefix", "gateway", "state", "claim", "uid")


@dataclass
class Row:
    sheet: str
    address: str
    prefix: int
    gateway: str = ""
    state: str = FREE
    claim: str = ""  # the claim key (reserved) or the IPAddress key (held): `namespace/name`
    uid: str = ""  # the holding IPAddress's UID

    def free(self) -> None:
        self.state, self.claim, self.uid = FREE, "", ""


class SheetError(ValueError):
    """The file is not a spreadsheet of addresses; the message names the line and column."""


class Sheet:
    """The rows of a CSV file, in file order (the first free row of a sheet is handed out first)."""

    def __init__(self, path: Path, rows: list[Row]) -> None:
        self.path = path
        self.rows = rows
        self._saving = asyncio.Lock()

    @classmethod
    def load(cls, path: Path) -> Sheet:
        rows = []
        with path.open(newline="") as file:
            reader = csv.DictReader(file)
            missing = set(COLUMNS[:3]) - set(reader.fieldnames or ())
            if missing:
                raise SheetError(f"{path}: missing columns {sorted(missing)}")
            for line, record in enumerate(reader, start=2):
                try:
                    prefix = int(record["prefix"])
                except (TypeError, ValueError):
                    raise SheetError(f"{path}:{line}: prefix {record['prefix']!r} is not a number") from None
                state = record.get("state") or FREE
                if state not in (FREE, RESERVED, HELD):
                    raise SheetError(f"{path}:{line}: state {state!r} is not free, reserved or held")
                rows.append(
                    Row(
                        sheet=record["sheet"],
                        address=record["address"],
                        prefix=prefix,
                        gateway=record.get("gateway") or "",
                        state=state,
                        claim=record.get("claim") or "",
                        uid=record.get("uid") or "",
                    )
                )
        return cls(path, rows)

    def of(self, sheet: str) -> list[Row]:
        return [row for row in self.rows if row.sheet == sheet]

    def text(self) -> str:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(COLUMNS)
        for row in self.rows:
            writer.writerow([getattr(row, f.name) for f in fields(row)])
        return out.getvalue()

    async def save(self) -> None:
        """Write the rows as they are now (atomically: a crash leaves the old file or the new one), off the
        event loop. Saves are ordered: a later save never lands before an earlier one."""
        async with self._saving:
            await asyncio.to_thread(_replace, self.path, self.text())


def _replace(path: Path, text: str) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text)
    os.replace(temporary, path)
