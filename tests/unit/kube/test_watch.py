"""Watch stream decoding: arbitrary chunk boundaries, bookmarks, ERROR events and garbage."""

from __future__ import annotations

import itertools
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from incluster_ipam.kube import (
    ApiError,
    WatchDecodeError,
    WatchDecoder,
    WatchEvent,
    WatchExpired,
    decode_event,
)
from incluster_ipam.kube.watch import raise_for_event


def line(event_type: str, obj: dict[str, object]) -> bytes:
    return json.dumps({"type": event_type, "object": obj}).encode() + b"\n"


def cm(name: str, rv: str, payload: str = "") -> dict[str, object]:
    return {"kind": "ConfigMap", "metadata": {"name": name, "resourceVersion": rv}, "data": {"p": payload}}


STREAM = (
    line("ADDED", cm("a", "1"))
    + line("MODIFIED", cm("a", "2", "ü" * 300))
    + line("BOOKMARK", {"kind": "ConfigMap", "metadata": {"resourceVersion": "9"}})
    + line("DELETED", cm("a", "10"))
)


def test_whole_stream_in_one_chunk() -> None:
    events = WatchDecoder().feed(STREAM)
    assert [(e.type, e.resource_version) for e in events] == [
        ("ADDED", "1"),
        ("MODIFIED", "2"),
        ("BOOKMARK", "9"),
        ("DELETED", "10"),
    ]


def test_byte_by_byte() -> None:
    decoder = WatchDecoder()
    events: list[WatchEvent] = []
    for i in range(len(STREAM)):
        events.extend(decoder.feed(STREAM[i : i + 1]))
    assert [e.type for e in events] == ["ADDED", "MODIFIED", "BOOKMARK", "DELETED"]
    assert events[1].object["data"] == {"p": "ü" * 300}  # a multi-byte character split across chunks
    assert decoder.pending == 0


@given(st.lists(st.integers(min_value=0, max_value=len(STREAM)), max_size=20))
def test_any_chunking_gives_the_same_events(cuts: list[int]) -> None:
    bounds = [0, *sorted(cuts), len(STREAM)]
    decoder = WatchDecoder()
    events: list[WatchEvent] = []
    for start, end in itertools.pairwise(bounds):
        events.extend(decoder.feed(STREAM[start:end]))
    events.extend(decoder.close())
    assert events == WatchDecoder().feed(STREAM)


def test_partial_line_is_held_until_completed() -> None:
    decoder = WatchDecoder()
    first = line("ADDED", cm("a", "1"))
    assert decoder.feed(first[:10]) == []
    assert decoder.pending == 10
    assert [e.type for e in decoder.feed(first[10:])] == ["ADDED"]


def test_unterminated_last_line_is_decoded_on_close() -> None:
    decoder = WatchDecoder()
    assert decoder.feed(line("ADDED", cm("a", "1")).rstrip(b"\n")) == []
    assert [e.type for e in decoder.close()] == ["ADDED"]
    assert decoder.close() == []


def test_blank_lines_are_ignored() -> None:
    assert [e.type for e in WatchDecoder().feed(b"\n\r\n" + line("ADDED", cm("a", "1")))] == ["ADDED"]


@pytest.mark.parametrize(
    "garbage",
    [b"<html>502 Bad Gateway</html>", b"[1, 2]", b'{"type": "ADDED"}', b'{"type": "EXPLODED", "object": {}}'],
)
def test_garbage_is_a_clear_error(garbage: bytes) -> None:
    with pytest.raises(WatchDecodeError, match="watch"):
        WatchDecoder().feed(garbage + b"\n")


def test_error_410_raises_watch_expired() -> None:
    status = {"kind": "Status", "status": "Failure", "code": 410, "reason": "Expired", "message": "too old"}
    event = decode_event(line("ERROR", status))
    assert event.type == "ERROR"
    with pytest.raises(WatchExpired) as info:
        raise_for_event(event)
    assert info.value.is_gone
    assert info.value.message == "too old"


def test_other_errors_raise_api_error() -> None:
    event = decode_event(
        line("ERROR", {"kind": "Status", "code": 500, "reason": "InternalError", "message": "x"})
    )
    with pytest.raises(ApiError) as info:
        raise_for_event(event)
    assert not isinstance(info.value, WatchExpired)
    assert info.value.status == 500


def test_ordinary_events_pass_through() -> None:
    event = decode_event(line("ADDED", cm("a", "1")))
    assert raise_for_event(event) is event
