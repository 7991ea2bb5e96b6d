"""v1alpha1 <-> v1alpha2 conversion of IP pools (spec §2.4), lossless both ways (§10.3).

Up (v1alpha1 -> v1alpha2) follows upstream: ``subnet`` defaults ``start``/``end``/``prefix`` and a
``start-end`` range is appended to ``addresses``. Down copies addresses, prefix and gateway.

Nothing is lost, for both kinds alike, through Cluster API's ``cluster.x-k8s.io/conversion-data``
annotation, whose JSON names the version of the data it holds:
- a v1alpha1 object carries the v1alpha2 object (``{"apiVersion": ".../v1alpha2", "kind", "spec"}``) when
  the hub has fields v1alpha1 cannot express; up-conversion restores those fields from it;
- a v1alpha2 object carries the original v1alpha1 spec when it used ``subnet``/``start``/``end``;
  down-conversion restores that spec when converting it up again still gives the hub's addresses, prefix
  and gateway (so an edit made through v1alpha2 wins), as upstream does for InClusterIPPool.
The annotation is only written when there is something to keep, so plain pools stay unannotated.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from typing import Any

from incluster_ipam.api import goparse
from incluster_ipam.api.constants import (
    API_VERSION_V1ALPHA1,
    API_VERSION_V1ALPHA2,
    CONVERSION_DATA_ANNOTATION,
    PoolFamily,
    pool_kind,
)
from incluster_ipam.api.errors import invalid_value
from incluster_ipam.api.models import V1ALPHA2_ONLY_IP_FIELDS, DecodeError, IPPoolSpec, IPPoolSpecV1Alpha1
from incluster_ipam.ipam.addresses import format_address


class ConversionError(ValueError):
    """An object that cannot be converted; the message is what the API server gets back."""


def _next_text(version: int, value: int, step: int) -> str:
    """Go's ``Addr.Next()``/``Prev()`` printed: ``invalid IP`` when it runs off the family's range."""
    moved = value + step
    if not 0 <= moved < 1 << (32 if version == 4 else 128):
        return "invalid IP"
    return format_address(version, moved)


def spec_up(spec: IPPoolSpecV1Alpha1) -> IPPoolSpec:
    """The v1alpha2 spec of a v1alpha1 spec (upstream's rules; raises `ConversionError` for a bad subnet)."""
    start, end, prefix = spec.start, spec.end, spec.prefix
    if spec.subnet:
        try:
            subnet = goparse.parse_prefix(spec.subnet)
        except goparse.GoParseError as exc:
            raise ConversionError(str(invalid_value("spec.subnet", spec.subnet, str(exc)))) from None
        version = subnet.addr.version
        if not start:
            start = _next_text(version, subnet.masked_value, 1)
        if not end:
            end = _next_text(version, subnet.last_value, -1)
        if prefix == 0:
            prefix = subnet.bits
    addresses = spec.addresses
    if start and end:
        addresses = (*(addresses or ()), f"{start}-{end}")
    return IPPoolSpec(addresses=addresses, prefix=prefix, gateway=spec.gateway)


def spec_down(spec: IPPoolSpec) -> IPPoolSpecV1Alpha1:
    """The plain v1alpha1 spec of a v1alpha2 spec (v1alpha2-only fields left out)."""
    return IPPoolSpecV1Alpha1(addresses=spec.addresses, prefix=spec.prefix, gateway=spec.gateway)


def _stored(obj: Mapping[str, Any], api_version: str) -> Mapping[str, Any] | None:
    """The spec kept in the conversion-data annotation, if it holds data of ``api_version`` for this kind."""
    metadata = obj.get("metadata")
    annotations = metadata.get("annotations") if isinstance(metadata, Mapping) else None
    raw = annotations.get(CONVERSION_DATA_ANNOTATION) if isinstance(annotations, Mapping) else None
    if not isinstance(raw, str):
        return None
    try:
        data = json.loads(raw)
    except ValueError:
        return None
    if (
        not isinstance(data, dict)
        or data.get("apiVersion") != api_version
        or data.get("kind") != obj.get("kind")
    ):
        return None
    spec = data.get("spec")
    return spec if isinstance(spec, dict) else None


def _set_annotation(obj: dict[str, Any], api_version: str, spec: dict[str, Any] | None) -> None:
    """Replace (or, with ``spec`` None, drop) the conversion-data annotation of ``obj``."""
    metadata = obj.setdefault("metadata", {})
    if not isinstance(metadata, dict):
        raise ConversionError("metadata is not a JSON object")
    current = metadata.get("annotations")
    annotations = dict(current) if isinstance(current, Mapping) else {}
    annotations.pop(CONVERSION_DATA_ANNOTATION, None)
    if spec is not None:
        data = {"apiVersion": api_version, "kind": obj.get("kind"), "spec": spec}
        annotations[CONVERSION_DATA_ANNOTATION] = json.dumps(data, sort_keys=True, separators=(",", ":"))
    if annotations:
        metadata["annotations"] = annotations
    else:
        metadata.pop("annotations", None)


def _same_addresses(a: IPPoolSpec, b: IPPoolSpec) -> bool:
    return (a.addresses or ()) == (b.addresses or ()) and a.prefix == b.prefix and a.gateway == b.gateway


def ip_pool_up(obj: Mapping[str, Any]) -> dict[str, Any]:
    """Convert a v1alpha1 IP pool object to v1alpha2."""
    try:
        old = IPPoolSpecV1Alpha1.from_dict(obj.get("spec"))
        spec = spec_up(old)
        kept = _stored(obj, API_VERSION_V1ALPHA2)
        if kept is not None:
            try:
                hub = IPPoolSpec.from_dict(kept)
            except DecodeError:
                hub = None
            if hub is not None:
                spec = IPPoolSpec(
                    spec.addresses,
                    spec.prefix,
                    spec.gateway,
                    hub.allocate_reserved,
                    hub.excluded,
                    hub.reuse_grace_seconds,
                )
    except DecodeError as exc:
        raise ConversionError(str(exc)) from None
    out = copy.deepcopy(dict(obj))
    out["apiVersion"] = API_VERSION_V1ALPHA2
    out["spec"] = spec.to_dict()
    needs_keeping = bool(old.subnet or old.start or old.end)
    _set_annotation(out, API_VERSION_V1ALPHA1, old.to_dict() if needs_keeping else None)
    return out


def ip_pool_down(obj: Mapping[str, Any]) -> dict[str, Any]:
    """Convert a v1alpha2 IP pool object to v1alpha1."""
    try:
        hub = IPPoolSpec.from_dict(obj.get("spec"))
    except DecodeError as exc:
        raise ConversionError(str(exc)) from None
    spec = spec_down(hub)
    kept = _stored(obj, API_VERSION_V1ALPHA1)
    if kept is not None:
        try:
            restored = IPPoolSpecV1Alpha1.from_dict(kept)
            if _same_addresses(spec_up(restored), hub):
                spec = restored
        except (DecodeError, ConversionError):
            pass
    out = copy.deepcopy(dict(obj))
    out["apiVersion"] = API_VERSION_V1ALPHA1
    out["spec"] = spec.to_dict()
    hub_dict = hub.to_dict()
    lossy = any(key in hub_dict for key in V1ALPHA2_ONLY_IP_FIELDS)
    _set_annotation(out, API_VERSION_V1ALPHA2, hub_dict if lossy else None)
    return out


def convert(obj: object, desired_api_version: str) -> dict[str, Any]:
    """Convert one pool object to ``desired_api_version``; an object already there is returned as is."""
    if not isinstance(obj, Mapping):
        raise ConversionError("object is not a JSON object")
    api_version, kind_name = obj.get("apiVersion"), obj.get("kind")
    kind = pool_kind(kind_name) if isinstance(kind_name, str) else None
    if kind is None:
        raise ConversionError(f"unsupported kind {kind_name!r}")
    if api_version == desired_api_version and api_version in {
        f"ipam.cluster.x-k8s.io/{v}" for v in kind.versions
    }:
        return copy.deepcopy(dict(obj))
    if kind.family is PoolFamily.IP:
        if api_version == API_VERSION_V1ALPHA1 and desired_api_version == API_VERSION_V1ALPHA2:
            return ip_pool_up(obj)
        if api_version == API_VERSION_V1ALPHA2 and desired_api_version == API_VERSION_V1ALPHA1:
            return ip_pool_down(obj)
    raise ConversionError(f"cannot convert {kind.kind} from {api_version!r} to {desired_api_version!r}")
