"""Streaming conversion reviews and the cheap shape checks of admission bodies (finding 1)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from incluster_ipam.webhooks.bodies import (
    MAX_OBJECT_BYTES,
    BodyError,
    ConversionFailed,
    ConversionStream,
    check_shape,
    parse_admission,
)


def review(objects: list[Any], *, desired_first: bool = True) -> bytes:
    request: dict[str, Any] = {"uid": "u-1"}
    if desired_first:
        request["desiredAPIVersion"] = "v2"
    request["objects"] = objects
    if not desired_first:
        request["desiredAPIVersion"] = "v2"
    body = {"apiVersion": "apiextensions.k8s.io/v1", "kind": "ConversionReview", "request": request}
    return json.dumps(body).encode()


def tagged(obj: Any, desired: str) -> Any:
    if not isinstance(obj, dict):
        raise ConversionFailed(f"not an object: {obj!r}")
    return {**obj, "apiVersion": desired}


def feed(body: bytes, chunk: int = 7) -> ConversionStream:
    stream = ConversionStream(tagged)
    for start in range(0, len(body), chunk):
        stream.feed(body[start : start + chunk])
        if stream.failure is not None:
            break
    return stream


def test_objects_are_converted_one_by_one_across_chunks() -> None:
    stream = feed(review([{"n": i, "x": [1.5, None, True]} for i in range(50)]))
    fields = stream.finish()
    assert fields["request.uid"] == "u-1"
    assert fields["apiVersion"] == "apiextensions.k8s.io/v1"
    assert [json.loads(part)["n"] for part in stream.converted] == list(range(50))
    assert json.loads(stream.converted[0]) == {"n": 0, "x": [1.5, None, True], "apiVersion": "v2"}


def test_the_first_failing_object_fails_the_review() -> None:
    stream = feed(review([{"n": 1}, [], {"n": 2}]))
    assert stream.failure == "not an object: []"
    assert stream.converted == []


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        (b"{not json", 400, "not valid JSON"),
        (review([{"n": 1}], desired_first=False), 400, "desiredAPIVersion before its objects"),
        (
            b'{"kind": "ConversionReview", "request": {"uid": "u"}}',
            400,
            "needs desiredAPIVersion and objects",
        ),
        (b"[" + b",".join([b"0"] * 2000) + b"]", 400, "not a ConversionReview"),
    ],
)
def test_bodies_that_are_not_reviews_are_refused(body: bytes, status: int, message: str) -> None:
    with pytest.raises(BodyError) as caught:
        feed(body, 7).finish()
    assert caught.value.status == status
    assert message in str(caught.value)


def test_an_object_over_the_size_limit_ends_the_parse() -> None:
    huge = b'{"apiVersion": "apiextensions.k8s.io/v1", "request": {"uid": "u", "desiredAPIVersion": "v", '
    huge += b'"objects": [{"junk": [' + b"1," * MAX_OBJECT_BYTES + b"1]}]}}"
    with pytest.raises(BodyError) as caught:
        feed(huge, 64 * 1024)
    assert caught.value.status == 413


def test_admission_bodies_are_checked_for_shape_before_parsing() -> None:
    assert parse_admission(b'{"a": [1, 2, {"b": "c"}]}') == {"a": [1, 2, {"b": "c"}]}
    with pytest.raises(BodyError, match="arrays and objects"):
        check_shape(b"[" * 20_001)
    with pytest.raises(BodyError, match="values"):
        check_shape(b"," * 250_001)
    with pytest.raises(BodyError, match="not valid JSON") as caught:
        parse_admission(b'{"a": NaN}')
    assert caught.value.status == 400
