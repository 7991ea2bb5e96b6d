"""Pool conditions: what Ready and Available say for a spec verdict and counts, and how they move."""

from __future__ import annotations

from typing import Any

import pytest

from incluster_ipam.api.conditions import (
    MESSAGE_LIMIT,
    SpecVerdict,
    pool_conditions,
    unusable_message,
)
from incluster_ipam.api.constants import PoolFamily
from incluster_ipam.api.models import IPPoolSpec, PrefixPoolSpec
from incluster_ipam.ipam.pool import PoolCounts

T0, T1 = "2026-12-01T10:00:00Z", "2026-12-01T11:00:00Z"
IP = PoolFamily.IP


def by_type(conditions: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in conditions}


def test_a_usable_pool_with_room_is_ready_and_available_at_its_generation() -> None:
    got = pool_conditions([], SpecVerdict(3), PoolCounts(11, 1, 10, 0), IP, T0)
    assert got == [
        {
            "type": "Ready",
            "status": "True",
            "observedGeneration": 3,
            "lastTransitionTime": T0,
            "reason": "SpecInUse",
            "message": "the spec is valid and addresses are handed out from it",
        },
        {
            "type": "Available",
            "status": "True",
            "observedGeneration": 3,
            "lastTransitionTime": T0,
            "reason": "AddressesAvailable",
            "message": "free addresses are left to hand out",
        },
    ]


def test_an_exhausted_pool_is_ready_but_not_available_and_says_which_field_grows_it() -> None:
    got = by_type(pool_conditions([], SpecVerdict(1), PoolCounts(2, 2, 0, 0), IP, T0))
    assert got["Ready"]["status"] == "True"
    available = got["Available"]
    assert (available["status"], available["reason"]) == ("False", "PoolExhausted")
    assert "all 2 allocatable addresses are in use" in available["message"]
    assert "status.ipAddresses.free is 0" in available["message"]
    assert "spec.addresses" in available["message"]


def test_prefix_pools_speak_of_sub_prefixes_and_spec_prefixes() -> None:
    got = by_type(pool_conditions([], SpecVerdict(1), PoolCounts(4, 4, 0, 0), PoolFamily.PREFIX, T0))
    assert "sub-prefixes" in got["Ready"]["message"]
    assert "all 4 allocatable sub-prefixes" in got["Available"]["message"]
    assert "spec.prefixes" in got["Available"]["message"]


def test_a_spec_that_leaves_nothing_to_hand_out_is_exhausted_with_total_zero() -> None:
    got = by_type(pool_conditions([], SpecVerdict(1), PoolCounts(0, 0, 0, 0), IP, T0))
    assert got["Available"]["reason"] == "PoolExhausted"
    assert "status.ipAddresses.total is 0" in got["Available"]["message"]


def test_an_unusable_spec_without_state_is_not_ready_and_not_available() -> None:
    problem = (
        'spec.addresses: Invalid value: "10.0.0.300": provided address is not a valid IP, range, nor CIDR'
    )
    got = by_type(pool_conditions([], SpecVerdict(2, problem), None, IP, T0))
    assert got["Ready"] == {
        "type": "Ready",
        "status": "False",
        "observedGeneration": 2,
        "lastTransitionTime": T0,
        "reason": "InvalidSpec",
        "message": problem,
    }
    assert (got["Available"]["status"], got["Available"]["reason"]) == ("False", "PoolNotReady")


def test_an_unusable_update_says_the_last_valid_spec_still_applies_and_keeps_counting() -> None:
    got = by_type(pool_conditions([], SpecVerdict(4, "spec.gateway: bad"), PoolCounts(3, 1, 2, 0), IP, T0))
    assert got["Ready"]["status"] == "False"
    assert (
        got["Ready"]["message"] == "spec.gateway: bad (claims still get addresses from the last valid spec)"
    )
    assert got["Available"]["status"] == "True"


