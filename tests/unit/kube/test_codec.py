"""The JSON codec: strict, compact, and results that cost only their own length in memory."""

from __future__ import annotations

import json
import tracemalloc

import pytest

from incluster_ipam.kube import codec


def test_round_trip_is_compact_and_matches_the_stdlib() -> None:
    obj = {"b": [1, 2.5, None, True], "a": {"é": "✓"}, "n": -(2**63)}
    encoded = codec.dumps(obj)
    assert encoded == json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()
    assert codec.loads(encoded) == obj
    assert codec.loads(encoded.decode()) == obj


@pytest.mark.parametrize("text", [b"NaN", b"[Infinity]", b"{'a': 1}", b"{", b""])
def test_malformed_or_non_standard_json_is_a_value_error(text: bytes) -> None:
    with pytest.raises(codec.DecodeError) as caught:
        codec.loads(text)
    assert isinstance(caught.value, ValueError)


def test_non_json_values_are_a_type_error() -> None:
    with pytest.raises(TypeError):
        codec.dumps({"a": object()})
    with pytest.raises(TypeError):
        codec.dumps({1: "non-string key"})


def test_encoded_objects_hold_only_their_own_length() -> None:
    tracemalloc.start()
    try:
        kept = [codec.dumps({"i": i}) for i in range(1000)]
        current, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(kept) == 1000
    assert current < 1000 * 200  # ~50 bytes each; without the copy, 4 KiB each
