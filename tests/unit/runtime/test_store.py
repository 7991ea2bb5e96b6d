"""Store: keyed objects, resourceVersions and secondary indexes kept consistent through updates."""

from __future__ import annotations

import json
import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from incluster_ipam.kube import object_key, split_key
from incluster_ipam.kube.resources import Obj
from incluster_ipam.runtime import Store


def by_pool(obj: Obj) -> list[str]:
    pool = obj.get("pool")
    return [pool] if pool else []


def by_tags(obj: Obj) -> list[str]:
    return list(obj.get("tags", []))


def test_upsert_get_delete_and_versions() -> None:
    store = Store()
    assert store.upsert("ns/a", {"v": 1}, "10") is None
    assert store.upsert("ns/a", {"v": 2}, "11") == {"v": 1}
    assert store.get("ns/a") == {"v": 2}
    assert store.version("ns/a") == "11"
    assert "ns/a" in store
    assert len(store) == 1
    assert store.delete("ns/a") == {"v": 2}
    assert store.delete("ns/a") is None
    assert store.version("ns/a") is None
    assert len(store) == 0


def test_indexes_follow_updates_and_deletes() -> None:
    store = Store({"pool": by_pool, "tags": by_tags})
    store.upsert("ns/a", {"pool": "p1", "tags": ["x", "y"]})
    store.upsert("ns/b", {"pool": "p1", "tags": ["y"]})
    store.upsert("ns/c", {"tags": []})
    assert store.index_keys("pool", "p1") == {"ns/a", "ns/b"}
    assert store.index_keys("tags", "y") == {"ns/a", "ns/b"}
    store.upsert("ns/a", {"pool": "p2", "tags": ["x"]})
    assert store.index_keys("pool", "p1") == {"ns/b"}
    assert store.by_index("pool", "p2") == [{"pool": "p2", "tags": ["x"]}]
    assert store.index_keys("tags", "y") == {"ns/b"}
    store.delete("ns/b")
    assert store.index_keys("pool", "p1") == set()
    assert sorted(store.index_values("pool")) == ["p2"]  # empty buckets are removed
    with pytest.raises(KeyError, match="nope"):
        store.index_keys("nope", "x")


def test_index_added_later_files_existing_objects() -> None:
    store = Store()
    store.upsert("a", {"pool": "p1"})
    store.add_indexer("pool", by_pool)
    assert store.index_keys("pool", "p1") == {"a"}
    with pytest.raises(ValueError, match="already exists"):
        store.add_indexer("pool", by_pool)


def test_object_keys() -> None:
    assert object_key({"metadata": {"name": "a", "namespace": "ns"}}) == "ns/a"
    assert object_key({"metadata": {"name": "global"}}) == "global"
    assert split_key("ns/a") == ("ns", "a")
    assert split_key("global") == (None, "global")


def test_reads_are_copies_so_callers_cannot_change_the_cache() -> None:
    store = Store({"pool": by_pool})
    original: Obj = {"pool": "p", "spec": {"address": "10.0.0.1"}, "tags": ["x"]}
    store.upsert("ns/a", original)
    original["spec"]["address"] = "changed by the writer"
    got = store.get("ns/a")
    assert got == {"pool": "p", "spec": {"address": "10.0.0.1"}, "tags": ["x"]}
    assert got is not None
    got["spec"]["address"] = "changed by a reader"
    got["pool"] = "q"
    assert store.get("ns/a") == {"pool": "p", "spec": {"address": "10.0.0.1"}, "tags": ["x"]}
    assert store.index_keys("pool", "p") == {"ns/a"}
    assert store.by_index("pool", "p")[0] is not store.by_index("pool", "p")[0]


def test_objects_round_trip_unicode_nesting_and_numbers() -> None:
    store = Store()
    obj: Obj = {"name": "clé-ü-✓", "n": [0, -1, 2**62, 1.5, None, True, False], "deep": {"a": {"b": [{}]}}}
    store.upsert("k", obj)
    assert store.get("k") == obj
    assert store.items() == [("k", obj)]
    assert store.values() == [obj]


def test_non_json_values_are_refused_at_upsert_and_change_nothing() -> None:
    store = Store({"pool": by_pool})
    with pytest.raises(TypeError):
        store.upsert("k", {"bad": {1, 2}})
    assert "k" not in store
    store.upsert("k", {"pool": "p"})
    with pytest.raises(TypeError):
        store.upsert("k", {"pool": "q", "bad": object()})
    assert store.get("k") == {"pool": "p"}
    assert store.index_keys("pool", "p") == {"k"}


_json = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


@given(
    st.lists(st.tuples(st.sampled_from("abcdef"), st.dictionaries(st.text(max_size=8), _json)), max_size=30)
)
def test_whatever_is_stored_reads_back_exactly_and_the_byte_count_follows(
    writes: list[tuple[str, Obj]],
) -> None:
    # The first object primes the compression of all others: any first object must do.
    store, expected = Store(), {}
    for key, obj in writes:
        store.upsert(key, obj)
        expected[key] = obj
        if len(expected) == 3:
            store.delete(key)
            del expected[key]
    assert dict(store.items()) == expected
    assert (store.stored_bytes == 0) == (not expected)


def test_objects_of_one_kind_are_kept_in_a_fraction_of_their_json() -> None:
    store = Store()
    claims = [
        {
            "apiVersion": "ipam.cluster.x-k8s.io/v1beta2",
            "kind": "IPAddressClaim",
            "metadata": {
                "name": f"claim-{i}",
                "namespace": "ns",
                "uid": str(uuid.uuid4()),
                "resourceVersion": str(i),
            },
            "spec": {
                "poolRef": {"apiGroup": "ipam.cluster.x-k8s.io", "kind": "InClusterIPPool", "name": "pool"}
            },
            "status": {
                "addressRef": {"name": f"claim-{i}"},
                "conditions": [{"type": "Ready", "status": "True"}],
            },
        }
        for i in range(1000)
    ]
    for claim in claims:
        store.upsert(object_key(claim), claim)
    as_json = sum(len(json.dumps(c, separators=(",", ":"))) for c in claims)
    assert store.stored_bytes < as_json / 3
    assert store.get("ns/claim-999") == claims[999]
