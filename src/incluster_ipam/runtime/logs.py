"""Structured logging on the standard `logging` module: key=value text (default) or one JSON object a line.

Context travels in `extra`: `log.info("allocated", extra={"claim": "ns/c1", "ip": "10.0.0.5"})`, or bind it
once with `bind(log, pool="p1")`. Every non-standard LogRecord attribute is printed as context.
"""

from __future__ import annotations

import datetime
import json
import logging
import sys
from collections.abc import Mapping, MutableMapping
from typing import Any, TextIO

# Attributes every LogRecord has; anything else on a record came from `extra` and is context.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


def _context(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in vars(record).items() if k not in _STANDARD and not k.startswith("_")}


def _timestamp(record: logging.LogRecord) -> str:
    moment = datetime.datetime.fromtimestamp(record.created, datetime.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _quote(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    if text == "" or any(c.isspace() or c in '"=' for c in text):
        return json.dumps(text)
    return text


class KeyValueFormatter(logging.Formatter):
    """`2024-01-01T00:00:00.000Z INFO logger: message key=value ...`."""

    def format(self, record: logging.LogRecord) -> str:
        parts = [_timestamp(record), record.levelname, f"{record.name}:", record.getMessage()]
        parts.extend(f"{key}={_quote(value)}" for key, value in _context(record).items())
        text = " ".join(parts)
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return text


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg, context keys, and exc for exceptions."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "ts": _timestamp(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in _context(record).items():
            data.setdefault(key, value)
        if record.exc_info:
            data["exc"] = self.formatException(record.exc_info)
        return json.dumps(data, default=str)


def setup_logging(
    level: int | str = logging.INFO, *, json_format: bool = False, stream: TextIO | None = None
) -> None:
    """Configure the root logger once (replacing handlers) for the chosen format."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if json_format else KeyValueFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper() if isinstance(level, str) else level)
    # aiohttp's access logs and asyncio's debug chatter are noise at INFO.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)


class _Bound(logging.LoggerAdapter[logging.Logger]):
    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, MutableMapping[str, Any]]:
        extra = dict(self.extra or {})
        extra.update(kwargs.get("extra") or {})
        kwargs["extra"] = extra
        return msg, kwargs


def bind(logger: logging.Logger, **context: Any) -> logging.LoggerAdapter[logging.Logger]:
    """A logger that adds `context` to every record (per-call `extra` wins)."""
    bound: Mapping[str, Any] = context
    return _Bound(logger, bound)
