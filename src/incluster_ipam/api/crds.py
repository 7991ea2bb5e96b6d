"""The four pool CustomResourceDefinitions, described once in Python.

``hack/gen-crds.py`` writes them to ``config/crd/bases/`` (a unit test fails on drift); `crds` also returns
them with the conversion webhook pointed at a given URL and CA, for local runs and tests.
"""

from __future__ import annotations

import base64
import copy
from typing import Any

from incluster_ipam.api.constants import (
    DEFAULT_ALLOCATION_PREFIX_LENGTH,
    GROUP,
    MOVE_HIERARCHY_LABEL,
    POOL_KINDS,
    V1ALPHA1,
    V1ALPHA2,
    PoolFamily,
    PoolKind,
)

Schema = dict[str, Any]

#: Where the conversion webhook lives in a kustomize install (replaced by cert-manager/kustomize there).
DEFAULT_SERVICE = {"name": "webhook-service", "namespace": "system", "path": "/convert"}
CONVERT_PATH = "/convert"


def _string(description: str) -> Schema:
    return {"description": description, "type": "string"}


def _strings(description: str) -> Schema:
    return {"description": description, "items": {"type": "string"}, "type": "array"}


def _integer(description: str, **limits: int) -> Schema:
    return {"description": description, "type": "integer", **limits}


