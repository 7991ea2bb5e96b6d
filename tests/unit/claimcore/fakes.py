"""In-memory stand-ins for what the claim lifecycle is given (`claimcore.ports`) and for a backend, so that
every branch of `ClaimReconciler` can be driven and observed without a cluster.

`FakeApi` answers the four calls the lifecycle makes the way kube-apiserver answers them for custom
resources: UIDs and resourceVersions, AlreadyExists, NotFound, optimistic locking on
`metadata.resourceVersion` and preconditions on `metadata.uid` (409 Conflict), JSON merge patches, the
status subresource, and deletion held by finalizers. Faults are queued per verb: raised instead of the call
(`fail`) or after it took effect (`lose_answer`, a create that landed but whose answer was lost). The
integration suites test the same lifecycle against a real kube-apiserver.
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry

from incluster_ipam.api.constants import CLAIM_FINALIZER, GROUP
from incluster_ipam.capi.contract import Contract
from incluster_ipam.capi.objects import Obj, address_text, key_of, project, uid_of
from incluster_ipam.claimcore import (
    Allocation,
    Caches,
    ClaimMetrics,
    ClaimReconciler,
    Exhausted,
    NotReady,
    PoolRef,
    Resources,
    Unavailable,
)
from incluster_ipam.kube import ApiError, Resource
from incluster_ipam.runtime import Fence

CLAIMS = Resource(GROUP, "v1beta2", "ipaddressclaims", "IPAddressClaim", True)
ADDRESSES = Resource(GROUP, "v1beta2", "ipaddresses", "IPAddress", True)
CLUSTERS = Resource("cluster.x-k8s.io", "v1beta2", "clusters", "Cluster", True)
NOW = 1_800_000_000.0  # the fake apiserver's clock
NOW_TEXT = "2027-01-15T08:00:00Z"  # NOW as a metav1.Time


def not_found(name: str) -> ApiError:
    return ApiError(404, "NotFound", f'"{name}" not found')


def conflict(name: str, why: str) -> ApiError:
    return ApiError(409, "Conflict", f'Operation cannot be fulfilled on "{name}": {why}')


def merge(target: dict[str, Any], patch: Mapping[str, Any]) -> None:
    """RFC 7386 JSON merge patch, in place."""
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        elif isinstance(value, Mapping) and isinstance(target.get(key), dict):
            merge(target[key], value)
        else:
            target[key] = copy.deepcopy(value)


@dataclass
class Call:
    verb: str
    plural: str
    name: str
    body: Any = None
    subresource: str | None = None
    uid: str | None = None


class FakeApi:
    """Objects by (plural, namespace, name); every call is recorded in `calls`."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str, str], Obj] = {}
        self.calls: list[Call] = []
        self._faults: list[tuple[str, str, Exception, bool]] = []  # (verb, plural, error, after the call)
        self._versions = itertools.count(100)
        self._uids = itertools.count(1)

    # ---- set-up and inspection ----------------------------------------------------------------------------

    def put(self, resource: Resource, obj: Mapping[str, Any]) -> Obj:
        """Store an object as if someone had created it (UID and resourceVersion filled in)."""
        stored = copy.deepcopy(dict(obj))
        meta = stored.setdefault("metadata", {})
        meta.setdefault("uid", f"uid-{next(self._uids)}")
        meta["resourceVersion"] = str(next(self._versions))
        stored.setdefault("apiVersion", resource.api_version)
        stored.setdefault("kind", resource.kind)
        self.objects[(resource.plural, meta.get("namespace", ""), meta["name"])] = stored
        return copy.deepcopy(stored)

    def stored(self, resource: Resource, namespace: str, name: str) -> Obj | None:
        found = self.objects.get((resource.plural, namespace, name))
        return copy.deepcopy(found) if found is not None else None

    def writes(self, verb: str | None = None) -> list[Call]:
        return [c for c in self.calls if c.verb != "get" and (verb is None or c.verb == verb)]

    def fail(self, verb: str, error: Exception, plural: str = "") -> None:
        """The next `verb` call (on `plural`, or any) raises `error` without taking effect."""
        self._faults.append((verb, plural, error, False))

    def lose_answer(self, verb: str, error: Exception, plural: str = "") -> None:
        """The next `verb` call takes effect, then raises `error` (the answer was lost)."""
        self._faults.append((verb, plural, error, True))

    def _fault(self, verb: str, plural: str, after: bool) -> None:
        for i, (v, p, error, when) in enumerate(self._faults):
            if v == verb and p in ("", plural) and when == after:
                del self._faults[i]
                raise error

    # ---- the lifecycle's four calls (claimcore.ports.Client) -----------------------------------------------

    async def get(self, resource: Resource, name: str, namespace: str | None = None) -> Obj:
        self.calls.append(Call("get", resource.plural, name))
        self._fault("get", resource.plural, False)
        found = self.stored(resource, namespace or "", name)
        if found is None:
            raise not_found(name)
        return found

    async def create(
        self, resource: Resource, obj: Obj, namespace: str | None = None, *, send_within: float | None = None
    ) -> Obj:
        name = obj["metadata"]["name"]
        self.calls.append(Call("create", resource.plural, name, copy.deepcopy(obj)))
        self._fault("create", resource.plural, False)
        if (resource.plural, obj["metadata"].get("namespace", namespace or ""), name) in self.objects:
            raise ApiError(409, "AlreadyExists", f'{resource.plural} "{name}" already exists')
        created = self.put(resource, obj)
        self._fault("create", resource.plural, True)
        return created

    async def patch(
        self,
        resource: Resource,
        name: str,
        patch: Obj,
        namespace: str | None = None,
        *,
        subresource: str | None = None,
        send_within: float | None = None,
    ) -> Obj:
        self.calls.append(Call("patch", resource.plural, name, copy.deepcopy(patch), subresource))
        self._fault("patch", resource.plural, False)
        key = (resource.plural, namespace or "", name)
        current = self.objects.get(key)
        if current is None:
            raise not_found(name)
        meta_patch = dict(patch.get("metadata") or {})
        version = meta_patch.pop("resourceVersion", None)
        if version is not None and version != current["metadata"]["resourceVersion"]:
            raise conflict(
                name, "the object has been modified; please apply your changes to the latest version"
            )
        uid = meta_patch.pop("uid", None)
        if uid is not None and uid != current["metadata"]["uid"]:
            raise conflict(name, "Precondition failed: UID in precondition does not match the object")
        if subresource == "status":
            merge(current, {"status": patch.get("status") or {}})
        else:
            merge(
                current,
                {
                    "metadata": meta_patch,
                    **{k: v for k, v in patch.items() if k not in ("metadata", "status")},
                },
            )
        current["metadata"]["resourceVersion"] = str(next(self._versions))
        updated = copy.deepcopy(current)
        if current["metadata"].get("deletionTimestamp") and not current["metadata"].get("finalizers"):
            del self.objects[key]
        self._fault("patch", resource.plural, True)
        return updated

    async def delete(
        self,
        resource: Resource,
        name: str,
        namespace: str | None = None,
        *,
        uid: str | None = None,
        send_within: float | None = None,
    ) -> Obj:
        self.calls.append(Call("delete", resource.plural, name, uid=uid))
        self._fault("delete", resource.plural, False)
        key = (resource.plural, namespace or "", name)
        current = self.objects.get(key)
        if current is None:
            raise not_found(name)
        if uid is not None and uid != current["metadata"]["uid"]:
            raise conflict(name, "Precondition failed: UID in precondition does not match the object")
        if current["metadata"].get("finalizers"):
            current["metadata"].setdefault("deletionTimestamp", NOW_TEXT)
            current["metadata"]["resourceVersion"] = str(next(self._versions))
            return copy.deepcopy(current)
        del self.objects[key]
        return {"kind": "Status", "apiVersion": "v1", "status": "Success"}


