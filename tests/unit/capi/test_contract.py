"""The IPAM contract is picked from discovery and shapes conditions the way each version wants them."""

from __future__ import annotations

import pytest

from incluster_ipam.capi.contract import (
    POOL_EXHAUSTED,
    Contract,
    NoContractError,
    PoolRef,
    ReadyState,
    choose_contract,
    owner_references,
)


def test_the_newest_served_contract_wins_and_none_is_a_clear_error() -> None:
    assert choose_contract(["v1alpha1", "v1beta1", "v1beta2"]).version == "v1beta2"
    assert choose_contract(["v1beta1"]).version == "v1beta1"
    with pytest.raises(NoContractError, match="install Cluster API"):
        choose_contract(["v1alpha1"])


def claim(conditions: list[dict[str, object]] | None = None) -> dict[str, object]:
    status = {"conditions": conditions} if conditions is not None else {}
    return {
        "metadata": {"name": "c", "namespace": "n", "generation": 3, "resourceVersion": "7"},
        "status": status,
    }


def test_v1beta2_condition_has_observed_generation_and_v1beta1_has_severity() -> None:
    state = ReadyState(False, POOL_EXHAUSTED, "pool p has no free address")
    new = Contract("v1beta2").status_patch(claim(), state, None, "2026-01-01T00:00:00Z")
    assert new is not None
    (condition,) = new["status"]["conditions"]
    assert condition["observedGeneration"] == 3
    assert "severity" not in condition
    old = Contract("v1beta1").status_patch(claim(), state, None, "2026-01-01T00:00:00Z")
    assert old is not None
    assert old["status"]["conditions"][0]["severity"] == "Warning"
    assert "observedGeneration" not in old["status"]["conditions"][0]


def test_unchanged_condition_is_not_rewritten_and_transition_time_moves_only_on_flips() -> None:
    contract = Contract("v1beta2")
    exhausted = ReadyState(False, POOL_EXHAUSTED, "full")
    first = contract.status_patch(claim(), exhausted, None, "2026-01-01T00:00:00Z")
    assert first is not None
    stored = claim(first["status"]["conditions"])
    assert contract.status_patch(stored, exhausted, None, "2026-01-02T00:00:00Z") is None
    message_only = contract.status_patch(
        stored, ReadyState(False, POOL_EXHAUSTED, "still full"), None, "2026-01-02T00:00:00Z"
    )
    assert message_only is not None
    assert message_only["status"]["conditions"][0]["lastTransitionTime"] == "2026-01-01T00:00:00Z"
    bound = contract.status_patch(
        stored, ReadyState(True, "AddressAllocated", "ok"), "c", "2026-01-03T00:00:00Z"
    )
    assert bound is not None
    assert bound["status"]["conditions"][0]["lastTransitionTime"] == "2026-01-03T00:00:00Z"
    assert bound["status"]["addressRef"] == {"name": "c"}


def test_other_controllers_conditions_are_kept() -> None:
    theirs = {"type": "Custom", "status": "True", "reason": "X", "message": "", "lastTransitionTime": "t"}
    patch = Contract("v1beta2").status_patch(
        claim([theirs]), ReadyState(True, "AddressAllocated", "ok"), "c", "now"
    )
    assert patch is not None
    assert patch["status"]["conditions"][0] == theirs


def test_the_ipaddress_is_owned_by_its_claim_and_its_pool_unless_the_pool_is_no_object() -> None:
    claim = {"metadata": {"name": "c", "namespace": "ns", "uid": "claim-uid"}}
    pool = PoolRef("k", "ipam.cluster.x-k8s.io", "v1alpha2", "InClusterIPPool", "p", "ns", "pool-uid")
    body = Contract("v1beta2").ip_address(claim, pool, address="10.0.0.1", prefix=24, gateway="")
    owners = body["metadata"]["ownerReferences"]
    assert [(o["kind"], o["uid"], o["controller"], o["blockOwnerDeletion"]) for o in owners] == [
        ("IPAddressClaim", "claim-uid", True, True),
        ("InClusterIPPool", "pool-uid", False, True),
    ]
    assert "gateway" not in body["spec"]
    sheet = PoolRef("lab", "sheets.example.com", "v1", "Spreadsheet", "lab", "", "")
    assert [o["uid"] for o in owner_references(Contract("v1beta2"), claim, sheet)] == ["claim-uid"]