#: metav1.Condition's `reason` and `type` syntax, as the apiserver checks them for every Kubernetes type.
_REASON_PATTERN = "^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$"
_TYPE_PATTERN = (
    "^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    "(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$"
)


def _conditions() -> Schema:
    """`status.conditions`: metav1.Condition items keyed by type (Cluster API allows at most 32)."""
    fields = {
        "lastTransitionTime": {
            "description": "When the status last changed.",
            "format": "date-time",
            "type": "string",
        },
        "message": {
            "description": "What the condition means for this pool, in words.",
            "maxLength": 32768,
            "type": "string",
        },
        "observedGeneration": {
            **_integer("The metadata.generation the condition was judged from.", minimum=0),
            "format": "int64",
        },
        "reason": {
            "description": "Why the condition has its status, in CamelCase.",
            "maxLength": 1024,
            "minLength": 1,
            "pattern": _REASON_PATTERN,
            "type": "string",
        },
        "status": {
            "description": "True, False or Unknown.",
            "enum": ["True", "False", "Unknown"],
            "type": "string",
        },
        "type": {
            "description": "What the condition is about.",
            "maxLength": 316,
            "pattern": _TYPE_PATTERN,
            "type": "string",
        },
    }
    return {
        "description": "Ready (the provider can use the spec), Available (an address is free to hand out).",
        "items": {
            "description": "One observation of the pool's state.",
            "properties": fields,
            "required": ["lastTransitionTime", "message", "reason", "status", "type"],
            "type": "object",
        },
        "maxItems": 32,
        "type": "array",
        "x-kubernetes-list-map-keys": ["type"],
        "x-kubernetes-list-type": "map",
    }


def _status(unit: str) -> Schema:
    counts = {
        "free": _integer(f"Allocatable {unit} not in use. Capped at 2^63-1."),
        "outOfRange": _integer(
            f"{unit.capitalize()} in use that the spec no longer allows. Capped at 2^63-1."
        ),
        "total": _integer(f"{unit.capitalize()} the spec allows to hand out. Capped at 2^63-1."),
        "used": _integer(f"{unit.capitalize()} in use (IPAddress objects). Capped at 2^63-1."),
    }
    return {
        "description": "Observed state of the pool.",
        "properties": {
            "conditions": _conditions(),
            "ipAddresses": {
                "description": f"Counts of the pool's {unit}.",
                "properties": counts,
                "required": ["free", "outOfRange", "total", "used"],
                "type": "object",
            },
        },
        "type": "object",
    }


def _object(kind: PoolKind, spec: Schema, unit: str) -> Schema:
    return {
        "openAPIV3Schema": {
            "description": f"{kind.kind} hands out {unit} to IPAddressClaims.",
            "properties": {
                "apiVersion": _string("Versioned schema of this representation of the object."),
                "kind": _string("REST resource this object represents."),
                "metadata": {"type": "object"},
                "spec": spec,
                "status": _status(unit),
            },
            "type": "object",
        }
    }


def _ip_spec_v1alpha2() -> Schema:
    return {
        "description": "Desired state of the pool.",
        "properties": {
            "addressReuseGracePeriodSeconds": {
                **_integer(
                    "Seconds an address stays reserved after its claim is deleted; unset or 0: no delay.",
                    minimum=0,
                ),
                "format": "int32",
            },
            "addresses": _strings(
                "Addresses to hand out: single IPs, inclusive ranges a-b, or CIDRs; may be non-contiguous."
            ),
            "allocateReservedIPAddresses": {
                "description": "Also hand out the network and broadcast (IPv4) or subnet-router anycast "
                "(IPv6) address of the subnet inferred from the addresses and prefix.",
                "type": "boolean",
            },
            "excludedAddresses": _strings("Addresses never handed out; same syntax as addresses."),
            "gateway": _string("Gateway written to every IPAddress; never handed out."),
            "prefix": _integer(
                "Prefix length written to every IPAddress; with the lowest address it defines the subnet.",
                minimum=0,
                maximum=128,
            ),
        },
        "required": ["addresses", "prefix"],
        "type": "object",
    }


def _ip_spec_v1alpha1() -> Schema:
    return {
        "description": "Desired state of the pool (deprecated version).",
        "properties": {
            "addresses": _strings("Addresses to hand out: single IPs, inclusive ranges a-b, or CIDRs."),
            "end": _string("Last address of a range; defaults to the second last address of subnet."),
            "gateway": _string("Gateway written to every IPAddress."),
            "prefix": _integer("Prefix length; defaults to the length of subnet.", maximum=128),
            "start": _string("First address of a range; defaults to the second address of subnet."),
            "subnet": _string("CIDR to hand out addresses from."),
        },
        "type": "object",
    }


def _prefix_spec() -> Schema:
    return {
        "description": "Desired state of the pool.",
        "properties": {
            "allocationPrefixLength": {
                **_integer(
                    "Length of each sub-prefix handed out (64: /64s); at least the length of every entry of "
                    "prefixes. Immutable.",
                    minimum=1,
                    maximum=128,
                ),
                "default": DEFAULT_ALLOCATION_PREFIX_LENGTH,
            },
            "excludedPrefixes": _strings("IPs, ranges or CIDRs; sub-prefixes overlapping them are skipped."),
            "gateway": _string("IPv6 gateway written to every IPAddress; informational, never blocks."),
            "prefixes": _strings("Network-aligned IPv6 CIDRs to carve sub-prefixes from."),
        },
        "required": ["prefixes"],
        "type": "object",
    }


def _column(name: str, path: str, kind: str, description: str) -> Schema:
    return {"description": description, "jsonPath": path, "name": name, "type": kind}


def _count_columns(unit: str) -> list[Schema]:
    return [
        _column("Total", ".status.ipAddresses.total", "integer", f"Allocatable {unit}"),
        _column("Free", ".status.ipAddresses.free", "integer", f"Allocatable {unit} not in use"),
        _column("Used", ".status.ipAddresses.used", "integer", f"{unit.capitalize()} in use"),
    ]


def _condition_columns() -> list[Schema]:
    return [
        _column("Ready", '.status.conditions[?(@.type=="Ready")].status', "string", "The spec can be used"),
        _column(
            "Available", '.status.conditions[?(@.type=="Available")].status', "string", "Has a free address"
        ),
    ]


def _version(name: str, *, storage: bool, columns: list[Schema], schema: Schema) -> Schema:
    version: Schema = {"additionalPrinterColumns": [*columns, *_condition_columns()]}
    if not storage:
        version["deprecated"] = True
    version.update(
        {"name": name, "schema": schema, "served": True, "storage": storage, "subresources": {"status": {}}}
    )
    return version


def _ip_versions(kind: PoolKind) -> list[Schema]:
    addresses = _column("Addresses", ".spec.addresses", "string", "Addresses to hand out")
    v1_columns = [
        _column("Subnet", ".spec.subnet", "string", "Subnet to hand out addresses from"),
        # Upstream points these at .spec.first/.spec.last, which do not exist (§10.4).
        _column("First", ".spec.start", "string", "First address of the range"),
        _column("Last", ".spec.end", "string", "Last address of the range"),
    ]
    if kind.namespaced:
        v1_columns.append(addresses)
    v1_columns += _count_columns("addresses")
    return [
        _version(
            V1ALPHA1,
            storage=False,
            columns=v1_columns,
            schema=_object(kind, _ip_spec_v1alpha1(), "addresses"),
        ),
        _version(
            V1ALPHA2,
            storage=True,
            columns=[addresses, *_count_columns("addresses")],
            schema=_object(kind, _ip_spec_v1alpha2(), "addresses"),
        ),
    ]


def _prefix_versions(kind: PoolKind) -> list[Schema]:
    columns = [
        _column("Prefixes", ".spec.prefixes", "string", "Prefixes to carve sub-prefixes from"),
        *_count_columns("sub-prefixes"),
    ]
    return [
        _version(
            V1ALPHA2, storage=True, columns=columns, schema=_object(kind, _prefix_spec(), "sub-prefixes")
        )
    ]


def _conversion(client_config: Schema) -> Schema:
    return {
        "strategy": "Webhook",
        "webhook": {"clientConfig": client_config, "conversionReviewVersions": ["v1"]},
    }


def crd(kind: PoolKind) -> Schema:
    """The CRD of one pool kind, conversion webhook addressed to the in-cluster service."""
    versions = _ip_versions(kind) if kind.family is PoolFamily.IP else _prefix_versions(kind)
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"labels": {MOVE_HIERARCHY_LABEL: ""}, "name": kind.crd_name},
        "spec": {
            "conversion": _conversion({"service": dict(DEFAULT_SERVICE)}),
            "group": GROUP,
            "names": {
                "categories": ["cluster-api"],
                "kind": kind.kind,
                "listKind": f"{kind.kind}List",
                "plural": kind.plural,
                "singular": kind.singular,
            },
            "scope": "Namespaced" if kind.namespaced else "Cluster",
            "versions": versions,
        },
    }


def crds(webhook_url: str | None = None, ca_bundle: bytes | None = None) -> list[Schema]:
    """All four CRDs. With ``webhook_url`` (the server's base URL, e.g. ``https://127.0.0.1:9443``) the
    conversion webhook points there, with ``ca_bundle`` (PEM) as its CA; with ``webhook_url=""`` the
    conversion strategy is None (objects are served in every version without conversion)."""
    out = []
    for kind in POOL_KINDS:
        item = copy.deepcopy(crd(kind))
        if webhook_url == "":
            item["spec"]["conversion"] = {"strategy": "None"}
        elif webhook_url is not None:
            config: Schema = {"url": webhook_url.rstrip("/") + CONVERT_PATH}
            if ca_bundle is not None:
                config["caBundle"] = base64.b64encode(ca_bundle).decode("ascii")
            item["spec"]["conversion"] = _conversion(config)
        out.append(item)
    return out


def crd_file_name(kind: PoolKind) -> str:
    """File name under ``config/crd/bases/``, as kubebuilder names them."""
    return f"{GROUP}_{kind.plural}.yaml"
