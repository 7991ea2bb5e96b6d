"""Reading request bodies on the webhook port, which anyone who can reach it may POST to (finding 1 of the
December review: one 36 MB body took the provider from 60 MB to 950 MB).

- Admission reviews: at most `MAX_ADMISSION_BYTES` (7 MiB, controller-runtime's limit: an object is at
  most 3 MiB, and a review carries two), refused by Content-Length before anything is read, and by a cap
  while reading chunked bodies. Before parsing, a cheap count of JSON containers and values bounds what
  parsing could allocate (a real review has a few hundred containers; a hostile `[[],[],...]` has
  millions), so a body never costs more than a small multiple of its size.
- Conversion reviews (`ConversionStream`) may be large (the apiserver sends a whole list in one review),
  so they are parsed as they arrive, one object at a time (ijson's C backend), converted and serialized at
  once: memory follows the largest object, not the review. An object over `MAX_OBJECT_BYTES` or anything
  but a ConversionReview's own few fields outside `request.objects` ends the parse.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import ijson
import orjson

MIB = 1 << 20
MAX_ADMISSION_BYTES = 7 * MIB
MAX_CONVERSION_BYTES = 64 * MIB
#: kube-apiserver stores objects of up to 1.5 MiB in etcd; a conversion review carries stored objects.
MAX_OBJECT_BYTES = 2 * MIB
#: JSON containers ("[" or "{") and values (","-separated) an admission review may hold. A review of two
#: pools with 50,000 entries each (the entry limit) has about 100,000 values and a few hundred containers.
MAX_CONTAINERS = 20_000
MAX_VALUES = 250_000
#: Parse events a ConversionReview may have outside `request.objects` (its uid, versions, kind...).
MAX_ENVELOPE_EVENTS = 1_000

_OBJECTS = "request.objects.item"


def _fastest_backend() -> Any:
    try:
        return ijson.get_backend("yajl2_c")
    except ImportError:  # no wheel for this platform: the pure-Python backend works the same, slower
        return ijson.get_backend("python")


_backend = _fastest_backend()


class BodyError(ValueError):
    """The body cannot be answered; `status` is the HTTP status to answer with (400 or 413)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def too_large(limit: int) -> BodyError:
    return BodyError(413, f"request body is larger than {limit // MIB} MiB")


def check_shape(body: bytes) -> None:
    """Refuse a body whose JSON would cost far more memory than its size (before any parsing)."""
    containers = body.count(b"[") + body.count(b"{")
    if containers > MAX_CONTAINERS:
        raise BodyError(413, f"request body has more than {MAX_CONTAINERS} JSON arrays and objects")
    if body.count(b",") > MAX_VALUES:
        raise BodyError(413, f"request body has more than {MAX_VALUES} JSON values")


def _reject_constant(name: str) -> Any:
    raise BodyError(400, f"invalid JSON number {name}")


def parse_admission(body: bytes) -> Any:
    """Parse an admission review body (already capped in size) after `check_shape`."""
    check_shape(body)
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BodyError(400, f"request body is not valid JSON: {exc}") from None


class _Tee:
    """Receives ijson's parse events: the review's envelope fields are kept, object events go on to the
    C object builder; anything else (beyond a small budget) ends the parse."""

    def __init__(self, objects: Any) -> None:
        self._objects = objects
        self.fields: dict[str, Any] = {}
        self.envelope_events = 0

    def send(self, event: tuple[str, str, Any]) -> None:
        prefix, kind, value = event
        if prefix.startswith(_OBJECTS):
            self._objects.send(event)
            return
        self.envelope_events += 1
        if self.envelope_events > MAX_ENVELOPE_EVENTS:
            raise BodyError(400, "request body is not a ConversionReview (unexpected fields)")
        if kind in ("string", "number") and prefix in (
            "apiVersion",
            "kind",
            "request.uid",
            "request.desiredAPIVersion",
        ):
            self.fields[prefix] = value
        elif prefix == "request.objects" and kind == "start_array":
            self.fields["objects"] = True


class ConversionStream:
    """Feed a ConversionReview body chunk by chunk; each object is handed to `convert` (which returns the
    converted object) as soon as it is complete, and serialized at once. `finish()` gives the review's
    envelope fields. Raises `BodyError` for bodies that are not ConversionReviews or exceed the caps."""

    def __init__(self, convert: Callable[[Any, str], Any]) -> None:
        self._convert = convert
        self._built: list[Any] = []
        sink = _Sink(self._built)
        self._tee = _Tee(_backend.items_basecoro(sink, _OBJECTS))
        self._parser = _backend.basic_parse_basecoro(_backend.parse_basecoro(self._tee), use_float=True)
        self.converted: list[bytes] = []
        self.failure: str | None = None
        self._size = 0
        self._since_object = 0

    def feed(self, chunk: bytes) -> None:
        self._size += len(chunk)
        if self._size > MAX_CONVERSION_BYTES:
            raise too_large(MAX_CONVERSION_BYTES)
        self._since_object += len(chunk)
        try:
            self._parser.send(chunk)
        except ijson.JSONError as exc:
            raise BodyError(400, f"request body is not valid JSON: {exc}") from None
        if self._built:
            self._since_object = 0
            self._take()
        elif self._since_object > MAX_OBJECT_BYTES:
            raise BodyError(413, f"an object in the review is larger than {MAX_OBJECT_BYTES // MIB} MiB")

    def _take(self) -> None:
        objects, self._built[:] = list(self._built), []
        if self.failure is not None:
            return
        desired = self._tee.fields.get("request.desiredAPIVersion")
        if not isinstance(desired, str):
            raise BodyError(400, "ConversionReview request needs desiredAPIVersion before its objects")
        for obj in objects:
            try:
                self.converted.append(orjson.dumps(self._convert(obj, desired)))
            except ConversionFailed as exc:
                self.failure = str(exc)
                self.converted.clear()
                return

    @property
    def fields(self) -> dict[str, Any]:
        """The envelope fields seen so far (`apiVersion`, `kind`, `request.uid`, ...)."""
        return dict(self._tee.fields)

    def finish(self) -> dict[str, Any]:
        """End of body: the envelope fields (`apiVersion`, `kind`, `request.uid`, ...)."""
        try:
            self._parser.close()
        except ijson.JSONError as exc:
            raise BodyError(400, f"request body is not valid JSON: {exc}") from None
        if self._built:
            self._take()
        if not self._tee.fields.get("objects"):
            raise BodyError(400, "ConversionReview request needs desiredAPIVersion and objects")
        return dict(self._tee.fields)


class ConversionFailed(Exception):
    """`convert` refuses an object: the review fails (the apiserver expects all objects or none)."""


class _Sink:
    def __init__(self, into: list[Any]) -> None:
        self._into = into

    def send(self, value: Any) -> None:
        self._into.append(value)
