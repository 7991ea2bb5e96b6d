"""Kubernetes' time formats: metav1.Time (RFC 3339, seconds) and metav1.MicroTime (microseconds), UTC."""

from __future__ import annotations

import datetime

_TIME = "%Y-%m-%dT%H:%M:%SZ"
_MICRO = "%Y-%m-%dT%H:%M:%S.%fZ"


def now_time() -> str:
    """Now as a metav1.Time string."""
    return datetime.datetime.now(datetime.UTC).strftime(_TIME)


def micro_time(now: datetime.datetime | None = None) -> str:
    """A metav1.MicroTime string (now by default)."""
    return (now or datetime.datetime.now(datetime.UTC)).strftime(_MICRO)


def parse_time(text: str) -> float:
    """POSIX seconds of a metav1.Time or MicroTime string (or any RFC 3339 one); ValueError otherwise."""
    parsed = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=datetime.UTC)
    return parsed.timestamp()
