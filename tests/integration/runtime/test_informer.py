"""Informer against the real kube-apiserver: initial list, live updates, indexes, selectors, relist
after being away, and recovery from an apiserver restart (whose watch cache answers 410 Gone)."""

from __future__ import annotations

from typing import Any

import pytest

from incluster_ipam.devcluster import ControlPlane
from incluster_ipam.kube import CONFIGMAPS, KubeClient, WatchExpired
from incluster_ipam.kube.resources import Obj
from incluster_ipam.runtime import Backoff, Informer

from .conftest import CLAIMS, claim

Seen = list[tuple[str, str]]


def project_claim(obj: Obj) -> Obj:
    """Only what the claim controller needs; drops managedFields, labels, status..."""
    meta = obj["metadata"]
    return {
        "name": meta["name"],
        "namespace": meta["namespace"],
        "pool": obj["spec"]["poolRef"]["name"],
        "deleting": "deletionTimestamp" in meta,
    }


def claim_informer(kube: KubeClient, namespace: str, seen: Seen, **kwargs: Any) -> Informer:
    informer = Informer.for_resource(
        kube,
        CLAIMS,
        namespace=namespace,
        projection=project_claim,
        indexers={"pool": lambda o: [o["pool"]]},
        backoff=Backoff(initial=0.1, cap=1.0),
        **kwargs,
    )
    informer.add_handler(lambda t, old, new: seen.append((t, (new or old or {}).get("name", "?"))))
    return informer


async def test_initial_list_live_updates_and_indexes(kube: KubeClient, namespace: str) -> None:
    for i in range(3):
        await kube.create(CLAIMS, claim(f"pre{i}", namespace, pool="pool-a" if i < 2 else "pool-b"))
    seen: Seen = []
    informer = claim_informer(kube, namespace, seen, page_size=2)
    informer.start()
    try:
        await informer.wait_for(lambda i: i.has_synced, timeout=10)
        assert sorted(seen) == [("ADDED", "pre0"), ("ADDED", "pre1"), ("ADDED", "pre2")]
        assert informer.get(f"{namespace}/pre0") == {
            "name": "pre0",
            "namespace": namespace,
            "pool": "pool-a",
            "deleting": False,
        }
        assert informer.index_keys("pool", "pool-a") == {f"{namespace}/pre0", f"{namespace}/pre1"}
        seen.clear()

        await kube.create(CLAIMS, claim("live", namespace, pool="pool-b"))
        await kube.patch(CLAIMS, "pre0", {"spec": {"poolRef": {"name": "pool-b"}}}, namespace)
        await kube.delete(CLAIMS, "pre1", namespace)
        await informer.wait_for(
            lambda i: len(i.index_keys("pool", "pool-b")) == 3 and len(i) == 3, timeout=10
        )
        assert seen == [("ADDED", "live"), ("MODIFIED", "pre0"), ("DELETED", "pre1")]
        assert {o["name"] for o in informer.by_index("pool", "pool-b")} == {"pre0", "pre2", "live"}
        assert informer.index_keys("pool", "pool-a") == set()
        assert informer.lists == 1
    finally:
        await informer.stop()


async def test_label_selector_limits_what_is_cached(kube: KubeClient, namespace: str) -> None:
    informer = Informer.for_resource(
        kube, CLAIMS, namespace=namespace, label_selector="cluster.x-k8s.io/watch-filter=blue"
    )
    informer.start()
    try:
        await informer.wait_synced()
        await kube.create(CLAIMS, claim("red", namespace, **{"cluster.x-k8s.io/watch-filter": "red"}))
        await kube.create(CLAIMS, claim("blue", namespace, **{"cluster.x-k8s.io/watch-filter": "blue"}))
        await kube.create(CLAIMS, claim("none", namespace))
        await informer.wait_for(lambda i: len(i) >= 1, timeout=10)
        await kube.create(CLAIMS, claim("blue2", namespace, **{"cluster.x-k8s.io/watch-filter": "blue"}))
        await informer.wait_for(lambda i: len(i) == 2, timeout=10)
        assert sorted(informer.keys()) == [f"{namespace}/blue", f"{namespace}/blue2"]
    finally:
        await informer.stop()


async def test_restarted_informer_relists_and_reports_what_it_missed(
    kube: KubeClient, namespace: str
) -> None:
    for name in ("stay", "change", "vanish"):
        await kube.create(CLAIMS, claim(name, namespace))
    seen: Seen = []
    informer = claim_informer(kube, namespace, seen)
    informer.start()
    await informer.wait_synced()
    await informer.stop()
    seen.clear()

    await kube.patch(CLAIMS, "change", {"spec": {"poolRef": {"name": "pool-z"}}}, namespace)
    await kube.delete(CLAIMS, "vanish", namespace)
    await kube.create(CLAIMS, claim("new", namespace))

    informer.start()
    try:
        await informer.wait_for(lambda i: i.lists == 2, timeout=10)
        assert sorted(seen) == [("ADDED", "new"), ("DELETED", "vanish"), ("MODIFIED", "change")]
        assert informer.get(f"{namespace}/change") is not None
        assert informer.index_keys("pool", "pool-z") == {f"{namespace}/change"}
    finally:
        await informer.stop()


async def test_informer_survives_an_apiserver_restart(
    kube: KubeClient, control_plane: ControlPlane, namespace: str
) -> None:
    await kube.create(CONFIGMAPS, {"metadata": {"name": "before", "namespace": namespace}})
    informer = Informer.for_resource(
        kube, CONFIGMAPS, namespace=namespace, backoff=Backoff(initial=0.1, cap=0.5)
    )
    informer.start()
    try:
        await informer.wait_for(lambda i: i.get(f"{namespace}/before") is not None, timeout=10)
        old_version = informer.resource_version

        await control_plane.restart_apiserver()

        # The restarted apiserver's watch cache starts after our resourceVersion: a watch from it is Gone...
        with pytest.raises(WatchExpired):
            async for _ in kube.watch(CONFIGMAPS, namespace, resource_version=old_version, timeout_seconds=5):
                pass
        # ...so the informer must have relisted (not just reconnected) to carry on.
        await kube.create(CONFIGMAPS, {"metadata": {"name": "after", "namespace": namespace}})
        await informer.wait_for(lambda i: i.get(f"{namespace}/after") is not None, timeout=20)
        assert informer.lists >= 2
        await kube.delete(CONFIGMAPS, "before", namespace)
        await informer.wait_for(lambda i: i.get(f"{namespace}/before") is None, timeout=10)
    finally:
        await informer.stop()
