"""ApiError parsing from Kubernetes Status bodies (and from bodies that are not Status objects)."""

from __future__ import annotations

import json

import pytest

from incluster_ipam.kube import (
    ApiError,
    TransportError,
    WatchExpired,
    error_from_response,
    error_from_status,
    is_already_exists,
    is_conflict,
    is_gone,
    is_invalid,
    is_not_found,
)
from incluster_ipam.kube.errors import is_refused


def status(code: int, reason: str, message: str = "msg", **extra: object) -> bytes:
    body = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": code, "reason": reason}
    body.update(message=message, **extra)
    return json.dumps(body).encode()


def test_not_found() -> None:
    err = error_from_response(404, status(404, "NotFound", 'configmaps "a" not found'))
    assert (err.status, err.reason, err.message) == (404, "NotFound", 'configmaps "a" not found')
    assert err.is_not_found
    assert is_not_found(err)
    assert not err.is_conflict
    assert not is_conflict(err)
    assert not is_gone(err)


def test_conflict_and_already_exists_are_told_apart() -> None:
    conflict = error_from_response(409, status(409, "Conflict", "the object has been modified"))
    exists = error_from_response(409, status(409, "AlreadyExists", "already exists"))
    assert is_conflict(conflict)
    assert not is_already_exists(conflict)
    assert is_already_exists(exists)
    assert not is_conflict(exists)


def test_invalid_carries_field_causes() -> None:
    causes = [{"reason": "FieldValueRequired", "field": "spec.poolRef.name", "message": "Required value"}]
    err = error_from_response(422, status(422, "Invalid", "bad", details={"causes": causes}))
    assert is_invalid(err)
    assert err.causes == causes


def test_gone_is_a_watch_expired() -> None:
    err = error_from_response(410, status(410, "Expired", "too old resource version: 1 (5)"))
    assert isinstance(err, WatchExpired)
    assert err.is_gone
    assert is_gone(err)


def test_status_object_from_a_watch_error_event() -> None:
    err = error_from_status({"kind": "Status", "code": 410, "reason": "Gone", "message": "expired"})
    assert isinstance(err, WatchExpired)
    other = error_from_status({"kind": "Status", "code": 500, "reason": "InternalError", "message": "boom"})
    assert type(other) is ApiError
    assert other.is_server_error


def test_body_that_is_not_a_status() -> None:
    err = error_from_response(503, b"service unavailable\n")
    assert (err.status, err.reason, err.message) == (503, "ServiceUnavailable", "service unavailable")
    empty = error_from_response(429, b"")
    assert empty.reason == "TooManyRequests"
    assert empty.is_too_many_requests


def test_retry_after_from_details() -> None:
    err = error_from_response(429, status(429, "TooManyRequests", details={"retryAfterSeconds": 3}))
    assert err.retry_after == 3.0


@pytest.mark.parametrize("exc", [None, ValueError("x"), TransportError("down")])
def test_helpers_are_false_for_anything_else(exc: BaseException | None) -> None:
    assert not any(f(exc) for f in (is_not_found, is_conflict, is_already_exists, is_gone, is_invalid))


@pytest.mark.parametrize(
    ("status", "refused"),
    [
        (400, True),
        (403, True),
        (404, True),
        (405, True),
        (415, True),
        (422, True),
        (409, False),
        (429, False),
        (500, False),
        (503, False),
        (504, False),
    ],
)
def test_refused_answers_are_those_a_retry_cannot_change(status: int, refused: bool) -> None:
    assert is_refused(ApiError(status, "Reason", "message", None)) is refused


def test_a_non_api_error_is_not_a_refusal() -> None:
    assert is_refused(TimeoutError()) is False
    assert is_refused(None) is False
