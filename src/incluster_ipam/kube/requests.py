"""Pure request building: every apiserver call as a `Request` (method, target, body, content type).

The transport only adds the server URL and credentials, so the URL and query rules are testable without I/O.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode

from . import codec
from .resources import Obj, Resource

JSON = "application/json"


class PatchType(enum.Enum):
    """Patch flavours and their content types."""

    MERGE = "application/merge-patch+json"
    JSON = "application/json-patch+json"
    STRATEGIC = "application/strategic-merge-patch+json"  # built-in kinds only
    APPLY = "application/apply-patch+yaml"  # server-side apply (JSON is valid YAML)


@dataclass(frozen=True, slots=True)
class Request:
    """An apiserver call: `target` is path plus encoded query string, `body` is already serialized."""

    method: str
    target: str
    body: bytes | None = None
    content_type: str | None = None

    @property
    def path(self) -> str:
        return self.target.partition("?")[0]

    @property
    def query(self) -> dict[str, str]:
        return dict(parse_qsl(self.target.partition("?")[2], keep_blank_values=True))


def _dumps(obj: Any) -> bytes:
    return codec.dumps(obj)


def resource_path(
    resource: Resource, namespace: str | None = None, name: str | None = None, subresource: str | None = None
) -> str:
    """The URL path of a collection (name None) or an object; namespace None on a namespaced resource means
    all namespaces (list/watch only)."""
    parts = [resource.base_path]
    if resource.namespaced and namespace:
        parts.append(f"namespaces/{quote(namespace, safe='')}")
    elif not resource.namespaced and namespace:
        raise ValueError(f"{resource} is cluster-scoped; got namespace {namespace!r}")
    parts.append(resource.plural)
    if name is not None:
        if not name:
            raise ValueError(f"empty name for {resource}")
        parts.append(quote(name, safe=""))
        if subresource:
            parts.append(subresource)
    elif subresource:
        raise ValueError("a subresource needs an object name")
    return "/".join(parts)


def _target(path: str, params: Sequence[tuple[str, str | None]]) -> str:
    query = [(k, v) for k, v in params if v is not None]
    return f"{path}?{urlencode(query, quote_via=quote)}" if query else path


def _require_namespace(resource: Resource, namespace: str | None) -> None:
    if resource.namespaced and not namespace:
        raise ValueError(f"{resource} is namespaced: a namespace is required")


def _namespace_of(resource: Resource, obj: Mapping[str, Any], namespace: str | None) -> str | None:
    if not resource.namespaced:
        return None
    ns = namespace or obj.get("metadata", {}).get("namespace")
    _require_namespace(resource, ns)
    return str(ns)


def _write_params(
    field_manager: str | None, dry_run: bool, field_validation: str | None
) -> list[tuple[str, str | None]]:
    return [
        ("fieldManager", field_manager),
        ("dryRun", "All" if dry_run else None),
        ("fieldValidation", field_validation),
    ]


def get_request(
    resource: Resource, name: str, namespace: str | None = None, subresource: str | None = None
) -> Request:
    _require_namespace(resource, namespace)
    return Request("GET", resource_path(resource, namespace, name, subresource))


def list_request(
    resource: Resource,
    namespace: str | None = None,
    *,
    label_selector: str | None = None,
    field_selector: str | None = None,
    resource_version: str | None = None,
    resource_version_match: str | None = None,
    limit: int | None = None,
    continue_token: str | None = None,
    timeout_seconds: int | None = None,
) -> Request:
    params: list[tuple[str, str | None]] = [
        ("labelSelector", label_selector or None),
        ("fieldSelector", field_selector or None),
        ("resourceVersion", resource_version),
        ("resourceVersionMatch", resource_version_match),
        ("limit", str(limit) if limit else None),
        ("continue", continue_token or None),
        ("timeoutSeconds", str(timeout_seconds) if timeout_seconds is not None else None),
    ]
    return Request("GET", _target(resource_path(resource, namespace), params))


def watch_request(
    resource: Resource,
    namespace: str | None = None,
    *,
    resource_version: str | None = None,
    label_selector: str | None = None,
    field_selector: str | None = None,
    timeout_seconds: int | None = None,
    allow_bookmarks: bool = True,
) -> Request:
    params: list[tuple[str, str | None]] = [
        ("watch", "true"),
        ("labelSelector", label_selector or None),
        ("fieldSelector", field_selector or None),
        ("resourceVersion", resource_version or None),
        ("allowWatchBookmarks", "true" if allow_bookmarks else None),
        ("timeoutSeconds", str(timeout_seconds) if timeout_seconds is not None else None),
    ]
    return Request("GET", _target(resource_path(resource, namespace), params))


def create_request(
    resource: Resource,
    obj: Obj,
    namespace: str | None = None,
    *,
    field_manager: str | None = None,
    dry_run: bool = False,
    field_validation: str | None = None,
) -> Request:
    ns = _namespace_of(resource, obj, namespace)
    path = resource_path(resource, ns)
    return Request(
        "POST", _target(path, _write_params(field_manager, dry_run, field_validation)), _dumps(obj), JSON
    )


def replace_request(
    resource: Resource,
    obj: Obj,
    namespace: str | None = None,
    *,
    subresource: str | None = None,
    field_manager: str | None = None,
    dry_run: bool = False,
    field_validation: str | None = None,
) -> Request:
    ns = _namespace_of(resource, obj, namespace)
    path = resource_path(resource, ns, obj["metadata"]["name"], subresource)
    return Request(
        "PUT", _target(path, _write_params(field_manager, dry_run, field_validation)), _dumps(obj), JSON
    )


def patch_request(
    resource: Resource,
    name: str,
    patch: Obj | list[Any],
    namespace: str | None = None,
    *,
    patch_type: PatchType = PatchType.MERGE,
    subresource: str | None = None,
    field_manager: str | None = None,
    force: bool = False,
    dry_run: bool = False,
    field_validation: str | None = None,
) -> Request:
    _require_namespace(resource, namespace)
    if patch_type is PatchType.APPLY and not field_manager:
        raise ValueError("server-side apply needs a field manager")
    if patch_type is PatchType.JSON and not isinstance(patch, list):
        raise TypeError("a JSON patch is a list of operations")
    if force and patch_type is not PatchType.APPLY:
        raise ValueError("force applies to server-side apply only")
    params = _write_params(field_manager, dry_run, field_validation)
    params.append(("force", "true" if force else None))
    path = resource_path(resource, namespace, name, subresource)
    return Request("PATCH", _target(path, params), _dumps(patch), patch_type.value)


def delete_request(
    resource: Resource,
    name: str,
    namespace: str | None = None,
    *,
    uid: str | None = None,
    resource_version: str | None = None,
    propagation_policy: str | None = None,
    grace_period_seconds: int | None = None,
    dry_run: bool = False,
) -> Request:
    """DELETE with DeleteOptions in the body: preconditions (uid/resourceVersion), propagation, grace."""
    _require_namespace(resource, namespace)
    options: Obj = {"kind": "DeleteOptions", "apiVersion": "v1"}
    preconditions = {k: v for k, v in (("uid", uid), ("resourceVersion", resource_version)) if v}
    if preconditions:
        options["preconditions"] = preconditions
    if propagation_policy:
        if propagation_policy not in ("Orphan", "Background", "Foreground"):
            raise ValueError(f"unknown propagation policy {propagation_policy!r}")
        options["propagationPolicy"] = propagation_policy
    if grace_period_seconds is not None:
        options["gracePeriodSeconds"] = grace_period_seconds
    if dry_run:
        options["dryRun"] = ["All"]
    return Request("DELETE", resource_path(resource, namespace, name), _dumps(options), JSON)


def group_discovery_request(group: str) -> Request:
    """The APIGroup (versions served, preferred version); the core group is `/api`."""
    return Request("GET", f"/apis/{quote(group, safe='.')}" if group else "/api")


def resources_discovery_request(group: str, version: str) -> Request:
    """The APIResourceList of one group version."""
    base = f"/apis/{quote(group, safe='.')}/{quote(version, safe='')}" if group else f"/api/{version}"
    return Request("GET", base)
