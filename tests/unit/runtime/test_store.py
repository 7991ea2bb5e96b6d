"""Store: keyed objects, resourceVersions and secondary indexes kept consistent through updates."""

from __future__ import annotations

import pytest

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
