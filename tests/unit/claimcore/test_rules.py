"""The pure rules of which IPAddress is whose (`claimcore.rules`)."""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from incluster_ipam.api.constants import ADDRESS_FINALIZER, GROUP
from incluster_ipam.capi.contract import Contract, PoolRef
from incluster_ipam.capi.objects import CLUSTER_NAME_LABEL
from incluster_ipam.claimcore import rules

from .fakes import merge

POOL = PoolRef("k", GROUP, "v1alpha2", "InClusterIPPool", "p", "ns", "pool-uid")
CLAIM: dict[str, Any] = {
    "metadata": {"name": "c", "namespace": "ns", "uid": "claim-uid", "labels": {CLUSTER_NAME_LABEL: "cl"}},
    "spec": {"poolRef": {"apiGroup": GROUP, "kind": "InClusterIPPool", "name": "p"}},
}


def address(
    owners: list[dict[str, Any]], *, claim_ref: str = "c", pool: str = "p", **meta: Any
) -> dict[str, Any]:
    return {
        "metadata": {
            "name": "c",
            "namespace": "ns",
            "ownerReferences": owners,
            "resourceVersion": "7",
            **meta,
        },
        "spec": {
            "address": "10.0.0.1",
            "claimRef": {"name": claim_ref},
            "poolRef": {"apiGroup": GROUP, "kind": "InClusterIPPool", "name": pool},
        },
    }


def owner(kind: str, name: str, uid: str, controller: bool) -> dict[str, Any]:
    return {"apiVersion": "x/v1", "kind": kind, "name": name, "uid": uid, "controller": controller}


def test_who_controls() -> None:
    ours = address([owner("IPAddressClaim", "c", "claim-uid", True)])
    earlier = address([owner("IPAddressClaim", "c", "old-uid", True)])
    foreign = address([owner("ConfigMap", "c", "cm", True)])
    none = address([])
    assert rules.controls(CLAIM, ours)
    assert not rules.controls(CLAIM, earlier)
    assert rules.of_an_earlier_incarnation(CLAIM, earlier)
    assert not rules.of_an_earlier_incarnation(CLAIM, ours)
    assert not rules.of_an_earlier_incarnation(CLAIM, foreign)
    assert rules.controlled_by_claim(earlier, "c")
    assert not rules.controlled_by_claim(foreign, "c")
    assert not rules.controlled_by_claim(address([], claim_ref="x"), "c")
    assert rules.controller_of(none) is None


def test_left_by_collector_is_ours_minus_the_claims_reference() -> None:
    pool_owner = {"apiVersion": f"{GROUP}/v1alpha2", "kind": "InClusterIPPool", "name": "p", "uid": "u"}
    left = address([pool_owner])
    left["metadata"]["finalizers"] = [ADDRESS_FINALIZER]
    assert rules.left_by_collector(left, "c")
    assert not rules.left_by_collector(left, "other")
    without_finalizer = address([pool_owner])
    assert not rules.left_by_collector(without_finalizer, "c")  # e.g. an admin's reservation
    nothing = address([])
    nothing["metadata"]["finalizers"] = [ADDRESS_FINALIZER]
    assert not rules.left_by_collector(nothing, "c")
    controlled = address([pool_owner, owner("ConfigMap", "x", "cm", True)])
    controlled["metadata"]["finalizers"] = [ADDRESS_FINALIZER]
    assert not rules.left_by_collector(controlled, "c")


def test_meant_for_needs_the_claims_pool_and_name_and_no_foreign_controller() -> None:
    assert rules.meant_for(CLAIM, address([]))
    assert rules.meant_for(CLAIM, address([owner("IPAddressClaim", "c", "old-uid", True)]))
    assert not rules.meant_for(CLAIM, address([], pool="other"))
    assert not rules.meant_for(CLAIM, address([], claim_ref="other"))
    assert not rules.meant_for(CLAIM, address([owner("ConfigMap", "x", "cm", True)]))


def test_same_pool_compares_group_kind_name_and_namespace() -> None:
    assert rules.same_pool(address([]), POOL)
    assert not rules.same_pool(address([], pool="q"), POOL)
    elsewhere = address([])
    elsewhere["metadata"]["namespace"] = "other"
    assert not rules.same_pool(elsewhere, POOL)
    assert rules.same_pool(elsewhere, PoolRef("k", GROUP, "v1alpha2", "InClusterIPPool", "p", "", "u"))


def test_adoption_refusals_name_the_reason() -> None:
    assert rules.adoption_refusal(CLAIM, address([])) is None
    assert "for claim 'x'" in (rules.adoption_refusal(CLAIM, address([], claim_ref="x")) or "")
    assert "controlled by ConfigMap 'y'" in (
        rules.adoption_refusal(CLAIM, address([owner("ConfigMap", "y", "cm", True)])) or ""
    )


OWNERS = st.lists(
    st.builds(
        owner,
        st.sampled_from(["IPAddressClaim", "InClusterIPPool", "ConfigMap"]),
        st.sampled_from(["c", "p", "x"]),
        st.sampled_from(["claim-uid", "pool-uid", "old-uid", "cm"]),
        st.booleans(),
    ),
    max_size=4,
    unique_by=lambda o: o["uid"],
).map(
    lambda owners: [
        {**o, "apiVersion": f"{GROUP}/v1alpha2"} if o["kind"] == "InClusterIPPool" else o for o in owners
    ]
)


@given(OWNERS, st.booleans(), st.booleans())
def test_the_adoption_patch_converges_and_never_makes_two_controllers(
    owners: list[dict[str, Any]], finalized: bool, deleting: bool
) -> None:
    meta: dict[str, Any] = {"finalizers": [ADDRESS_FINALIZER] if finalized else []}
    if deleting:
        meta["deletionTimestamp"] = "2027-01-01T00:00:00Z"
    obj = address(copy.deepcopy(owners), **meta)
    patch = rules.adoption_patch(Contract("v1beta2"), CLAIM, POOL, obj)
    if patch is not None:
        assert patch["metadata"]["resourceVersion"] == "7"  # optimistically locked
        merge(obj, patch)
    assert rules.adoption_patch(Contract("v1beta2"), CLAIM, POOL, obj) is None
    refs = obj["metadata"]["ownerReferences"]
    assert sum(1 for o in refs if o.get("controller")) <= max(1, sum(1 for o in owners if o["controller"]))
    assert any(o["uid"] == "claim-uid" for o in refs)
    assert any(o["uid"] == "pool-uid" for o in refs)
    assert not any(
        o["kind"] == "IPAddressClaim" and o["name"] == "c" and o["uid"] != "claim-uid" for o in refs
    )
    assert not any(  # a restored pool's stale UID
        o["kind"] == "InClusterIPPool" and o["name"] == "p" and o["uid"] != "pool-uid" for o in refs
    )
    assert (ADDRESS_FINALIZER in obj["metadata"]["finalizers"]) == (finalized or not deleting)
    assert obj["metadata"]["labels"] == {CLUSTER_NAME_LABEL: "cl"}
