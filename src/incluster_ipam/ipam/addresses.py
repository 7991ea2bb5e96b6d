"""Addresses, pool entries and immutable address sets.

Addresses are plain ints inside one family (version 4 or 6); the `ipaddress` objects appear only at the
edges (parsing, formatting). Parsing follows Go's `net/netip`, which the upstream provider uses, so that
a pool accepted here is accepted there and vice versa:

- no spaces, no IPv4 leading zeros ("010.0.0.1" is rejected), IPv4-mapped IPv6 ("::ffff:1.2.3.4") is IPv6;
- IPv6 zones ("fe80::1%eth0") are rejected: a zone names a link on one host and means nothing in a pool
  (Go accepts a zone on a single address, but never in a prefix; we reject it everywhere);
- a pool entry is an inclusive range "a-b", a CIDR "a/n" whose host bits are masked away, or one address.
"""

import bisect
import ipaddress
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from incluster_ipam.ipam import _intervals

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
AddressLike = int | ipaddress.IPv4Address | ipaddress.IPv6Address

BITS = {4: 32, 6: 128}
MAX_VALUE = {4: (1 << 32) - 1, 6: (1 << 128) - 1}

_ADDRESS_CHARS = frozenset("0123456789abcdefABCDEF.:")


class AddressError(ValueError):
    """An address, range or CIDR that cannot be used; `entry` is the offending text as given."""

    def __init__(self, entry: str, reason: str) -> None:
        super().__init__(f"{reason}: {entry!r}")
        self.entry = entry
        self.reason = reason


class MixedFamilyError(AddressError):
    """IPv4 and IPv6 met where one family is required; `entry` is the first entry of the other family."""


def _text(value: object) -> str:
    """The input as text, for error messages about inputs that are not even strings."""
    return value if isinstance(value, str) else repr(value)


def parse_address(text: str) -> Address:
    """Parse one address as strictly as Go's `netip.ParseAddr` (minus zones); raise `AddressError`."""
    if not isinstance(text, str):
        raise AddressError(_text(text), "not a string")
    if not text or not _ADDRESS_CHARS.issuperset(text):
        raise AddressError(text, "not a valid IP address")
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        raise AddressError(text, "not a valid IP address") from None


def address_value(text: str) -> tuple[int, int]:
    """`(version, value)` of an address: `parse_address` without building an address object.

    Dotted-quad IPv4 (what nearly every IPAddress holds) is read directly; anything else, including every
    malformed input, goes through `parse_address`, so the rules and errors are the same. Rebuilding the
    book over 20,000 IPAddresses spent a tenth of its start-up CPU in `ipaddress`.
    """
    if isinstance(text, str) and len(text) <= 15 and text.count(".") == 3 and text.isascii():
        value = 0
        for octet in text.split("."):
            if not octet.isdigit() or len(octet) > 3 or (len(octet) > 1 and octet[0] == "0"):
                break
            number = int(octet)
            if number > 255:
                break
            value = (value << 8) | number
        else:
            return 4, value
    parsed = parse_address(text)
    return parsed.version, int(parsed)


def check_version(version: object) -> int:
    """Return `version` if it is 4 or 6, else raise `ValueError`."""
    if isinstance(version, int) and not isinstance(version, bool) and version in (4, 6):
        return version
    raise ValueError(f"IP version must be 4 or 6, not {version!r}")


def to_int(version: int, address: AddressLike) -> int:
    """The integer value of `address` in `version`'s space.

    An int must lie in the family's range (else `ValueError`); an address object must be of that family
    (else `MixedFamilyError`).
    """
    if isinstance(address, ipaddress.IPv4Address | ipaddress.IPv6Address):
        if address.version != version:
            raise MixedFamilyError(str(address), f"not an IPv{version} address")
        return int(address)
    if not isinstance(address, int) or not 0 <= address <= MAX_VALUE[version]:
        raise ValueError(f"{address!r} is not an IPv{version} address value")
    return address