class StoreCache:
    """An informer's cache over the fake API: current (projected), except for keys it has not seen yet
    (`hide`) or holds an old copy of (`lag`)."""

    def __init__(self, api: FakeApi, resource: Resource) -> None:
        self._api = api
        self._resource = resource
        self.hidden: set[str] = set()
        self.stale: dict[str, Obj] = {}

    def hide(self, key: str) -> None:
        self.hidden.add(key)

    def lag(self, key: str, obj: Obj) -> None:
        self.stale[key] = project(obj)

    def get(self, key: str) -> Obj | None:
        if key in self.hidden:
            return None
        if key in self.stale:
            return copy.deepcopy(self.stale[key])
        namespace, _, name = key.rpartition("/")
        found = self._api.stored(self._resource, namespace, name)
        return project(found) if found is not None else None

    def get_object(self, namespace: str | None, name: str) -> Obj | None:
        return self.get(f"{namespace}/{name}" if namespace else name)


@dataclass
class Pool:
    """One pool of `FakeBackend`: free addresses in order, plus the knobs a test turns."""

    ref: PoolRef
    free: list[str]
    prefix: int = 24
    gateway: str = ""
    hands_out: set[str] = field(default_factory=set)  # addresses the pool would hand out (default: any)
    problem: str | None = None  # `unusable`
    not_ready: str | None = None  # `reserve` raises NotReady with this
    grace: float = 0.0


