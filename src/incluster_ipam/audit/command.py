"""`incluster-ipam audit`: read one snapshot of the cluster, print findings, exit 0 (clean), 1 or 2 (error).

Claims and IPAddresses are read in the newest IPAM contract version the cluster serves (v1beta2, else
v1beta1), pools in v1alpha2, Clusters (for pauses) in the newest served version if Cluster API core is
installed. Read-only: nothing is written.

With `--namespace`, the report covers that namespace's claims and IPAddresses, its namespaced pools and the
global pools. IPAddresses of other namespaces are still read when permitted, because they hold addresses of
the global pools (duplicates, room left); when that list is forbidden, unbound claims of global pools are
not judged and a note says so.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from incluster_ipam.api.constants import GROUP, POOL_KINDS, PoolKind
from incluster_ipam.capi.contract import NoContractError
from incluster_ipam.capi.resources import pool_resource
from incluster_ipam.claimcore.discovery import discover
from incluster_ipam.kube import ApiError, ConfigError, KubeClient, KubeError, Obj, Resource

from .findings import DEFAULT_GRACE_SECONDS, FindingKind, Report, audit

EXIT_CLEAN = 0
EXIT_FINDINGS = 1
EXIT_ERROR = 2


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The `audit` subcommand's flags."""
    parser.add_argument(
        "--kubeconfig", type=Path, default=None, help="kubeconfig (default: $KUBECONFIG, in-cluster)"
    )
    parser.add_argument(
        "--namespace", type=_namespace, default=None, help="only audit this namespace (default: all)"
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument(
        "--grace-seconds",
        type=grace_seconds,
        default=DEFAULT_GRACE_SECONDS,
        help="skip orphaned addresses and unbound claims younger than this (in-flight work); default 30",
    )


def _namespace(text: str) -> str:
    if not text:
        raise argparse.ArgumentTypeError("must not be empty")
    return text


def grace_seconds(text: str) -> float:
    """The `--grace` flag: a finite, non-negative number of seconds (an argparse `type`)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a non-negative number of seconds, not {text!r}")
    return value


# ---- reading ---------------------------------------------------------------------------------------------


@dataclass
class Snapshot:
    """What was read from the cluster."""

    server: str
    contract: str
    pools: list[Obj] = field(default_factory=list)
    claims: list[Obj] = field(default_factory=list)
    addresses: list[Obj] = field(default_factory=list)
    clusters: list[Obj] | None = None
    global_usage_complete: bool = True
    notes: list[str] = field(default_factory=list)


def _with_kind(items: list[Obj], resource: Resource) -> list[Obj]:
    for item in items:
        item.setdefault("apiVersion", resource.api_version)
        item.setdefault("kind", resource.kind)
    return items


async def _list_pools(client: KubeClient, kind: PoolKind, namespace: str | None) -> list[Obj] | None:
    resource = pool_resource(kind)
    try:
        listed = await client.list(resource, namespace if kind.namespaced else None)
    except ApiError as exc:
        if exc.is_not_found:
            return None
        raise
    return _with_kind(listed.items, resource)


async def _list_addresses(
    client: KubeClient, resource: Resource, namespace: str | None
) -> tuple[list[Obj], bool]:
    """All IPAddresses in scope, plus other namespaces' (for global pools) when allowed."""
    if namespace is not None:
        try:
            return _with_kind((await client.list(resource)).items, resource), True
        except ApiError as exc:
            if not exc.is_forbidden:
                raise
        return _with_kind((await client.list(resource, namespace)).items, resource), False
    return _with_kind((await client.list(resource)).items, resource), True


async def _list_clusters(
    client: KubeClient, resource: Resource | None, namespace: str | None
) -> tuple[list[Obj] | None, str]:
    if resource is None:
        return None, "Cluster API core is not installed: Cluster pauses were not considered"
    try:
        return _with_kind((await client.list(resource, namespace)).items, resource), ""
    except ApiError as exc:
        if not exc.is_forbidden:
            raise
    return None, "Clusters could not be read (forbidden): Cluster pauses were not considered"


async def read_cluster(client: KubeClient, namespace: str | None = None) -> Snapshot:
    """One read of everything the audit looks at (raises KubeError, NoContractError)."""
    found = await discover(client)
    contract, claims_resource, addresses_resource = found.contract, found.claims, found.addresses
    try:
        async with asyncio.TaskGroup() as group:  # the first failure cancels the other reads
            claims_read = group.create_task(client.list(claims_resource, namespace))
            addresses_read = group.create_task(_list_addresses(client, addresses_resource, namespace))
            clusters_read = group.create_task(_list_clusters(client, found.clusters, namespace))
            pools_read = [group.create_task(_list_pools(client, k, namespace)) for k in POOL_KINDS]
    except ExceptionGroup as failed:
        raise failed.exceptions[0] from None
    claims = claims_read.result()
    addresses, complete = addresses_read.result()
    clusters, cluster_note = clusters_read.result()
    pool_lists = [task.result() for task in pools_read]
    snapshot = Snapshot(
        server=client.config.server,
        contract=contract.version,
        claims=_with_kind(claims.items, claims_resource),
        addresses=addresses,
        clusters=clusters,
        global_usage_complete=complete,
    )
    for kind, pools in zip(POOL_KINDS, pool_lists, strict=True):
        if pools is None:
            snapshot.notes.append(f"{kind.kind} is not installed (no {kind.plural}.{GROUP} v1alpha2)")
        else:
            snapshot.pools.extend(pools)
    if cluster_note:
        snapshot.notes.append(cluster_note)
    return snapshot


# ---- output ------------------------------------------------------------------------------------------------


def _in_namespace(objects: list[Obj], namespace: str | None) -> int:
    if namespace is None:
        return len(objects)
    return sum(1 for o in objects if (o.get("metadata") or {}).get("namespace") == namespace)


def _scanned(snapshot: Snapshot, namespace: str | None) -> dict[str, int]:
    return {
        "pools": len(snapshot.pools),
        "claims": _in_namespace(snapshot.claims, namespace),
        "ipAddresses": _in_namespace(snapshot.addresses, namespace),
    }


def _counts(report: Report) -> dict[str, int]:
    counted = Counter(f.kind for f in report.findings)
    return {kind.value: counted[kind] for kind in FindingKind if counted[kind]}


def render_json(report: Report, snapshot: Snapshot, namespace: str | None, grace_seconds: float) -> str:
    body: dict[str, Any] = {
        "server": snapshot.server,
        "contract": f"{GROUP}/{snapshot.contract}",
        "namespace": namespace,
        "graceSeconds": grace_seconds,
        "scanned": _scanned(snapshot, namespace),
        "clean": report.clean,
        "counts": _counts(report),
        "findings": [f.to_dict() for f in report.findings],
        "notes": [*snapshot.notes, *report.notes],
    }
    return json.dumps(body, indent=2)


def render_text(report: Report, snapshot: Snapshot, namespace: str | None) -> str:
    scanned = _scanned(snapshot, namespace)
    scope = f"namespace {namespace}" if namespace else "all namespaces"
    lines = [
        f"audit of {snapshot.server} ({scope}, {GROUP}/{snapshot.contract}): {scanned['pools']} pools, "
        f"{scanned['claims']} claims, {scanned['ipAddresses']} IPAddresses"
    ]
    width = max(len(kind.value) for kind in FindingKind)
    lines += [f"{f.kind.value:<{width}}  {f.message}" for f in report.findings]
    lines += [f"note: {note}" for note in [*snapshot.notes, *report.notes]]
    if report.clean:
        lines.append("no findings")
    else:
        total = len(report.findings)
        summary = ", ".join(f"{n} {kind}" for kind, n in _counts(report).items())
        lines.append(f"{total} finding{'s' if total != 1 else ''}: {summary}")
    return "\n".join(lines)


# ---- entry points ------------------------------------------------------------------------------------------


async def audit_main(
    kubeconfig: str | Path | None = None,
    namespace: str | None = None,
    *,
    json_output: bool = False,
    grace_seconds: float = DEFAULT_GRACE_SECONDS,
    out: TextIO | None = None,
    err: TextIO | None = None,
    context: str | None = None,
    prog: str = "incluster-ipam audit",
) -> int:
    """Run the audit and print the report; 0 when clean, 1 with findings, 2 when the cluster can't be read.
    `context` picks a kubeconfig context (default: the current one); `prog` prefixes error messages."""
    out = out if out is not None else sys.stdout
    err = err if err is not None else sys.stderr
    try:
        async with KubeClient.from_environment(kubeconfig, context) as client:
            snapshot = await read_cluster(client, namespace)
    except (ConfigError, KubeError, NoContractError, OSError) as exc:
        print(f"{prog}: error: {exc}", file=err)
        return EXIT_ERROR
    report = audit(
        snapshot.pools,
        snapshot.claims,
        snapshot.addresses,
        now=time.time(),
        grace_seconds=grace_seconds,
        clusters=snapshot.clusters,
        namespace=namespace,
        global_usage_complete=snapshot.global_usage_complete,
    )
    if json_output:
        print(render_json(report, snapshot, namespace, grace_seconds), file=out)
    else:
        print(render_text(report, snapshot, namespace), file=out)
    return EXIT_CLEAN if report.clean else EXIT_FINDINGS


async def run(args: argparse.Namespace) -> int:
    """The `audit` subcommand, from parsed flags (see `add_arguments`)."""
    return await audit_main(
        args.kubeconfig, args.namespace, json_output=args.json, grace_seconds=args.grace_seconds
    )
