"""ConversionReview handling (``/convert``): v1alpha1 <-> v1alpha2 through `incluster_ipam.api.conversion`."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from incluster_ipam.api.conversion import ConversionError, convert

log = logging.getLogger(__name__)

CONVERSION_REVIEW_VERSION = "apiextensions.k8s.io/v1"


class ConversionReviewError(ValueError):
    """The body is not a ConversionReview we can answer (answered with HTTP 400)."""


def handle_conversion_review(body: object) -> dict[str, Any]:
    """Answer a ConversionReview; a failing object fails the whole review (as the API server expects)."""
    if not isinstance(body, Mapping):
        raise ConversionReviewError("request body is not a JSON object")
    if body.get("apiVersion") != CONVERSION_REVIEW_VERSION or body.get("kind") != "ConversionReview":
        raise ConversionReviewError(f"expected a ConversionReview of {CONVERSION_REVIEW_VERSION}")
    request = body.get("request")
    if not isinstance(request, Mapping):
        raise ConversionReviewError("ConversionReview has no request")
    uid, desired, objects = request.get("uid"), request.get("desiredAPIVersion"), request.get("objects")
    if not isinstance(uid, str) or not uid:
        raise ConversionReviewError("ConversionReview request has no uid")
    if not isinstance(desired, str) or not isinstance(objects, list):
        raise ConversionReviewError("ConversionReview request needs desiredAPIVersion and objects")
    response: dict[str, Any] = {"uid": uid}
    try:
        response["convertedObjects"] = [convert(obj, desired) for obj in objects]
        response["result"] = {"metadata": {}, "status": "Success"}
    except ConversionError as exc:
        response["convertedObjects"] = []
        response["result"] = {"metadata": {}, "status": "Failure", "message": str(exc)}
    except Exception as exc:  # a bug must fail the review cleanly
        log.exception("conversion review %s failed", uid)
        response["convertedObjects"] = []
        response["result"] = {"metadata": {}, "status": "Failure", "message": f"{type(exc).__name__}: {exc}"}
    return {"apiVersion": CONVERSION_REVIEW_VERSION, "kind": "ConversionReview", "response": response}
