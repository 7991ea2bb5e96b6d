"""AdmissionReview handling for the pool webhooks: parse the review, apply the `incluster_ipam.api` rules,
answer the way controller-runtime does (statuses, warnings, JSONPatch).

Malformed input never raises: it becomes a denial with a 400 status, and any unexpected failure a denial
with a 500 InternalError status, always inside a well-formed AdmissionReview.

Cost (finding 5 of the December review): each request validates its pool once, and the CPU-heavy steps
(validation, in-use protection, overlap) run in a worker thread, one request at a time, so a huge pool never
stalls the event loop that also renews the provider's lease; reachable pools' address spaces are remembered
per version (`overlap.AddressSpaces`).

Forged reviews (finding 17): anyone who can reach the port can POST a review. A review about an existing
pool is answered from the cluster's view only when its old object carries the stored pool's UID, which the
apiserver always sends; otherwise it is refused without a word about the pool.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ParamSpec, TypeVar

from incluster_ipam.api import conversion, overlap
from incluster_ipam.api.constants import (
    API_VERSION_V1ALPHA1,
    DEFAULT_ALLOCATION_PREFIX_LENGTH,
    POOL_KINDS,
    PoolFamily,
    PoolKind,
)
from incluster_ipam.api.errors import Status, bad_request, conflict, internal_error, service_unavailable
from incluster_ipam.api.models import DecodeError, IPPoolSpec, Pool, PrefixPoolSpec, decode_pool
from incluster_ipam.api.prefix_validation import (
    prefix_pool_status,
    prefix_pool_warnings,
    validate_prefix_pool_update,
)
from incluster_ipam.api.validation import (
    delete_validation_skipped,
    in_use_status,
    ip_pool_status,
    validate_pool_delete,
)
from incluster_ipam.webhooks.lookups import AddressLookup, NotSynced, PoolLookup, StoredUidLookup

log = logging.getLogger(__name__)

ADMISSION_V1 = "admission.k8s.io/v1"
ADMISSION_VERSIONS = (ADMISSION_V1, "admission.k8s.io/v1beta1")

T = TypeVar("T")
P = ParamSpec("P")


@dataclass(frozen=True)
class Route:
    """One webhook endpoint: which pool kind, validating or mutating."""

    kind: PoolKind
    mutating: bool

    @property
    def path(self) -> str:
        verb = "mutate" if self.mutating else "validate"
        return f"/{verb}-ipam-cluster-x-k8s-io-v1alpha2-{self.kind.singular}"

    @property
    def name(self) -> str:
        """The webhook's name in the (Validating|Mutating)WebhookConfiguration."""
        prefix = "default" if self.mutating else "validation"
        return f"{prefix}.{self.kind.singular}.ipam.cluster.x-k8s.io"


ROUTES: tuple[Route, ...] = tuple(Route(kind, mutating) for kind in POOL_KINDS for mutating in (False, True))


class ReviewError(ValueError):
    """The body is not an AdmissionReview we can answer."""


@dataclass(frozen=True)
class AdmissionRequest:
    """The parts of ``AdmissionReview.request`` the pool webhooks use."""

    api_version: str
    uid: str
    operation: str
    kind: str
    name: str
    namespace: str
    object: Any
    old_object: Any


@dataclass(frozen=True)
class Verdict:
    """The answer: allowed or not, the failure status, warnings, and a JSONPatch for mutations."""

    allowed: bool
    status: Status | None = None
    warnings: tuple[str, ...] = ()
    patch: list[dict[str, Any]] | None = field(default=None)

    @classmethod
    def deny(cls, status: Status) -> Verdict:
        return cls(False, status)


ALLOW = Verdict(True)


def parse_review(body: object) -> AdmissionRequest:
    """Check the shape of an AdmissionReview (v1 or v1beta1) and pick out its request."""
    if not isinstance(body, Mapping):
        raise ReviewError("request body is not a JSON object")
    api_version = body.get("apiVersion")
    if api_version not in ADMISSION_VERSIONS or body.get("kind") != "AdmissionReview":
        raise ReviewError(f"expected an AdmissionReview of {' or '.join(ADMISSION_VERSIONS)}")
    request = body.get("request")
    if not isinstance(request, Mapping):
        raise ReviewError("AdmissionReview has no request")
    uid, operation = request.get("uid"), request.get("operation")
    if not isinstance(uid, str) or not uid:
        raise ReviewError("AdmissionReview request has no uid")
    if not isinstance(operation, str):
        raise ReviewError("AdmissionReview request has no operation")
    kind = request.get("kind")
    kind_name = kind.get("kind") if isinstance(kind, Mapping) else None
    name, namespace = request.get("name"), request.get("namespace")
    return AdmissionRequest(
        api_version=str(api_version),
        uid=uid,
        operation=operation,
        kind=kind_name if isinstance(kind_name, str) else "",
        name=name if isinstance(name, str) else "",
        namespace=namespace if isinstance(namespace, str) else "",
        object=request.get("object"),
        old_object=request.get("oldObject"),
    )


