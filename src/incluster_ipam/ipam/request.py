"""A requested address (or sub-prefix), and why a pool cannot hand it out.

A claim may ask for one exact address (load-balancer VIPs, control-plane endpoints, machines with fixed
addresses). This module parses what it asks for, in any spelling `ipaddress` accepts, and explains in words
why a pool's spec rules it out. Pure: the allocation book decides whether it is free.
"""

from __future__ import annotations

from dataclasses import dataclass

from incluster_ipam.ipam.addresses import (
    BITS,
    AddressError,
    IPSet,
    format_address,
    parse_address,
)
from incluster_ipam.ipam.pool import IPPoolSpec, inferred_subnet, parse_gateway, reserved_addresses
from incluster_ipam.ipam.prefix import PrefixPool


class RequestError(ValueError):
    """The requested text is not an address (or prefix) at all; the message says why."""


@dataclass(frozen=True, slots=True)
class Requested:
    """An exact address, or a sub-prefix `value/length` (length None: the pool's allocation length)."""

    version: int
    value: int
    length: int | None = None

    def text(self) -> str:
        """Canonical spelling (RFC 5952 for IPv6), with `/length` when one was given."""
        address = format_address(self.version, self.value)
        return address if self.length is None else f"{address}/{self.length}"


def parse_request(text: str) -> Requested:
    """`10.0.0.5`, `fd00::0005`, `fd00:0:0:1::/64`; surrounding blanks ignored. `RequestError` otherwise."""
    stripped = text.strip()
    if not stripped:
        raise RequestError("is empty")
    address_text, slash, length_text = stripped.partition("/")
    try:
        address = parse_address(address_text)
    except AddressError:
        raise RequestError("is not an IP address") from None
    if not slash:
        return Requested(address.version, int(address))
    if not length_text.isdigit() or not 0 <= int(length_text) <= BITS[address.version]:
        raise RequestError(f"has an invalid prefix length {length_text!r}")
    return Requested(address.version, int(address), int(length_text))


def _family_refusal(requested: Requested, version: int) -> str | None:
    if requested.version != version:
        return f"is an IPv{requested.version} address; the pool hands out IPv{version} addresses"
    return None


def ip_refusal(spec: IPPoolSpec, requested: Requested) -> str | None:
    """Why an IP pool with this (valid) spec never hands out `requested`, or None when it may.

    In the order a user checks a pool: family, a prefix length other than the pool's, outside
    `addresses`, excluded, the gateway, a reserved address (network, broadcast, IPv6 subnet-router anycast)
    unless `allocateReservedIPAddresses`.
    """
    addresses = IPSet.from_entries(spec.addresses)
    version = addresses.version
    refusal = _family_refusal(requested, version)
    if refusal is not None:
        return refusal
    if requested.length is not None and requested.length != spec.prefix:
        return f"has prefix length /{requested.length}; the pool's prefix is /{spec.prefix}"
    value = requested.value
    if value not in addresses:
        return "is outside the pool's addresses"
    if value in IPSet.from_entries(spec.excluded, version=version):
        return "is excluded by the pool's excludedAddresses"
    if parse_gateway(spec.gateway, version) == value:
        return "is the pool's gateway"
    subnet = inferred_subnet(addresses, spec.prefix)
    if not spec.allocate_reserved and subnet is not None and value in reserved_addresses(subnet):
        return (
            f"is a reserved address of the subnet {format_address(version, subnet.first)}/{spec.prefix} "
            "(set allocateReservedIPAddresses to hand it out)"
        )
    return None


def prefix_refusal(pool: PrefixPool, requested: Requested) -> str | None:
    """Why a prefix pool never hands out the sub-prefix `requested`, or None when it may."""
    refusal = _family_refusal(requested, 6)
    if refusal is not None:
        return refusal
    length = pool.length if requested.length is None else requested.length
    if length != pool.length:
        return f"has prefix length /{length}; the pool hands out /{pool.length} prefixes"
    shift = 128 - length
    value = requested.value
    if value >> shift << shift != value:
        return f"is not the first address of a /{length} prefix"
    last = value + (1 << shift) - 1
    if not pool.pool.contains_range(value, last):
        return "is outside the pool's prefixes"
    if pool.excluded.overlaps_range(value, last):
        return "overlaps the pool's excludedPrefixes"
    return None
