"""Errors raised by the Kubernetes client, parsed from the apiserver's Status objects.

Callers branch on these (not on HTTP libraries' exceptions): `ApiError` for answers from the apiserver,
`WatchExpired` for a resourceVersion the server no longer has (relist), `TransportError` for no answer at all.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

# Reasons the apiserver puts in Status.reason when no Status body is available (k8s.io/apimachinery).
_REASON_BY_CODE = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    406: "NotAcceptable",
    409: "Conflict",
    410: "Expired",
    413: "RequestEntityTooLarge",
    415: "UnsupportedMediaType",
    422: "Invalid",
    429: "TooManyRequests",
    500: "InternalError",
    503: "ServiceUnavailable",
    504: "Timeout",
}


class KubeError(Exception):
    """Base class of everything the client raises."""


class TransportError(KubeError):
    """No usable HTTP answer: connection refused or reset, TLS failure, client-side timeout."""


class WatchDecodeError(KubeError):
    """A watch stream carried a line that is not a watch event."""


class ApiError(KubeError):
    """The apiserver answered with a failure: HTTP status, Status.reason, Status.message and the raw body."""

    def __init__(self, status: int, reason: str, message: str, body: Mapping[str, Any] | None = None) -> None:
        super().__init__(f"{status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message
        self.body: Mapping[str, Any] = body or {}

    @property
    def details(self) -> Mapping[str, Any]:
        details = self.body.get("details")
        return details if isinstance(details, Mapping) else {}

    @property
    def causes(self) -> list[Mapping[str, Any]]:
        """Field-level causes (422 Invalid carries one per failing field)."""
        causes = self.details.get("causes")
        return list(causes) if isinstance(causes, list) else []

    @property
    def retry_after(self) -> float | None:
        seconds = self.details.get("retryAfterSeconds")
        return float(seconds) if isinstance(seconds, int | float) else None

    @property
    def is_not_found(self) -> bool:
        return self.status == 404

    @property
    def is_conflict(self) -> bool:
        """An optimistic-concurrency conflict (stale resourceVersion), not an AlreadyExists."""
        return self.status == 409 and self.reason != "AlreadyExists"

    @property
    def is_already_exists(self) -> bool:
        return self.status == 409 and self.reason == "AlreadyExists"

    @property
    def is_gone(self) -> bool:
        """410: the resourceVersion (or continue token) has been compacted away; relist."""
        return self.status == 410

    @property
    def is_invalid(self) -> bool:
        return self.status == 422

    @property
    def is_forbidden(self) -> bool:
        return self.status == 403

    @property
    def is_unauthorized(self) -> bool:
        return self.status == 401

    @property
    def is_too_many_requests(self) -> bool:
        return self.status == 429

    @property
    def is_server_error(self) -> bool:
        return self.status >= 500


class WatchExpired(ApiError):
    """A watch or paginated list asked for a resourceVersion the server no longer has (410): relist."""


def error_from_status(status: Mapping[str, Any], http_status: int | None = None) -> ApiError:
    """The ApiError for a Kubernetes Status object (HTTP body or watch ERROR event)."""
    code = status.get("code")
    code = code if isinstance(code, int) and code > 0 else (http_status or 500)
    reason = status.get("reason") or _REASON_BY_CODE.get(code, "Unknown")
    message = status.get("message") or ""
    cls = WatchExpired if code == 410 else ApiError
    return cls(code, str(reason), str(message), status)


def error_from_response(http_status: int, body: bytes) -> ApiError:
    """The ApiError for a failed HTTP response; tolerates bodies that are not a Status (proxies, 503 text)."""
    try:
        parsed = json.loads(body) if body else None
    except ValueError:
        parsed = None
    if isinstance(parsed, Mapping) and parsed.get("kind") == "Status":
        return error_from_status(parsed, http_status)
    text = body.decode("utf-8", "replace").strip()
    reason = _REASON_BY_CODE.get(http_status, "Unknown")
    cls = WatchExpired if http_status == 410 else ApiError
    return cls(http_status, reason, text[:2000] or reason, None)


def _api_error(exc: BaseException | None) -> ApiError | None:
    return exc if isinstance(exc, ApiError) else None


def is_not_found(exc: BaseException | None) -> bool:
    err = _api_error(exc)
    return err is not None and err.is_not_found


def is_conflict(exc: BaseException | None) -> bool:
    err = _api_error(exc)
    return err is not None and err.is_conflict


def is_already_exists(exc: BaseException | None) -> bool:
    err = _api_error(exc)
    return err is not None and err.is_already_exists


def is_gone(exc: BaseException | None) -> bool:
    err = _api_error(exc)
    return err is not None and err.is_gone


def is_invalid(exc: BaseException | None) -> bool:
    err = _api_error(exc)
    return err is not None and err.is_invalid


#: Answers after which a write certainly did not take effect and can never succeed as sent: a malformed or
#: invalid object, a refusal by authorization or an admission webhook, a missing object or an unsupported
#: method or media type. Anything else (timeouts, 409, 429, 5xx) may have landed or may succeed later.
REFUSED_STATUSES = frozenset({400, 403, 404, 405, 415, 422})


def is_refused(exc: BaseException | None) -> bool:
    """Whether retrying the same request unchanged is pointless (see `REFUSED_STATUSES`)."""
    err = _api_error(exc)
    return err is not None and err.status in REFUSED_STATUSES