class FakeBackend:
    """A `ClaimBackend` over a few in-memory pools, recording every call (`calls`). Holds track which
    IPAddress (by key and UID) holds which address; reservations are idempotent per claim key."""

    def __init__(self) -> None:
        self.pools: dict[str, Pool] = {}
        self.reserved: dict[str, tuple[str, str]] = {}  # claim key -> (pool key, address)
        self.held: dict[str, tuple[str, str, str | None]] = {}  # IPAddress key -> (pool key, address, uid)
        self.check: set[str] = set()
        self.calls: list[tuple[str, Any]] = []
        self.requests: list[tuple[str, str]] = []  # (claim key, requested address) as reserve saw them

    def add_pool(self, name: str, free: list[str], *, namespace: str = "ns", **knobs: Any) -> Pool:
        ref = PoolRef(
            key=f"Pool/{namespace}/{name}",
            group=GROUP,
            version="v1alpha2",
            kind="InClusterIPPool",
            name=name,
            namespace=namespace,
            uid=f"pool-uid-{name}",
        )
        pool = Pool(ref, list(free), **knobs)
        self.pools[ref.key] = pool
        return pool

    def set_pool(self, name: str, **changes: Any) -> None:
        key = f"Pool/ns/{name}"
        pool = self.pools[key]
        pool.ref = PoolRef(**{**pool.ref.__dict__, **changes})

    def _pool_for(self, ref: Mapping[str, Any] | None, namespace: str) -> str | None:
        if not isinstance(ref, Mapping) or ref.get("kind") != "InClusterIPPool":
            return None
        if (ref.get("apiGroup") or GROUP) != GROUP:
            return None
        return f"Pool/{namespace}/{ref.get('name')}"

    # ---- claimcore.ClaimBackend ---------------------------------------------------------------------------

    def pool_key(self, claim: Mapping[str, Any]) -> str | None:
        return self._pool_for(
            (claim.get("spec") or {}).get("poolRef"), claim["metadata"].get("namespace", "")
        )

    def pool_of_address(self, address: Mapping[str, Any]) -> str | None:
        return self._pool_for(
            (address.get("spec") or {}).get("poolRef"), address["metadata"].get("namespace", "")
        )

    def describe(self, pool_key: str) -> str:
        _, namespace, name = pool_key.split("/")
        return f"InClusterIPPool {namespace}/{name}"

    def pool(self, pool_key: str) -> PoolRef | None:
        found = self.pools.get(pool_key)
        return found.ref if found is not None else None

    def unusable(self, pool: PoolRef) -> str | None:
        return self.pools[pool.key].problem

    async def reserve(self, claim_key: str, pool: PoolRef, requested: str | None = None) -> Allocation:
        self.calls.append(("reserve", claim_key))
        if requested is not None:
            self.requests.append((claim_key, requested))
        state = self.pools[pool.key]
        if state.not_ready:
            raise NotReady(state.not_ready)
        if claim_key in self.reserved:
            return Allocation(self.reserved[claim_key][1], state.prefix, state.gateway)
        if requested is not None:
            if requested not in state.free:
                taken = any(held[1] == requested for held in [*self.held.values(), *self.reserved.values()])
                raise Unavailable("is in use" if taken else "is outside the pool")
            state.free.remove(requested)
            self.reserved[claim_key] = (pool.key, requested)
            return Allocation(requested, state.prefix, state.gateway)
        if not state.free:
            raise Exhausted
        address = state.free.pop(0)
        self.reserved[claim_key] = (pool.key, address)
        return Allocation(address, state.prefix, state.gateway)

    async def confirm(self, claim_key: str, pool: PoolRef, address: Mapping[str, Any]) -> None:
        self.calls.append(("confirm", claim_key))
        _, text = self.reserved.pop(claim_key)
        self.held[key_of(address)] = (pool.key, text, uid_of(address))

    async def abandon(self, claim_key: str) -> None:
        self.calls.append(("abandon", claim_key))
        found = self.reserved.pop(claim_key, None)
        if found is not None:
            self.pools[found[0]].free.insert(0, found[1])

    def known_address(self, claim_key: str, pool: PoolRef) -> str | None:
        found = self.held.get(claim_key)
        return found[1] if found is not None and found[0] == pool.key else None

    def holds(self, address_key: str) -> bool:
        return address_key in self.held

    def refusal(self, claim: Mapping[str, Any], pool: PoolRef, address: Mapping[str, Any]) -> str | None:
        text = address_text(address)
        holder = next((k for k, (p, a, _) in self.held.items() if p == pool.key and a == text), None)
        if holder is not None and holder != key_of(address):
            return f"{text} is held by {holder}"
        return None

    def outside(self, pool: PoolRef, address: Mapping[str, Any]) -> bool:
        hands_out = self.pools[pool.key].hands_out
        return bool(hands_out) and address_text(address) not in hands_out

    async def adopted(self, pool: PoolRef, address: Mapping[str, Any]) -> None:
        self.calls.append(("adopted", key_of(address)))
        free = self.pools[pool.key].free
        if address_text(address) in free:
            free.remove(address_text(address))
        self.held[key_of(address)] = (pool.key, address_text(address), uid_of(address))

    async def released(self, address: Mapping[str, Any]) -> None:
        self.calls.append(("released", key_of(address)))
        found = self.held.get(key_of(address))
        if found is not None and found[2] in (None, uid_of(address)):
            del self.held[key_of(address)]
            self._free(found[0], found[1])

    async def gone(self, address_key: str, keep_uid: str | None) -> None:
        self.calls.append(("gone", (address_key, keep_uid)))
        self.check.discard(address_key)
        found = self.held.get(address_key)
        if found is not None and found[2] != keep_uid:
            del self.held[address_key]
            self._free(found[0], found[1])

    def _free(self, pool_key: str, address: str) -> None:
        if pool_key in self.pools:
            self.pools[pool_key].free.append(address)

    def needs_check(self, address_key: str) -> bool:
        return address_key in self.check

    def grace_remaining(self, claim: Mapping[str, Any], pool: PoolRef | None, now: float) -> float:
        return self.pools[pool.key].grace if pool is not None else 0.0

    def called(self, name: str) -> list[Any]:
        return [arg for method, arg in self.calls if method == name]


class FakeRecorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, str, str, str]] = []  # (type, object name, reason, message)

    def normal(self, obj: Mapping[str, Any], reason: str, message: str) -> None:
        self.events.append(("Normal", obj["metadata"]["name"], reason, message))

    def warning(self, obj: Mapping[str, Any], reason: str, message: str) -> None:
        self.events.append(("Warning", obj["metadata"]["name"], reason, message))

    def reasons(self) -> list[str]:
        return [reason for _, _, reason, _ in self.events]


class SwitchFence:
    """Leadership certain until `lose()`."""

    def __init__(self) -> None:
        self.left = 10.0

    def lose(self) -> None:
        self.left = 0.0

    def remaining(self) -> float:
        return self.left


class World:
    """A reconciler over the fakes, with helpers to create objects and read the outcome."""

    def __init__(
        self,
        *,
        contract: str = "v1beta2",
        clusters: bool = True,
        watch_filter: str | None = None,
        backend: Any = None,
    ):
        self.api = FakeApi()
        self.contract = Contract(contract)
        self.claims_resource = Resource(GROUP, contract, "ipaddressclaims", "IPAddressClaim", True)
        self.addresses_resource = Resource(GROUP, contract, "ipaddresses", "IPAddress", True)
        self.claims = StoreCache(self.api, self.claims_resource)
        self.addresses = StoreCache(self.api, self.addresses_resource)
        self.clusters = StoreCache(self.api, CLUSTERS) if clusters else None
        self.backend = backend if backend is not None else FakeBackend()
        self.recorder = FakeRecorder()
        self.registry = CollectorRegistry()
        self.metrics = ClaimMetrics(self.registry)
        self.fence: Fence = SwitchFence()
        self.reconciler = ClaimReconciler(
            self.api,
            contract=self.contract,
            resources=Resources(self.claims_resource, self.addresses_resource),
            caches=Caches(self.claims, self.addresses, self.clusters),
            backend=self.backend,
            recorder=self.recorder,
            metrics=self.metrics,
            watch_filter=watch_filter,
            clock=lambda: NOW,
            fence=self.fence,
        )

    # ---- objects ------------------------------------------------------------------------------------------

    def claim(
        self,
        name: str = "c",
        *,
        pool: str = "p",
        kind: str = "InClusterIPPool",
        finalizer: bool = True,
        labels: Mapping[str, str] | None = None,
        annotations: Mapping[str, str] | None = None,
        cluster: str | None = None,
        deleting: str | None = None,
        status: Mapping[str, Any] | None = None,
        group: str = GROUP,
    ) -> Obj:
        meta: Obj = {"name": name, "namespace": "ns", "generation": 1}
        if finalizer:
            meta["finalizers"] = [CLAIM_FINALIZER]
        if labels:
            meta["labels"] = dict(labels)
        if annotations:
            meta["annotations"] = dict(annotations)
        if deleting:
            meta["deletionTimestamp"] = deleting
        spec: Obj = {"poolRef": {"apiGroup": group, "kind": kind, "name": pool}}
        if cluster:
            spec["clusterName"] = cluster
        body: Obj = {"metadata": meta, "spec": spec}
        if status:
            body["status"] = dict(status)
        return self.api.put(self.claims_resource, body)

    def address(
        self,
        name: str = "c",
        text: str = "10.0.0.9",
        *,
        pool: str = "p",
        claim_ref: str | None = None,
        owners: list[Obj] | None = None,
        finalizers: list[str] | None = None,
        annotations: Mapping[str, str] | None = None,
        labels: Mapping[str, str] | None = None,
    ) -> Obj:
        meta: Obj = {"name": name, "namespace": "ns", "ownerReferences": owners or []}
        if finalizers:
            meta["finalizers"] = finalizers
        if annotations:
            meta["annotations"] = dict(annotations)
        if labels:
            meta["labels"] = dict(labels)
        body: Obj = {
            "metadata": meta,
            "spec": {
                "address": text,
                "prefix": 24,
                "claimRef": {"name": claim_ref or name},
                "poolRef": {"apiGroup": GROUP, "kind": "InClusterIPPool", "name": pool},
            },
        }
        return self.api.put(self.addresses_resource, body)

    def cluster(self, name: str, *, paused: bool = False) -> Obj:
        body: Obj = {"metadata": {"name": name, "namespace": "ns"}, "spec": {"paused": paused}}
        return self.api.put(CLUSTERS, body)

    # ---- outcome ------------------------------------------------------------------------------------------

    def stored_claim(self, name: str = "c") -> Obj | None:
        return self.api.stored(self.claims_resource, "ns", name)

    def stored_address(self, name: str = "c") -> Obj | None:
        return self.api.stored(self.addresses_resource, "ns", name)

    def ready(self, name: str = "c") -> Mapping[str, Any] | None:
        claim = self.stored_claim(name)
        assert claim is not None
        conditions = (claim.get("status") or {}).get("conditions") or []
        return next((c for c in conditions if c.get("type") == "Ready"), None)

    def metric(self, name: str, **labels: str) -> float:
        value = self.registry.get_sample_value(name, labels)
        return value if value is not None else 0.0


def claim_owner(claim: Mapping[str, Any], *, controller: bool = True, uid: str | None = None) -> Obj:
    return {
        "apiVersion": f"{GROUP}/v1beta2",
        "kind": "IPAddressClaim",
        "name": claim["metadata"]["name"],
        "uid": uid or claim["metadata"]["uid"],
        "controller": controller,
        "blockOwnerDeletion": True,
    }
