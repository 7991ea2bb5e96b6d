"""`incluster-ipam audit` (spec §10.12): find duplicates, orphaned and out-of-range addresses, stuck claims.

`findings` is pure (Kubernetes JSON dicts in, typed findings out); `command` reads the cluster and prints.
"""

from __future__ import annotations

from .findings import Finding, FindingKind, ObjectRef, Report, audit

__all__ = ["Finding", "FindingKind", "ObjectRef", "Report", "audit"]
