"""`kubectl ipam` (the `kubectl-ipam` executable kubectl finds on PATH): how full the pools are, what a
pool holds, who holds an address, and the audit.

Connection flags follow kubectl plugins: `--kubeconfig`, `--context`, `$KUBECONFIG`; the namespace is
`-n`, else the context's, else "default"; `-A` means all namespaces. Global pools serve every namespace and
are always listed. `who` looks in every namespace unless `-n` is given: an address is found wherever it is
held. Exit codes: 0 ok, 1 not found (show, who) or findings (audit), 2 usage or cluster errors.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from incluster_ipam import __version__
from incluster_ipam.api.constants import POOL_KINDS, PoolKind
from incluster_ipam.audit.command import Snapshot, audit_main, grace_seconds, read_cluster
from incluster_ipam.audit.findings import DEFAULT_GRACE_SECONDS
from incluster_ipam.capi.contract import NoContractError
from incluster_ipam.capi.objects import address_pool_key, name_of, namespace_of, split_pool_key
from incluster_ipam.claimcore.discovery import cluster_resource
from incluster_ipam.ipam.addresses import AddressError, address_value, format_address
from incluster_ipam.kube import (
    ClusterConfig,
    ConfigError,
    KubeClient,
    KubeError,
    Obj,
    Resource,
    load_config,
)

from . import render
from .owners import Resolver, owner_chain, read_object
from .usage import PoolUsage, allocatable_in, held_text, holds, usages
from .who import Holder, Link, State, WhoResult, cluster_name

PROG = "kubectl ipam"
EXIT_OK = 0
EXIT_NOT_FOUND = 1
EXIT_ERROR = 2


class UsageError(Exception):
    """Arguments that name nothing usable (exit 2)."""


class NotFound(Exception):
    """What was asked for does not exist (exit 1)."""


# ---- flags -------------------------------------------------------------------------------------------------


def _common_flags() -> argparse.ArgumentParser:
    """Flags accepted before and after the subcommand (`kubectl ipam -n x pools` and `... pools -n x`)."""
    common = argparse.ArgumentParser(add_help=False)
    flags = common.add_argument_group("connection and output")
    flags.add_argument("--kubeconfig", type=Path, default=argparse.SUPPRESS, help="kubeconfig file")
    flags.add_argument("--context", default=argparse.SUPPRESS, help="kubeconfig context to use")
    flags.add_argument("-n", "--namespace", default=argparse.SUPPRESS, help="namespace")
    flags.add_argument(
        "-A", "--all-namespaces", action="store_true", default=argparse.SUPPRESS, help="all namespaces"
    )
    flags.add_argument(
        "-o", "--output", choices=["text", "json"], default=argparse.SUPPRESS, help="text (default) or json"
    )
    return common


def parser() -> argparse.ArgumentParser:
    common = _common_flags()
    top = argparse.ArgumentParser(
        prog=PROG,
        parents=[common],
        description="Pools, addresses and their holders of the in-cluster IPAM provider.",
    )
    top.add_argument("--version", action="version", version=f"kubectl-ipam {__version__}")
    commands = top.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser(
        "pools", parents=[common], help="per pool: kind, total, used, free and a utilisation bar"
    )
    show = commands.add_parser(
        "show", parents=[common], help="one pool: its ranges, free ranges, and who holds what"
    )
    show.add_argument(
        "pool", metavar="POOL", help="NAME, or KIND/NAME when names clash (e.g. globalinclusterippool/x)"
    )
    who = commands.add_parser(
        "who",
        parents=[common],
        help="the IPAddress holding an address, its claim, and the owners up to the Machine and Cluster",
    )
    who.add_argument("address", metavar="ADDRESS", help="an IPv4 or IPv6 address (any spelling)")
    audit = commands.add_parser(
        "audit", parents=[common], help="duplicates, orphans, out-of-range addresses, stuck claims (exit 1)"
    )
    audit.add_argument(
        "--grace-seconds",
        type=grace_seconds,
        default=DEFAULT_GRACE_SECONDS,
        help="skip orphans and unbound claims younger than this (in-flight work); default 30",
    )
    return top


# ---- the subcommands -------------------------------------------------------------------------------------


class Session:
    """One invocation: parsed flags, the client, where output goes."""

    def __init__(
        self, args: argparse.Namespace, config: ClusterConfig, client: KubeClient, out: TextIO, err: TextIO
    ) -> None:
        self.args = args
        self.client = client
        self.out = out
        self.err = err
        self.json = getattr(args, "output", "text") == "json"
        self.all_namespaces = bool(getattr(args, "all_namespaces", False))
        self.explicit_namespace: str | None = getattr(args, "namespace", None)
        self.namespace = self.explicit_namespace or config.namespace or "default"
        self.width = render.terminal_width()
        encoding = (getattr(out, "encoding", None) or "").lower().replace("-", "")
        self.ascii_only = encoding not in ("utf8", "utf_8")
        self._cluster_resource: Resource | None = None
        self._cluster_resource_known = False

    async def cluster_resource(self) -> Resource | None:
        """Cluster in the version served (discovered once per invocation)."""
        if not self._cluster_resource_known:
            self._cluster_resource = await cluster_resource(self.client)
            self._cluster_resource_known = True
        return self._cluster_resource

    @property
    def scope(self) -> str | None:
        """The namespace to read, None for all."""
        return None if self.all_namespaces else self.namespace

    def print(self, lines: Sequence[str] | str) -> None:
        text = lines if isinstance(lines, str) else "\n".join(lines)
        print(text, file=self.out)

    def notes(self, notes: Sequence[str]) -> None:
        for note in notes:
            print(f"note: {note}", file=self.err)


def _usage_notes(snapshot: Snapshot, namespace: str | None) -> list[str]:
    notes = list(snapshot.notes)
    if not snapshot.global_usage_complete:
        notes.append(
            f"IPAddresses outside namespace {namespace} could not be read (forbidden): the global pools' "
            "counts only include that namespace's"
        )
    return notes


async def pools(session: Session) -> int:
    snapshot = await read_cluster(session.client, session.scope)
    found = usages(snapshot.pools, snapshot.addresses)
    notes = _usage_notes(snapshot, session.scope)
    if session.json:
        body = {"namespace": session.scope, "pools": [u.to_dict() for u in found], "notes": notes}
        session.print(render.to_json(body))
        return EXIT_OK
    if not found:
        where = "any namespace" if session.scope is None else f"namespace {session.scope}"
        session.print(f"No pools found in {where} (nor global pools).")
    else:
        lines = render.pools_text(
            found, session.width, all_namespaces=session.all_namespaces, ascii_only=session.ascii_only
        )
        session.print(lines)
    session.notes(notes)
    return EXIT_OK


def _kind_filter(text: str) -> tuple[PoolKind | None, str]:
    """POOL as NAME or KIND/NAME (Kind, singular or plural, any case)."""
    kind_text, sep, name = text.rpartition("/")
    if not sep:
        return None, text
    wanted = kind_text.lower().split(".", 1)[0]
    for kind in POOL_KINDS:
        if wanted in (kind.kind.lower(), kind.plural, kind.singular):
            return kind, name
    names = ", ".join(k.singular for k in POOL_KINDS)
    raise UsageError(f"POOL {text!r}: {kind_text!r} is not a pool kind (one of {names})")


def choose_pool(found: Sequence[PoolUsage], text: str, scope: str | None) -> PoolUsage:
    kind, name = _kind_filter(text)
    if not name:
        raise UsageError(f"POOL {text!r}: the name is empty")
    matches = [u for u in found if u.name == name and (kind is None or u.kind == kind)]
    if not matches:
        where = "any namespace" if scope is None else f"namespace {scope}"
        raise NotFound(f"no pool {text!r} in {where} (nor a global one)")
    if len(matches) > 1:
        names = ", ".join(render.pool_name(u) for u in matches)
        raise UsageError(f"POOL {text!r} names {len(matches)} pools ({names}): say KIND/NAME, or use -n")
    return matches[0]


async def show(session: Session) -> int:
    snapshot = await read_cluster(session.client, session.scope)
    usage = choose_pool(usages(snapshot.pools, snapshot.addresses), session.args.pool, session.scope)
    notes = _usage_notes(snapshot, session.scope) if not usage.namespace else list(snapshot.notes)
    if session.json:
        session.print(render.to_json({**usage.to_dict(details=True), "notes": notes}))
        return EXIT_OK
    session.print(render.show_text(usage, session.width, ascii_only=session.ascii_only))
    session.notes(notes)
    return EXIT_OK


def _pool_text(address: Obj) -> str:
    key = address_pool_key(address)
    if key is not None:
        kind, namespace, name = split_pool_key(key)
        return f"{kind.kind} {namespace}/{name}" if namespace else f"{kind.kind} {name}"
    ref = (address.get("spec") or {}).get("poolRef") or {}
    return f"{ref.get('kind', '?')} {ref.get('name', '?')} (group {ref.get('apiGroup') or '-'})"


async def _holder(session: Session, snapshot: Snapshot, resolver: Resolver, address: Obj) -> Holder:
    namespace = namespace_of(address)
    spec = address.get("spec") or {}
    ip_address = Link(
        "IPAddress", str(address.get("apiVersion", "")), namespace, name_of(address), obj=address
    )
    claim_name = str((spec.get("claimRef") or {}).get("name") or "")
    claim: Link | None = None
    owners: tuple[Link, ...] = ()
    if claim_name:
        claim_obj = next(
            (c for c in snapshot.claims if namespace_of(c) == namespace and name_of(c) == claim_name), None
        )
        claims_version = str(address.get("apiVersion", ""))
        if claim_obj is None:
            claim = Link("IPAddressClaim", claims_version, namespace, claim_name, State.NOT_FOUND)
        else:
            claim = Link(
                "IPAddressClaim", str(claim_obj.get("apiVersion", "")), namespace, claim_name, obj=claim_obj
            )
            owners = await owner_chain(resolver, claim_obj)
    machine = owners[-1] if owners and owners[-1].is_machine else None
    name = cluster_name(machine.obj if machine else None, claim.obj if claim else None, address)
    cluster: Link | None = None
    if name:
        resource = await session.cluster_resource()
        if resource is None:
            cluster = Link("Cluster", "cluster.x-k8s.io", namespace, name, State.UNKNOWN_KIND)
        else:
            cluster = await read_object(session.client, resource, resource.api_version, name, namespace)
    return Holder(ip_address, held_text(address), _pool_text(address), claim, owners, machine, cluster)


async def who(session: Session) -> int:
    query = session.args.address
    try:
        version, value = address_value(query)
    except AddressError as exc:
        raise UsageError(f"ADDRESS {query!r}: {exc.reason}") from None
    scope = None if session.all_namespaces else session.explicit_namespace
    snapshot = await read_cluster(session.client, scope)
    held = sorted(
        (
            a
            for a in snapshot.addresses
            if (scope is None or namespace_of(a) == scope) and holds(a, version, value)
        ),
        key=lambda a: (namespace_of(a), name_of(a)),
    )
    resolver = Resolver(session.client)
    holders = [await _holder(session, snapshot, resolver, a) for a in held]
    result = WhoResult(
        query,
        format_address(version, value),
        tuple(holders),
        () if holders else tuple(allocatable_in(snapshot.pools, version, value)),
        tuple(snapshot.notes),
    )
    session.print(render.to_json(result.to_dict()) if session.json else render.who_text(result))
    return EXIT_OK if holders else EXIT_NOT_FOUND


COMMANDS = {"pools": pools, "show": show, "who": who}


async def run(args: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """One `kubectl ipam` command from parsed flags; the exit code."""
    out = out if out is not None else sys.stdout
    err = err if err is not None else sys.stderr
    kubeconfig = getattr(args, "kubeconfig", None)
    context = getattr(args, "context", None)
    try:
        config = load_config(kubeconfig, context)
    except ConfigError as exc:
        print(f"{PROG}: error: {exc}", file=err)
        return EXIT_ERROR
    if args.command == "audit":
        namespace = (
            None
            if getattr(args, "all_namespaces", False)
            else (getattr(args, "namespace", None) or config.namespace or "default")
        )
        return await audit_main(
            kubeconfig,
            namespace,
            json_output=getattr(args, "output", "text") == "json",
            grace_seconds=args.grace_seconds,
            out=out,
            err=err,
            context=context,
            prog=f"{PROG} audit",
        )
    try:
        async with KubeClient(config, user_agent=f"kubectl-ipam/{__version__}") as client:
            return await COMMANDS[args.command](Session(args, config, client, out, err))
    except UsageError as exc:
        print(f"{PROG} {args.command}: error: {exc}", file=err)
        return EXIT_ERROR
    except NotFound as exc:
        print(f"{PROG} {args.command}: {exc}", file=err)
        return EXIT_NOT_FOUND
    except (KubeError, NoContractError, OSError) as exc:
        print(f"{PROG} {args.command}: error: {exc}", file=err)
        return EXIT_ERROR


def main(argv: Sequence[str] | None = None) -> int:
    """The `kubectl-ipam` entry point."""
    args = parser().parse_args(argv)
    try:
        return asyncio.run(run(args))
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `kubectl ipam pools | head`
        sys.stderr.close()
        return EXIT_OK
