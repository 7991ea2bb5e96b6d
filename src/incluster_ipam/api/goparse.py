"""Go ``net/netip`` parsing with Go's exact error messages.

Upstream reports an unparsable gateway (or subnet) with the text of Go's parse error, e.g.
``ParseAddr("invalid"): unable to parse IP``. These parsers accept exactly what Go accepts (including IPv6
zones for addresses) and fail with the same message.
"""

from __future__ import annotations

from dataclasses import dataclass

from incluster_ipam.api.gofmt import quote

_GO_MAX_INT = (1 << 63) - 1


class GoParseError(ValueError):
    """A parse failure whose ``str()`` is Go's error text."""


@dataclass(frozen=True)
class GoAddr:
    """A parsed address: family (4 or 6), integer value, and IPv6 zone ("" if none)."""

    version: int
    value: int
    zone: str = ""

    @property
    def bits(self) -> int:
        return 32 if self.version == 4 else 128


@dataclass(frozen=True)
class GoPrefix:
    """A parsed CIDR; ``addr`` keeps any host bits, as Go's ``ParsePrefix`` does."""

    addr: GoAddr
    bits: int

    @property
    def masked_value(self) -> int:
        size = self.addr.bits
        mask = ((1 << size) - 1) ^ ((1 << (size - self.bits)) - 1)
        return self.addr.value & mask

    @property
    def is_masked(self) -> bool:
        return self.masked_value == self.addr.value

    @property
    def last_value(self) -> int:
        return self.masked_value | ((1 << (self.addr.bits - self.bits)) - 1)


def _addr_error(text: str, msg: str, at: str | None = None) -> GoParseError:
    if at is not None and at != "":
        return GoParseError(f"ParseAddr({quote(text)}): {msg} (at {quote(at)})")
    return GoParseError(f"ParseAddr({quote(text)}): {msg}")


def _ipv4_fields(text: str, part: str) -> list[int]:
    fields: list[int] = []
    val = 0
    digits = 0
    for i, ch in enumerate(part):
        if "0" <= ch <= "9":
            if digits == 1 and val == 0:
                raise _addr_error(text, "IPv4 field has octet with leading zero")
            val = val * 10 + ord(ch) - 48
            digits += 1
            if val > 255:
                raise _addr_error(text, "IPv4 field has value >255")
        elif ch == ".":
            if i == 0 or i == len(part) - 1 or part[i - 1] == ".":
                raise _addr_error(text, "IPv4 field must have at least one digit", part[i:])
            if len(fields) == 3:
                raise _addr_error(text, "IPv4 address too long")
            fields.append(val)
            val = 0
            digits = 0
        else:
            raise _addr_error(text, "unexpected character", part[i:])
    if len(fields) < 3:
        raise _addr_error(text, "IPv4 address too short")
    fields.append(val)
    return fields


def _hexval(ch: str) -> int:
    if "0" <= ch <= "9":
        return ord(ch) - 48
    if "a" <= ch <= "f":
        return ord(ch) - 87
    if "A" <= ch <= "F":
        return ord(ch) - 55
    return -1


def _parse_ipv6(text: str) -> GoAddr:
    s = text
    zone = ""
    pct = s.find("%")
    if pct != -1:
        s, zone = s[:pct], s[pct + 1 :]
        if zone == "":
            raise _addr_error(text, "zone must be a non-empty string")
    ip = [0] * 16
    ellipsis = -1
    if len(s) >= 2 and s[0] == ":" and s[1] == ":":
        ellipsis = 0
        s = s[2:]
        if not s:
            return GoAddr(6, 0, zone)
    i = 0
    while i < 16:
        off = 0
        acc = 0
        while off < len(s):
            h = _hexval(s[off])
            if h < 0:
                break
            acc = (acc << 4) + h
            if off > 3:
                raise _addr_error(text, "each colon-separated field must have at most 4 hex digits", s)
            if acc > 0xFFFF:
                raise _addr_error(text, "IPv6 field has value >=2^16", s)
            off += 1
        if off == 0:
            raise _addr_error(text, "each colon-separated field must have at least one digit", s)
        if off < len(s) and s[off] == ".":
            if ellipsis < 0 and i != 12:
                raise _addr_error(
                    text, "embedded IPv4 address must replace the final 2 fields of the address", s
                )
            if i + 4 > 16:
                raise _addr_error(
                    text, "too many hex fields to fit an embedded IPv4 at the end of the address", s
                )
            ip[i : i + 4] = _ipv4_fields(text, s)
            s = ""
            i += 4
            break
        ip[i] = acc >> 8
        ip[i + 1] = acc & 0xFF
        i += 2
        s = s[off:]
        if not s:
            break
        if s[0] != ":":
            raise _addr_error(text, "unexpected character, want colon", s)
        if len(s) == 1:
            raise _addr_error(text, "colon must be followed by more characters", s)
        s = s[1:]
        if s[0] == ":":
            if ellipsis >= 0:
                raise _addr_error(text, "multiple :: in address", s)
            ellipsis = i
            s = s[1:]
            if not s:
                break
    if s:
        raise _addr_error(text, "trailing garbage after address", s)
    if i < 16:
        if ellipsis < 0:
            raise _addr_error(text, "address string too short")
        n = 16 - i
        ip = ip[:ellipsis] + [0] * n + ip[ellipsis:i]
    elif ellipsis >= 0:
        raise _addr_error(text, "the :: must expand to at least one field of zeros")
    return GoAddr(6, int.from_bytes(bytes(ip), "big"), zone)


def parse_addr(text: str) -> GoAddr:
    """Go ``netip.ParseAddr``."""
    for ch in text:
        if ch == ".":
            fields = _ipv4_fields(text, text)
            return GoAddr(4, int.from_bytes(bytes(fields), "big"))
        if ch == ":":
            return _parse_ipv6(text)
        if ch == "%":
            raise _addr_error(text, "missing IPv6 address")
    raise _addr_error(text, "unable to parse IP")


def parse_prefix(text: str) -> GoPrefix:
    """Go ``netip.ParsePrefix``: host bits kept; zones, signs and leading zeros in the length refused."""

    def fail(msg: str) -> GoParseError:
        return GoParseError(f"netip.ParsePrefix({quote(text)}): {msg}")

    slash = text.rfind("/")
    if slash < 0:
        raise fail("no '/'")
    try:
        addr = parse_addr(text[:slash])
    except GoParseError as exc:
        raise fail(str(exc)) from None
    if addr.version == 6 and addr.zone:
        raise fail("IPv6 zones cannot be present in a prefix")
    bits_text = text[slash + 1 :]
    if len(bits_text) > 1 and not ("1" <= bits_text[0] <= "9"):
        raise fail(f"bad bits after slash: {quote(bits_text)}")
    if not bits_text or not all("0" <= c <= "9" for c in bits_text) or int(bits_text) > _GO_MAX_INT:
        raise fail(f"bad bits after slash: {quote(bits_text)}")  # what strconv.Atoi refuses
    bits = int(bits_text)
    if bits > addr.bits:
        raise fail("prefix length out of range")
    return GoPrefix(addr, bits)
