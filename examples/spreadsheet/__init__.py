"""A Cluster API IPAM provider whose addresses come from a spreadsheet (a CSV file), built on the reusable
claim lifecycle `incluster_ipam.claimcore`: about 250 lines for what an IPAM must decide (which rows are
free, who holds what), none for finalizers, owner references, pauses, adoption, release, conditions or
Events. `docs/extending.md` walks through it.

    python -m examples.spreadsheet --kubeconfig kubeconfig --sheet addresses.csv

Claims use it with `spec.poolRef: {apiGroup: sheets.example.com, kind: Spreadsheet, name: <sheet>}`.
"""

from .backend import GROUP, KIND, SpreadsheetBackend
from .controller import run_claims
from .sheet import Row, Sheet

__all__ = ["GROUP", "KIND", "Row", "Sheet", "SpreadsheetBackend", "run_claims"]
