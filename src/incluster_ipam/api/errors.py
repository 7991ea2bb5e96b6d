"""Admission errors as data: field errors and API statuses rendered exactly like Kubernetes does.

A `FieldError` renders like apimachinery's ``field.Error``; `invalid` aggregates them like
``apierrors.NewInvalid`` (HTTP 422, reason Invalid); `bad_request` and `internal_error` mirror
``apierrors.NewBadRequest`` (400) and ``NewInternalError`` (500). `Status.to_dict` is the
``metav1.Status`` that goes into an AdmissionResponse.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from incluster_ipam.api import gofmt
from incluster_ipam.api.constants import GROUP


class ErrorType(enum.Enum):
    """The field error types we produce (value = machine reason, label = human text)."""

    INVALID = ("FieldValueInvalid", "Invalid value")
    REQUIRED = ("FieldValueRequired", "Required value")
    FORBIDDEN = ("FieldValueForbidden", "Forbidden")
    NOT_SUPPORTED = ("FieldValueNotSupported", "Unsupported value")
    TOO_MANY = ("FieldValueTooMany", "Too many")

    @property
    def reason(self) -> str:
        return self.value[0]

    @property
    def label(self) -> str:
        return self.value[1]


@dataclass(frozen=True)
class FieldError:
    """One problem with one field; ``value`` is the offending JSON-like value (str, int, list, None)."""

    type: ErrorType
    field: str
    value: object
    detail: str

    def body(self) -> str:
        """The message without the field path (Kubernetes ``ErrorBody``)."""
        if self.type in (ErrorType.REQUIRED, ErrorType.FORBIDDEN):
            text = self.type.label
        elif isinstance(self.value, str):
            text = f"{self.type.label}: {gofmt.quote(self.value)}"
        else:  # numbers print plainly, lists and null as Go's json.Marshal renders them
            text = f"{self.type.label}: {gofmt.json_value(self.value)}"
        if self.detail:
            text += f": {self.detail}"
        return text

    def __str__(self) -> str:
        return f"{self.field}: {self.body()}"


def invalid_value(path: str, value: object, detail: str) -> FieldError:
    return FieldError(ErrorType.INVALID, path, value, detail)


def too_many(path: str, actual: int, limit: int) -> FieldError:
    """apimachinery's ``field.TooMany``: ``<path>: Too many: <actual>: must have at most <limit> items``."""
    return FieldError(ErrorType.TOO_MANY, path, actual, f"must have at most {limit} items")


def aggregate(errors: list[FieldError]) -> str:
    """``ErrorList.ToAggregate().Error()``: duplicates dropped, several errors in ``[a, b]``."""
    seen: list[str] = []
    for err in errors:
        msg = str(err)
        if msg not in seen:
            seen.append(msg)
    if len(seen) == 1:
        return seen[0]
    return "[" + ", ".join(seen) + "]"


@dataclass(frozen=True)
class Status:
    """A failed ``metav1.Status`` (code, reason, message, optional details)."""

    code: int
    reason: str
    message: str
    kind: str = ""
    name: str = ""
    causes: tuple[FieldError, ...] = field(default=())

    def to_dict(self) -> dict[str, object]:
        status: dict[str, object] = {
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.kind or self.causes:
            details: dict[str, object] = {"group": GROUP, "kind": self.kind}
            if self.name:
                details["name"] = self.name
            if self.causes:
                details["causes"] = [
                    {"reason": c.type.reason, "message": c.body(), "field": c.field} for c in self.causes
                ]
            status["details"] = details
        return status


def invalid(kind: str, name: str, errors: list[FieldError]) -> Status:
    """``apierrors.NewInvalid``: ``<Kind>.ipam.cluster.x-k8s.io "<name>" is invalid: <errors>`` (422)."""
    message = f"{kind}.{GROUP} {gofmt.quote(name)} is invalid"
    if errors:
        message += f": {aggregate(errors)}"
    return Status(422, "Invalid", message, kind=kind, name=name, causes=tuple(errors))


def bad_request(message: str) -> Status:
    """``apierrors.NewBadRequest`` (400)."""
    return Status(400, "BadRequest", message)


def conflict(message: str) -> Status:
    """``apierrors.NewConflict``-like (409): the request is about a different object than the one stored."""
    return Status(409, "Conflict", message)


def service_unavailable(message: str) -> Status:
    """``apierrors.NewServiceUnavailable`` (503)."""
    return Status(503, "ServiceUnavailable", message)


def internal_error(message: str) -> Status:
    """``apierrors.NewInternalError`` (500)."""
    return Status(500, "InternalError", f"Internal error occurred: {message}")
