"""Pure watch-stream decoding: bytes in (any chunking), typed events out.

The apiserver streams one JSON object per line: `{"type": ..., "object": ...}`. ERROR events carry a
Status; `raise_for_event` turns them into `ApiError`, and 410 into the distinct `WatchExpired` (relist).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from . import codec
from .errors import WatchDecodeError, error_from_status
from .resources import Obj

ADDED: Final = "ADDED"
MODIFIED: Final = "MODIFIED"
DELETED: Final = "DELETED"
BOOKMARK: Final = "BOOKMARK"
ERROR: Final = "ERROR"
EVENT_TYPES: Final = frozenset({ADDED, MODIFIED, DELETED, BOOKMARK, ERROR})


@dataclass(frozen=True, slots=True)
class WatchEvent:
    """One watch event; `object` is the object (or the Status, for ERROR)."""

    type: str
    object: Obj

    @property
    def resource_version(self) -> str | None:
        rv = self.object.get("metadata", {}).get("resourceVersion")
        return str(rv) if rv else None


def decode_event(line: bytes | str) -> WatchEvent:
    """One line of a watch stream as an event; anything else raises WatchDecodeError."""
    try:
        data = codec.loads(line)
    except ValueError as exc:
        raise WatchDecodeError(f"watch stream line is not JSON: {_excerpt(line)!r}") from exc
    if not isinstance(data, dict):
        raise WatchDecodeError(f"watch stream line is not an object: {_excerpt(line)!r}")
    kind, obj = data.get("type"), data.get("object")
    if kind not in EVENT_TYPES or not isinstance(obj, dict):
        raise WatchDecodeError(f"not a watch event: {_excerpt(line)!r}")
    return WatchEvent(kind, obj)


def raise_for_event(event: WatchEvent) -> WatchEvent:
    """Return the event unless it is an ERROR: then raise its ApiError (WatchExpired for 410 Gone)."""
    if event.type == ERROR:
        raise error_from_status(event.object)
    return event


def _excerpt(line: bytes | str) -> bytes | str:
    return line[:200]


class WatchDecoder:
    """Incremental newline-delimited JSON decoder; feed it chunks as they arrive from the socket."""

    __slots__ = ("_parts",)

    def __init__(self) -> None:
        self._parts: list[bytes] = []

    def feed(self, chunk: bytes) -> list[WatchEvent]:
        """Events completed by this chunk (a line may span chunks; a chunk may hold many lines).

        Parts of an unfinished line are kept in a list and joined once, so a large object arriving in many
        small chunks costs linear time.
        """
        if b"\n" not in chunk:
            if chunk:
                self._parts.append(chunk)
            return []
        if self._parts:
            self._parts.append(chunk)
            data = b"".join(self._parts)
            self._parts.clear()
        else:
            data = chunk
        *lines, rest = data.split(b"\n")
        if rest:
            self._parts.append(rest)
        return [decode_event(line) for line in lines if line.strip()]

    def close(self) -> list[WatchEvent]:
        """Flush at end of stream: a final unterminated line is decoded (the server ends lines with
        newlines, so leftover bytes that are not a whole event raise WatchDecodeError)."""
        rest = b"".join(self._parts)
        self._parts.clear()
        return [decode_event(rest)] if rest.strip() else []

    @property
    def pending(self) -> int:
        """Bytes buffered for an incomplete line."""
        return sum(len(part) for part in self._parts)
