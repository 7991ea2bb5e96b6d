"""Go-compatible rendering of strings and values, so our messages match upstream's byte for byte.

Kubernetes formats field errors with Go's ``%q`` for strings and ``encoding/json`` for lists; an ``IPRange``
list prints with ``%v``. These helpers reproduce exactly those renderings.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

_LONE_SURROGATE = re.compile("[\ud800-\udfff]")

_QUOTE_ESCAPES = {"\a": r"\a", "\b": r"\b", "\f": r"\f", "\n": r"\n", "\r": r"\r", "\t": r"\t", "\v": r"\v"}
_JSON_ESCAPES = {
    '"': '\\"',
    "\\": "\\\\",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\b": "\\b",
    "\f": "\\f",
    "<": "\\u003c",
    ">": "\\u003e",
    "&": "\\u0026",
    "\u2028": "\\u2028",
    "\u2029": "\\u2029",
}


def sanitize(text: str) -> str:
    """Replace lone UTF-16 surrogates (which Python's JSON decoder keeps) by U+FFFD, as Go's decoder does."""
    return _LONE_SURROGATE.sub("\ufffd", text)


def quote(text: str) -> str:
    """Go ``strconv.Quote``: double-quoted, printable runes literal, everything else escaped."""
    out = ['"']
    for ch in sanitize(text):
        if ch in ('"', "\\"):
            out.append("\\" + ch)
        elif ch.isprintable():
            out.append(ch)
        elif ch in _QUOTE_ESCAPES:
            out.append(_QUOTE_ESCAPES[ch])
        else:
            code = ord(ch)
            if code < 0x20 or code == 0x7F:
                out.append(f"\\x{code:02x}")
            elif code <= 0xFFFF:
                out.append(f"\\u{code:04x}")
            else:
                out.append(f"\\U{code:08x}")
    out.append('"')
    return "".join(out)


def json_string(text: str) -> str:
    """A string as Go's ``encoding/json`` marshals it (HTML-safe escaping, U+2028/9 escaped)."""
    out = ['"']
    for ch in sanitize(text):
        if ch in _JSON_ESCAPES:
            out.append(_JSON_ESCAPES[ch])
        elif ord(ch) < 0x20:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def json_value(value: object) -> str:
    """Go ``json.Marshal`` of a JSON-like value: compact, map keys sorted."""
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str):
        return json_string(value)
    if isinstance(value, Mapping):
        items = sorted((str(k), v) for k, v in value.items())
        return "{" + ",".join(f"{json_string(k)}:{json_value(v)}" for k, v in items) + "}"
    if isinstance(value, Sequence):
        return "[" + ",".join(json_value(v) for v in value) + "]"
    return json_string(str(value))


def list_v(items: Sequence[str]) -> str:
    """Go ``fmt`` ``%v`` of a slice of strings or Stringers: ``[a b c]``."""
    return "[" + " ".join(items) + "]"