def format_address(version: int, value: int) -> str:
    """Text form of an address as Go prints it (RFC 5952; IPv4-mapped IPv6 as "::ffff:a.b.c.d")."""
    if version == 4:
        return str(ipaddress.IPv4Address(value))
    if value >> 32 == 0xFFFF:
        return "::ffff:" + str(ipaddress.IPv4Address(value & MAX_VALUE[4]))
    return str(ipaddress.IPv6Address(value))


def _from_int(version: int, value: int) -> Address:
    return ipaddress.IPv4Address(value) if version == 4 else ipaddress.IPv6Address(value)


@dataclass(frozen=True, slots=True, order=True)
class AddressRange:
    """An inclusive range `first..last` of addresses of one family, as integers."""

    version: int
    first: int
    last: int

    def __post_init__(self) -> None:
        check_version(self.version)
        if not 0 <= self.first <= self.last <= MAX_VALUE[self.version]:
            raise ValueError(f"invalid IPv{self.version} range {self.first}..{self.last}")

    @classmethod
    def from_cidr(cls, version: int, network: int, prefix_length: int) -> "AddressRange":
        """The block `network/prefix_length`, host bits of `network` masked away."""
        host = BITS[version] - prefix_length
        first = network >> host << host
        return cls(version, first, first + (1 << host) - 1)

    @property
    def size(self) -> int:
        """Number of addresses (exact, may exceed 2**64)."""
        return self.last - self.first + 1

    @property
    def first_address(self) -> Address:
        return _from_int(self.version, self.first)

    @property
    def last_address(self) -> Address:
        return _from_int(self.version, self.last)

    def __contains__(self, address: object) -> bool:
        if isinstance(address, ipaddress.IPv4Address | ipaddress.IPv6Address):
            return address.version == self.version and self.first <= int(address) <= self.last
        return isinstance(address, int) and self.first <= address <= self.last

    def covers(self, other: "AddressRange") -> bool:
        """Whether every address of `other` lies in this range."""
        return other.version == self.version and self.first <= other.first and other.last <= self.last

    def __str__(self) -> str:
        first = format_address(self.version, self.first)
        if self.first == self.last:
            return first
        return f"{first}-{format_address(self.version, self.last)}"


def _parse_prefix_length(entry: str, text: str, version: int) -> int:
    # Go's ParsePrefix: decimal digits only, no sign, no leading zero, at most the family's bit count.
    if not text or not text.isascii() or not text.isdigit() or (len(text) > 1 and text[0] == "0"):
        raise AddressError(entry, "not a valid prefix length")
    length = int(text)
    if length > BITS[version]:
        raise AddressError(entry, f"prefix length exceeds {BITS[version]} bits")
    return length


def parse_cidr(text: str) -> tuple[AddressRange, int, bool]:
    """Parse "address/length": the masked block, its length, and whether the address was aligned."""
    if not isinstance(text, str):
        raise AddressError(_text(text), "not a string")
    if "/" not in text:
        raise AddressError(text, "not a CIDR")
    address_text, length_text = text.split("/", 1)
    try:
        address = parse_address(address_text)
    except AddressError:
        raise AddressError(text, "not a valid CIDR") from None
    length = _parse_prefix_length(text, length_text, address.version)
    block = AddressRange.from_cidr(address.version, int(address), length)
    return block, length, block.first == int(address)


def parse_entry(text: str) -> AddressRange:
    """Parse one pool entry: "a-b" (inclusive range), "a/n" (CIDR, host bits masked) or "a"."""
    if not isinstance(text, str):
        raise AddressError(_text(text), "not a string")
    if "-" in text:
        first_text, last_text = text.split("-", 1)
        try:
            first, last = parse_address(first_text), parse_address(last_text)
        except AddressError:
            raise AddressError(text, "not a valid IP range") from None
        if first.version != last.version:
            raise AddressError(text, "range ends are of different IP families")
        if int(first) > int(last):
            raise AddressError(text, "range start is above range end")
        return AddressRange(first.version, int(first), int(last))
    if "/" in text:
        return parse_cidr(text)[0]
    address = parse_address(text)
    return AddressRange(address.version, int(address), int(address))