def test_last_transition_time_moves_only_when_the_status_flips() -> None:
    first = pool_conditions([], SpecVerdict(1), PoolCounts(2, 1, 1, 0), IP, T0)
    # A new generation and a new message, same statuses: the times stay.
    same = pool_conditions(first, SpecVerdict(2), PoolCounts(3, 1, 2, 0), IP, T1)
    assert [c["lastTransitionTime"] for c in same] == [T0, T0]
    assert [c["observedGeneration"] for c in same] == [2, 2]
    # Exhausted: Available flips (its time moves), Ready does not.
    full = by_type(pool_conditions(same, SpecVerdict(2), PoolCounts(3, 3, 0, 0), IP, T1))
    assert full["Ready"]["lastTransitionTime"] == T0
    assert (full["Available"]["status"], full["Available"]["lastTransitionTime"]) == ("False", T1)
    # The reason changes (exhausted -> no spec), the status stays False: the time stays.
    broken = by_type(pool_conditions(list(full.values()), SpecVerdict(3, "spec: x"), None, IP, "later"))
    assert (broken["Available"]["reason"], broken["Available"]["lastTransitionTime"]) == ("PoolNotReady", T1)
    assert (broken["Ready"]["status"], broken["Ready"]["lastTransitionTime"]) == ("False", "later")


def test_nothing_changes_when_nothing_changed_so_nothing_is_written() -> None:
    first = pool_conditions([], SpecVerdict(1), PoolCounts(5, 2, 3, 0), IP, T0)
    again = pool_conditions(first, SpecVerdict(1), PoolCounts(5, 3, 2, 0), IP, T1)
    assert again == first  # counts are not in the messages: another claim changes no condition


def test_other_conditions_are_kept_in_place_and_ours_replaced_in_place() -> None:
    theirs = {"type": "example.com/Audited", "status": "True", "reason": "Done", "message": "", "x": 1}
    previous = [
        {"type": "Available", "status": "True", "reason": "AddressesAvailable", "lastTransitionTime": T0},
        theirs,
        {"type": "Ready", "status": "True", "reason": "SpecInUse", "lastTransitionTime": T0},
    ]
    got = pool_conditions(previous, SpecVerdict(1), PoolCounts(1, 0, 1, 0), IP, T1)
    assert [c["type"] for c in got] == ["Available", "example.com/Audited", "Ready"]
    assert got[1] == theirs
    assert [got[0]["lastTransitionTime"], got[2]["lastTransitionTime"]] == [T0, T0]


def test_a_condition_without_a_usable_time_gets_one() -> None:
    previous = [{"type": "Ready", "status": "True", "reason": "SpecInUse"}, "junk"]
    got = by_type(pool_conditions(previous, SpecVerdict(1), PoolCounts(1, 0, 1, 0), IP, T1))  # type: ignore[arg-type]
    assert got["Ready"]["lastTransitionTime"] == T1


# ---- why a spec cannot be used ----------------------------------------------------------------------------


def test_the_message_names_the_field_and_why() -> None:
    spec = IPPoolSpec(addresses=("10.0.0.300",), prefix=24)
    assert unusable_message(spec, "not a valid IP address: '10.0.0.300'") == (
        'spec.addresses: Invalid value: "10.0.0.300": provided address is not a valid IP, range, nor CIDR'
    )


def test_mixed_families_and_a_bad_prefix_pool_are_named_too() -> None:
    mixed = IPPoolSpec(addresses=("10.0.0.1", "fd00::1"), prefix=24)
    assert "spec.addresses" in unusable_message(mixed, "entries are of mixed IP families")
    assert "mixed IP families" in unusable_message(mixed, "entries are of mixed IP families")
    prefix = PrefixPoolSpec(prefixes=("10.0.0.0/8",), allocation_prefix_length=64)
    assert unusable_message(prefix, "x").startswith('spec.prefixes: Invalid value: "10.0.0.0/8"')


def test_a_spec_the_admission_rules_accept_gets_the_core_error_under_spec() -> None:
    spec = IPPoolSpec(addresses=("10.0.0.1",), prefix=24)
    assert unusable_message(spec, "something the core refused") == "spec: something the core refused"


def test_a_decode_error_is_passed_on_as_it_names_the_field() -> None:
    detail = "json: cannot unmarshal string into Go struct field InClusterIPPoolSpec.spec.prefix of type int"
    assert unusable_message(None, detail) == detail


@pytest.mark.parametrize("count", [6, 500])
def test_many_errors_are_summarised_and_the_message_fits_a_condition(count: int) -> None:
    spec = IPPoolSpec(addresses=tuple(f"bad-{i}" for i in range(count)), prefix=24)
    message = unusable_message(spec, "x")
    assert message.count("provided address is not a valid IP") == 5
    assert message.endswith(f"(and {count - 5} more errors)")
    assert len(unusable_message(None, "y" * (MESSAGE_LIMIT + 10))) == MESSAGE_LIMIT