def review_response(api_version: str, uid: str, verdict: Verdict) -> dict[str, Any]:
    """The AdmissionReview to send back (same apiVersion as the request, as the API server requires)."""
    response: dict[str, Any] = {"uid": uid, "allowed": verdict.allowed}
    if verdict.status is not None:
        response["status"] = verdict.status.to_dict()
    elif verdict.allowed:
        response["status"] = {"metadata": {}, "code": 200}
    if verdict.warnings:
        response["warnings"] = list(verdict.warnings)
    if verdict.patch:
        response["patchType"] = "JSONPatch"
        response["patch"] = base64.b64encode(json.dumps(verdict.patch).encode()).decode("ascii")
    return {"apiVersion": api_version, "kind": "AdmissionReview", "response": response}


def malformed_response(message: str) -> dict[str, Any]:
    """Answer to a body that is not a usable AdmissionReview (controller-runtime answers alike)."""
    status = Status(400, "BadRequest", message)
    return review_response(ADMISSION_V1, "", Verdict.deny(status))


class LookupFailed(Exception):
    """An injected lookup raised or timed out."""


class LookupUnavailable(Exception):
    """An injected lookup cannot answer yet (its caches have not synced)."""


class PoolAdmission:
    """Admission decisions for the pool kinds, with the cluster lookups injected."""

    def __init__(
        self,
        addresses: AddressLookup,
        pools: PoolLookup | None = None,
        *,
        stored_uid: StoredUidLookup | None = None,
        lookup_timeout: float = 5.0,
    ) -> None:
        self._addresses = addresses
        self._pools = pools
        self._stored_uid = stored_uid
        self._timeout = lookup_timeout
        self._spaces = overlap.AddressSpaces()
        self._cpu = asyncio.Semaphore(1)

    async def _off_loop(self, call: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run CPU-heavy pure work in a worker thread, one request at a time."""
        async with self._cpu:
            return await asyncio.to_thread(call, *args, **kwargs)

    async def review(self, route: Route, request: AdmissionRequest) -> Verdict:
        """Decide one request; never raises."""
        try:
            if request.kind and request.kind != route.kind.kind:
                return Verdict.deny(bad_request(f"expected a {route.kind.kind} but got a {request.kind}"))
            if route.mutating:
                return self._default(route.kind, request)
            return await self._validate(route.kind, request)
        except (DecodeError, conversion.ConversionError) as exc:
            return Verdict.deny(bad_request(str(exc)))
        except LookupUnavailable as exc:
            return Verdict.deny(service_unavailable(str(exc)))
        except LookupFailed as exc:
            return Verdict.deny(internal_error(str(exc)))
        except Exception as exc:  # a bug must deny cleanly, not break the API server's call
            log.exception("admission review %s failed", request.uid)
            return Verdict.deny(internal_error(f"{type(exc).__name__}: {exc}"))

    # -- decoding ----------------------------------------------------------------------------------

    @staticmethod
    def _decode(kind: PoolKind, obj: object, request: AdmissionRequest) -> Pool:
        if obj is None:
            raise DecodeError("the request carries no object")
        if isinstance(obj, Mapping) and obj.get("apiVersion") == API_VERSION_V1ALPHA1:
            if kind.family is not PoolFamily.IP:
                raise DecodeError(f"{kind.kind} has no version v1alpha1")
            obj = conversion.ip_pool_up(obj)
        pool = decode_pool(obj, kind)
        if kind.namespaced and not pool.namespace and request.namespace:
            pool = dataclasses.replace(pool, namespace=request.namespace)
        if not pool.name and request.name:
            pool = dataclasses.replace(pool, name=request.name)
        return pool

    async def _lookup(self, what: str, call: Awaitable[T]) -> T:
        try:
            return await asyncio.wait_for(call, self._timeout)
        except TimeoutError:
            raise LookupFailed(f"{what} timed out after {self._timeout:g}s") from None
        except NotSynced as exc:
            raise LookupUnavailable(f"{what}: {exc}; retry") from exc
        except Exception as exc:
            raise LookupFailed(f"{what} failed: {exc}") from exc

    async def _is_stored(self, old: Pool) -> bool:
        """Whether `old` is the stored pool of its name (or no pool of that name is known): forged or
        stale reviews about an existing pool carry another UID (or none)."""
        if self._stored_uid is None:
            return True
        namespace = old.namespace if old.kind.namespaced else None
        stored = await self._lookup(
            f"looking up {old.ref}", self._stored_uid(old.kind.kind, namespace, old.name)
        )
        return stored is None or stored == old.uid

    async def _allocated(self, pool: Pool) -> Sequence[Any]:
        namespace = pool.namespace if pool.kind.namespaced else None
        call = self._addresses(pool.kind.kind, namespace, pool.name)
        return await self._lookup(f"listing IPAddresses of {pool.ref}", call)

    # -- mutation ----------------------------------------------------------------------------------

    def _default(self, kind: PoolKind, request: AdmissionRequest) -> Verdict:
        if request.operation not in ("CREATE", "UPDATE") or kind.family is PoolFamily.IP:
            return ALLOW  # IP pools have nothing to default (upstream registers the webhook anyway)
        pool = self._decode(kind, request.object, request)
        assert isinstance(pool.spec, PrefixPoolSpec)
        if pool.spec.allocation_prefix_length != 0:
            return ALLOW
        raw = request.object if isinstance(request.object, Mapping) else {}
        spec = raw.get("spec")
        value = DEFAULT_ALLOCATION_PREFIX_LENGTH
        patch: list[dict[str, Any]]
        if not isinstance(spec, Mapping):
            patch = [{"op": "add", "path": "/spec", "value": {"allocationPrefixLength": value}}]
        elif "allocationPrefixLength" in spec:
            patch = [{"op": "replace", "path": "/spec/allocationPrefixLength", "value": value}]
        else:
            patch = [{"op": "add", "path": "/spec/allocationPrefixLength", "value": value}]
        return Verdict(True, patch=patch)

    # -- validation --------------------------------------------------------------------------------

    async def _validate(self, kind: PoolKind, request: AdmissionRequest) -> Verdict:
        if request.operation == "DELETE":
            return await self._validate_delete(kind, request)
        if request.operation not in ("CREATE", "UPDATE"):
            return ALLOW
        pool = self._decode(kind, request.object, request)
        old = self._decode(kind, request.old_object, request) if request.operation == "UPDATE" else None
        status: Status | None
        warnings: list[str] = []
        if isinstance(pool.spec, IPPoolSpec):
            status = await self._off_loop(ip_pool_status, kind.kind, pool.name, pool.spec)
            if status is None and old is not None:
                if not await self._is_stored(old):
                    return Verdict.deny(_NOT_STORED)
                assert isinstance(old.spec, IPPoolSpec)
                in_use = [a.address for a in await self._allocated(old)]
                status = await self._off_loop(in_use_status, pool.spec, in_use, old.spec)
        else:
            status = await self._off_loop(prefix_pool_status, kind.kind, pool.name, pool.spec)
            if status is None and old is not None:
                if not await self._is_stored(old):
                    return Verdict.deny(_NOT_STORED)
                assert isinstance(old.spec, PrefixPoolSpec)
                allocated = await self._allocated(old)
                status = await self._off_loop(
                    validate_prefix_pool_update, kind.kind, pool.name, old.spec, pool.spec, allocated
                )
            if status is None:
                warnings.extend(prefix_pool_warnings(pool.spec))
        if status is not None:
            return Verdict(False, status, tuple(warnings))
        warnings.extend(await self._overlap_warnings(pool))
        return Verdict(True, warnings=tuple(warnings))

    async def _validate_delete(self, kind: PoolKind, request: AdmissionRequest) -> Verdict:
        pool = self._decode(kind, request.old_object, request)
        if delete_validation_skipped(pool.annotations):
            return ALLOW
        if not await self._is_stored(pool):
            return Verdict.deny(_NOT_STORED)
        allocated = await self._allocated(pool)
        status = validate_pool_delete(pool.annotations, len(allocated))
        return ALLOW if status is None else Verdict.deny(status)

    async def _overlap_warnings(self, pool: Pool) -> list[str]:
        if self._pools is None:
            return []
        namespace = pool.namespace if pool.kind.namespaced else None
        try:
            others = await self._lookup("listing pools", self._pools(namespace))
        except LookupFailed as exc:
            log.warning("overlap check for %s skipped: %s", pool.ref, exc)
            return [f"overlap with other pools not checked: {exc}"]
        return await self._off_loop(overlap.overlap_warnings, pool, others, self._spaces)


#: The answer to a review whose old object is not the stored pool (forged, or about to be stale): nothing
#: about the stored pool, and a hint that a genuine request may simply be retried.
_NOT_STORED = conflict("the object in this review is not the stored one; retry with the current object")
