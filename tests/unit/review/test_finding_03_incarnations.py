"""Finding 3 of the December review, on the pure book: IPAddresses are known by UID, so events of an earlier
incarnation of a name (late, repeated, or replayed after a watch resumes) never free the address a later
incarnation holds. A property test against a brute-force model of the live objects: whatever the
interleaving of our own creates and deletes with lagging watch events, an address handed out is never one
that a live IPAddress holds. (Through the apiserver: tests/integration/review/test_finding_03_same_name.py.)
"""

from __future__ import annotations

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from incluster_ipam.api.constants import IN_CLUSTER_IP_POOL
from incluster_ipam.api.models import IPPoolSpec
from incluster_ipam.backend.book import PoolBook
from incluster_ipam.ipam.addresses import format_address
from incluster_ipam.ipam.allocator import PoolExhausted

KEY = "InClusterIPPool/ns/p"
NAMES = ("a", "b", "c", "d")

Step = tuple[str, int]
steps = st.lists(
    st.tuples(st.sampled_from(["create", "delete", "deliver", "replay"]), st.integers(0, 7)), max_size=120
)


@settings(max_examples=400, deadline=None)
@given(steps)
def test_finding_03_no_interleaving_of_late_events_frees_a_live_address(plan: list[Step]) -> None:
    state, _ = PoolBook().upsert(
        KEY, IN_CLUSTER_IP_POOL, IPPoolSpec(addresses=("10.0.0.1-10.0.0.6",), prefix=24)
    )
    uids = itertools.count()
    live: dict[str, tuple[str, int]] = {}  # uid -> (key, value): the objects that exist
    pending: list[tuple[str, str, str, int]] = []  # watch events not yet delivered, in order
    delivered: list[tuple[str, str, str, int]] = []
    for action, n in plan:
        name = NAMES[n % len(NAMES)]
        key = f"ns/{name}"
        if action == "create" and not any(k == key for k, _ in live.values()):
            try:
                grant = state.reserve(key)
            except PoolExhausted:
                continue
            uid = f"u{next(uids)}"
            state.confirm(key, key, uid)  # from the create's answer, ahead of the watch
            live[uid] = (key, grant.value)
            pending.append(("ADDED", uid, key, grant.value))
        elif action == "delete":
            for uid, (k, value) in list(live.items()):
                if k == key:
                    state.forget(key, uid)  # our own delete succeeded
                    del live[uid]
                    pending.append(("DELETED", uid, key, value))
        elif action == "deliver" and pending:
            event = pending.pop(0)
            delivered.append(event)
            _apply(state, event)
        elif action == "replay" and delivered:
            _apply(state, delivered[n % len(delivered)])  # a relist or resumed watch repeats history
        _check(state, live)
    for event in pending:  # the watch catches up
        _apply(state, event)
    _check(state, live)


def _apply(state: object, event: tuple[str, str, str, int]) -> None:
    kind, uid, key, value = event
    if kind == "ADDED":
        state.observe(key, format_address(4, value), uid)  # type: ignore[attr-defined]
    else:
        state.forget(key, uid)  # type: ignore[attr-defined]


def _check(state: object, live: dict[str, tuple[str, int]]) -> None:
    """Whatever the book hands out next is held by no live object (then the probe is given back)."""
    held = {value for _, value in live.values()}
    granted = []
    try:
        while True:
            grant = state.reserve(f"probe/{len(granted)}")  # type: ignore[attr-defined]
            granted.append(grant)
            assert grant.value not in held, f"{grant.address} handed out while a live IPAddress holds it"
    except PoolExhausted:
        pass
    finally:
        for index in range(len(granted)):
            state.abandon(f"probe/{index}")  # type: ignore[attr-defined]
