"""Typed pool specs and pool objects, decoded from and encoded to Kubernetes JSON.

Decoding is as strict about types as Go's ``encoding/json`` into upstream's structs (a string where an
int belongs is a `DecodeError`, unknown fields are ignored); it never judges values, that is validation's
job. Absent lists stay ``None`` so messages can tell ``null`` from ``[]`` the way upstream's do.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from incluster_ipam.api.constants import PoolFamily, PoolKind, pool_kind
from incluster_ipam.api.gofmt import sanitize

_INT64 = (-(1 << 63), (1 << 63) - 1)
_INT32 = (-(1 << 31), (1 << 31) - 1)


class DecodeError(ValueError):
    """The JSON does not fit the Go type upstream decodes it into."""


def _type_name(value: object) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _mismatch(struct: str, path: str, value: object, go_type: str) -> DecodeError:
    return DecodeError(
        f"json: cannot unmarshal {_type_name(value)} into Go struct field {struct}.{path} of type {go_type}"
    )


def _str(data: Mapping[str, Any], key: str, struct: str) -> str:
    value = data.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise _mismatch(struct, f"spec.{key}", value, "string")
    return sanitize(value)


def _int(data: Mapping[str, Any], key: str, struct: str, bounds: tuple[int, int] = _INT64) -> int | None:
    value = data.get(key)
    if value is None:
        return None
    go_type = "int32" if bounds == _INT32 else "int"
    if isinstance(value, bool) or not isinstance(value, int):
        raise _mismatch(struct, f"spec.{key}", value, go_type)
    if not bounds[0] <= value <= bounds[1]:
        raise DecodeError(
            f"json: cannot unmarshal number {value} into Go struct field {struct}.spec.{key} "
            f"of type {go_type}"
        )
    return value


def _bool(data: Mapping[str, Any], key: str, struct: str) -> bool:
    value = data.get(key)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise _mismatch(struct, f"spec.{key}", value, "bool")
    return value


def _strings(data: Mapping[str, Any], key: str, struct: str) -> tuple[str, ...] | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, list):
        raise _mismatch(struct, f"spec.{key}", value, "[]string")
    for item in value:
        if not isinstance(item, str):
            raise _mismatch(struct, f"spec.{key}", item, "string")
    return tuple(sanitize(item) for item in value)


def _spec_mapping(spec: object) -> Mapping[str, Any]:
    if spec is None:
        return {}
    if not isinstance(spec, Mapping):
        raise DecodeError(
            f"json: cannot unmarshal {_type_name(spec)} into Go struct field .spec of type spec"
        )
    return spec


@dataclass(frozen=True)
class IPPoolSpec:
    """v1alpha2 spec of InClusterIPPool and GlobalInClusterIPPool (the hub)."""

    addresses: tuple[str, ...] | None = None
    prefix: int = 0
    gateway: str = ""
    allocate_reserved: bool = False
    excluded: tuple[str, ...] | None = None
    reuse_grace_seconds: int | None = None

    @classmethod
    def from_dict(cls, spec: object) -> IPPoolSpec:
        data = _spec_mapping(spec)
        name = "InClusterIPPoolSpec"
        return cls(
            addresses=_strings(data, "addresses", name),
            prefix=_int(data, "prefix", name) or 0,
            gateway=_str(data, "gateway", name),
            allocate_reserved=_bool(data, "allocateReservedIPAddresses", name),
            excluded=_strings(data, "excludedAddresses", name),
            reuse_grace_seconds=_int(data, "addressReuseGracePeriodSeconds", name, _INT32),
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.addresses is not None:
            out["addresses"] = list(self.addresses)
        out["prefix"] = self.prefix
        if self.gateway:
            out["gateway"] = self.gateway
        if self.allocate_reserved:
            out["allocateReservedIPAddresses"] = True
        if self.excluded is not None:
            out["excludedAddresses"] = list(self.excluded)
        if self.reuse_grace_seconds is not None:
            out["addressReuseGracePeriodSeconds"] = self.reuse_grace_seconds
        return out


#: v1alpha2 IP-pool fields that v1alpha1 cannot express (JSON names).
V1ALPHA2_ONLY_IP_FIELDS = (
    "allocateReservedIPAddresses",
    "excludedAddresses",
    "addressReuseGracePeriodSeconds",
)


@dataclass(frozen=True)
class IPPoolSpecV1Alpha1:
    """v1alpha1 spec (deprecated): ``start``/``end`` are upstream's Go fields First/Last."""

    addresses: tuple[str, ...] | None = None
    subnet: str = ""
    start: str = ""
    end: str = ""
    prefix: int = 0
    gateway: str = ""

    @classmethod
    def from_dict(cls, spec: object) -> IPPoolSpecV1Alpha1:
        data = _spec_mapping(spec)
        name = "InClusterIPPoolSpec"
        return cls(
            addresses=_strings(data, "addresses", name),
            subnet=_str(data, "subnet", name),
            start=_str(data, "start", name),
            end=_str(data, "end", name),
            prefix=_int(data, "prefix", name) or 0,
            gateway=_str(data, "gateway", name),
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.addresses is not None:
            out["addresses"] = list(self.addresses)
        for key in ("subnet", "start", "end"):
            if getattr(self, key):
                out[key] = getattr(self, key)
        if self.prefix:
            out["prefix"] = self.prefix
        if self.gateway:
            out["gateway"] = self.gateway
        return out


@dataclass(frozen=True)
class PrefixPoolSpec:
    """v1alpha2 spec of InClusterPrefixPool and GlobalInClusterPrefixPool; length 0 means "not set"."""

    prefixes: tuple[str, ...] | None = None
    allocation_prefix_length: int = 0
    gateway: str = ""
    excluded: tuple[str, ...] | None = None

    @classmethod
    def from_dict(cls, spec: object) -> PrefixPoolSpec:
        data = _spec_mapping(spec)
        name = "InClusterPrefixPoolSpec"
        return cls(
            prefixes=_strings(data, "prefixes", name),
            allocation_prefix_length=_int(data, "allocationPrefixLength", name) or 0,
            gateway=_str(data, "gateway", name),
            excluded=_strings(data, "excludedPrefixes", name),
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.prefixes is not None:
            out["prefixes"] = list(self.prefixes)
        if self.allocation_prefix_length:
            out["allocationPrefixLength"] = self.allocation_prefix_length
        if self.gateway:
            out["gateway"] = self.gateway
        if self.excluded is not None:
            out["excludedPrefixes"] = list(self.excluded)
        return out


@dataclass(frozen=True)
class Pool:
    """A pool object as the webhooks need it: identity, annotations and its typed v1alpha2 spec."""

    kind: PoolKind
    name: str
    namespace: str
    spec: IPPoolSpec | PrefixPoolSpec
    annotations: Mapping[str, str] = field(default_factory=dict)
    uid: str = ""
    resource_version: str = ""

    @property
    def ref(self) -> str:
        """``Kind "ns/name"`` or ``Kind "name"``, for messages."""
        where = f"{self.namespace}/{self.name}" if self.kind.namespaced else self.name
        return f'{self.kind.kind} "{where}"'


def _or_default(value: object, default: object) -> Any:
    """JSON null (or absent) means the zero value, as in Go; anything else is kept for type checks."""
    return default if value is None else value


def decode_pool(obj: object, kind: PoolKind | None = None) -> Pool:
    """Decode a v1alpha2 pool object (a Kubernetes JSON dict); ``kind`` overrides the object's own kind."""
    if not isinstance(obj, Mapping):
        raise DecodeError(f"json: cannot unmarshal {_type_name(obj)} into Go value of type pool")
    if kind is None:
        kind_name = obj.get("kind")
        kind = pool_kind(kind_name) if isinstance(kind_name, str) else None
        if kind is None:
            raise DecodeError(f"unknown pool kind {kind_name!r}")
    metadata = _or_default(obj.get("metadata"), {})
    if not isinstance(metadata, Mapping):
        raise DecodeError("json: cannot unmarshal metadata: not an object")
    name = _or_default(metadata.get("name"), "")
    namespace = _or_default(metadata.get("namespace"), "")
    annotations = _or_default(metadata.get("annotations"), {})
    if not isinstance(name, str) or not isinstance(namespace, str):
        raise DecodeError("json: metadata.name and metadata.namespace must be strings")
    if not isinstance(annotations, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in annotations.items()
    ):
        raise DecodeError("json: metadata.annotations must map strings to strings")
    spec: IPPoolSpec | PrefixPoolSpec
    if kind.family is PoolFamily.IP:
        spec = IPPoolSpec.from_dict(obj.get("spec"))
    else:
        spec = PrefixPoolSpec.from_dict(obj.get("spec"))
    uid, version = metadata.get("uid"), metadata.get("resourceVersion")
    return Pool(
        kind,
        sanitize(name),
        sanitize(namespace) if kind.namespaced else "",
        spec,
        dict(annotations),
        uid if isinstance(uid, str) else "",
        version if isinstance(version, str) else "",
    )


@dataclass(frozen=True)
class AllocatedAddress:
    """What the webhooks need from an IPAddress that references a pool."""

    name: str
    namespace: str
    address: str
    prefix: int | None = None