class IPSet:
    """An immutable set of addresses of one family.

    Stored as sorted, disjoint, non-adjacent inclusive integer intervals in two parallel tuples, so
    membership and range queries are a bisect (O(log n) in the number of intervals) and the set algebra is
    a linear merge, however many addresses the intervals span. There is deliberately no `__len__` (a count
    may exceed `sys.maxsize`; use `count()`) and no `__iter__` (a /64 has 2**64 addresses).
    """

    __slots__ = ("_count", "_ends", "_hash", "_starts", "_version")

    _version: int
    _starts: tuple[int, ...]
    _ends: tuple[int, ...]
    _count: int | None
    _hash: int | None

    def __init__(self, version: int, ranges: Iterable[AddressRange | tuple[int, int]] = ()) -> None:
        """Same as `IPSet.from_ranges(version, ranges)`."""
        version = check_version(version)
        pairs: list[tuple[int, int]] = []
        limit = MAX_VALUE[version]
        for item in ranges:
            if isinstance(item, AddressRange):
                if item.version != version:
                    raise MixedFamilyError(str(item), f"not an IPv{version} range")
                pairs.append((item.first, item.last))
                continue
            first, last = item
            if not (isinstance(first, int) and isinstance(last, int) and 0 <= first <= last <= limit):
                raise ValueError(f"invalid IPv{version} interval {item!r}")
            pairs.append((first, last))
        self._init(version, _intervals.normalize(pairs))

    def _init(self, version: int, pairs: list[tuple[int, int]]) -> None:
        self._version = version
        self._starts = tuple(p[0] for p in pairs)
        self._ends = tuple(p[1] for p in pairs)
        self._count = None
        self._hash = None

    @classmethod
    def _normalized(cls, version: int, pairs: list[tuple[int, int]]) -> "IPSet":
        """Build from pairs already in normal form (internal: skips the sort)."""
        new = cls.__new__(cls)
        new._init(version, pairs)
        return new

    # -- constructors ------------------------------------------------------------------------------

    @classmethod
    def empty(cls, version: int) -> "IPSet":
        return cls._normalized(check_version(version), [])

    @classmethod
    def from_ranges(cls, version: int, ranges: Iterable[AddressRange | tuple[int, int]]) -> "IPSet":
        """Set of the given `AddressRange`s or inclusive `(first, last)` int pairs; overlaps merge."""
        return cls(version, ranges)

    @classmethod
    def from_addresses(cls, version: int, addresses: Iterable[AddressLike]) -> "IPSet":
        """Set of single addresses (ints in `version`'s space or address objects of that family)."""
        values = sorted({to_int(version, a) for a in addresses})
        return cls._normalized(version, _intervals.from_sorted_points(values))

    @classmethod
    def from_entries(cls, entries: Iterable[str], version: int | None = None) -> "IPSet":
        """Union of pool entries (see `parse_entry`).

        Every entry is parsed first, so a malformed entry is reported (as `AddressError`) before any family
        mix; then all entries must share one family, which must equal `version` when that is given (else
        `MixedFamilyError`, naming the first entry of the other family). With no entries the family is
        unknown: pass `version`, or get an `AddressError` (entry "").
        """
        if isinstance(entries, str | bytes) or not isinstance(entries, Iterable):
            raise AddressError(_text(entries), "expected a list of entries")
        parsed = [(entry, parse_entry(entry)) for entry in entries]
        if version is None:
            if not parsed:
                raise AddressError("", "no entries, so no IP family")
            version = parsed[0][1].version
        version = check_version(version)
        for entry, item in parsed:
            if item.version != version:
                raise MixedFamilyError(entry, "entries are of mixed IP families")
        return cls(version, (item for _, item in parsed))

    # -- queries -----------------------------------------------------------------------------------

    @property
    def version(self) -> int:
        return self._version

    @property
    def is_empty(self) -> bool:
        return not self._starts

    def __bool__(self) -> bool:
        return bool(self._starts)

    def count(self) -> int:
        """Exact number of addresses (a Python int: 2**128 fits)."""
        if self._count is None:
            self._count = _intervals.count(zip(self._starts, self._ends, strict=True))
        return self._count

    def lowest(self) -> int | None:
        return self._starts[0] if self._starts else None

    def highest(self) -> int | None:
        return self._ends[-1] if self._ends else None

    def intervals(self) -> tuple[tuple[int, int], ...]:
        """The normal form: sorted inclusive `(first, last)` int pairs."""
        return tuple(zip(self._starts, self._ends, strict=True))

    def interval_count(self) -> int:
        """Number of maximal intervals (the size of the representation, not of the set)."""
        return len(self._starts)

    def ranges(self) -> tuple[AddressRange, ...]:
        return tuple(AddressRange(self._version, s, e) for s, e in zip(self._starts, self._ends, strict=True))

    def cidrs(self) -> tuple[tuple[int, int], ...]:
        """Minimal cover by aligned blocks, as `(network, prefix_length)` sorted by address."""
        bits = BITS[self._version]
        out: list[tuple[int, int]] = []
        for s, e in zip(self._starts, self._ends, strict=True):
            out.extend(_intervals.cidr_blocks(s, e, bits))
        return tuple(out)

    def __contains__(self, address: object) -> bool:
        """Whether an int (in this family's space) or an address object is in the set.

        An address object of the other family is never contained; anything else (text included, a
        likely mistake) raises `TypeError`.
        """
        if isinstance(address, ipaddress.IPv4Address | ipaddress.IPv6Address):
            if address.version != self._version:
                return False
            value = int(address)
        elif isinstance(address, int):
            value = address
        else:
            raise TypeError(f"expected an int or an IP address object, not {type(address).__name__}")
        i = bisect.bisect_right(self._starts, value) - 1
        return i >= 0 and value <= self._ends[i]

    def contains_range(self, first: int, last: int) -> bool:
        """Whether every address of `first..last` is in the set."""
        i = bisect.bisect_right(self._starts, first) - 1
        return i >= 0 and last <= self._ends[i]

    def overlaps_range(self, first: int, last: int) -> bool:
        """Whether any address of `first..last` is in the set."""
        i = bisect.bisect_right(self._starts, last) - 1
        return i >= 0 and self._ends[i] >= first

    def overlaps(self, other: "IPSet") -> bool:
        """Whether the sets share an address (always False across families)."""
        if other._version != self._version:
            return False
        small, large = (self, other) if len(self._starts) <= len(other._starts) else (other, self)
        return any(large.overlaps_range(s, e) for s, e in zip(small._starts, small._ends, strict=True))

    # -- algebra -----------------------------------------------------------------------------------

    def _same_family(self, other: "IPSet") -> None:
        if other._version != self._version:
            raise MixedFamilyError(f"IPv{other._version} set", f"not combinable with IPv{self._version}")

    def union(self, other: "IPSet") -> "IPSet":
        self._same_family(other)
        return IPSet._normalized(self._version, _intervals.union(self.intervals(), other.intervals()))

    def intersection(self, other: "IPSet") -> "IPSet":
        self._same_family(other)
        return IPSet._normalized(self._version, _intervals.intersection(self.intervals(), other.intervals()))

    def difference(self, other: "IPSet") -> "IPSet":
        self._same_family(other)
        return IPSet._normalized(self._version, _intervals.difference(self.intervals(), other.intervals()))

    __or__ = union
    __and__ = intersection
    __sub__ = difference

    # -- identity and display ----------------------------------------------------------------------

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, IPSet):
            return NotImplemented
        return (self._version, self._starts, self._ends) == (other._version, other._starts, other._ends)

    def __hash__(self) -> int:
        if self._hash is None:
            self._hash = hash((self._version, self._starts, self._ends))
        return self._hash

    def _range_strings(self) -> Iterator[str]:
        return (str(r) for r in self.ranges())

    def __str__(self) -> str:
        """Ranges joined by ", " ("10.0.0.1, 10.0.0.5-10.0.0.9"); "" for the empty set."""
        return ", ".join(self._range_strings())

    def __repr__(self) -> str:
        return f"IPSet.from_entries({list(self._range_strings())!r}, version={self._version})"


def overlap(a: IPSet, b: IPSet) -> IPSet:
    """Addresses two sets share (§10.10 overlap warnings); empty, in `a`'s family, across families."""
    if a.version != b.version:
        return IPSet.empty(a.version)
    return a.intersection(b)
