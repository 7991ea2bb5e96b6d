"""Admission rules for IP pools (spec §3.1-3.3, §10.9): pure functions from specs to field errors or statuses.

Messages are upstream's exact strings; the order of checks and which checks stop early follow upstream too,
so a pool gets the same verdict and text here as there. Where we deliberately differ it is said below.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from incluster_ipam.api import goparse
from incluster_ipam.api.constants import DELETE_FOR_MOVE_ANNOTATION, SKIP_VALIDATE_DELETE_ANNOTATION
from incluster_ipam.api.errors import FieldError, Status, bad_request, invalid, invalid_value
from incluster_ipam.api.gofmt import list_v
from incluster_ipam.api.limits import entry_limit_errors
from incluster_ipam.api.models import IPPoolSpec
from incluster_ipam.api.specs import ip_core_spec
from incluster_ipam.ipam import addresses as addr
from incluster_ipam.ipam import pool as core

MSG_ADDRESSES_REQUIRED = "addresses is required"
MSG_PREFIX_REQUIRED = "a valid prefix is required"
MSG_BAD_ENTRY = "provided address is not a valid IP, range, nor CIDR"
MSG_MIXED = "provided addresses are of mixed IP families"
MSG_GATEWAY_MIXED = "provided gateway and addresses are of mixed IP families"
MSG_EXCLUDED_MIXED = "addresses and excluded addresses are of mixed IP families"
MSG_GRACE_NEGATIVE = "addressReuseGracePeriodSeconds must not be negative"
MSG_PREFIX_INVALID = "provided prefix is not valid"
MSG_OTHER_SUBNET = "provided address belongs to a different subnet than others"
#: Our own rule: the address core refuses IPv6 zones everywhere (Go would accept one on a gateway).
MSG_ZONE = "IPv6 zones are not supported in pools"
MSG_IN_USE = "pool addresses do not contain allocated addresses: "
MSG_DELETE_IN_USE = (
    "Pool has IPAddresses allocated. Cannot delete Pool until all IPAddresses have been removed."
)


def _families(path: str, entries: Iterable[str], errors: list[FieldError]) -> set[int]:
    """Families of the parsable entries (of each its first address); an error per unparsable entry."""
    found: set[int] = set()
    for entry in entries:
        try:
            found.add(addr.parse_entry(entry).version)
        except addr.AddressError:
            errors.append(invalid_value(path, entry, MSG_BAD_ENTRY))
    return found


def parse_gateway(path: str, gateway: str, errors: list[FieldError]) -> goparse.GoAddr | None:
    """The gateway parsed like Go's ``netip.ParseAddr`` (error text included); zones refused (ours)."""
    try:
        parsed = goparse.parse_addr(gateway)
    except goparse.GoParseError as exc:
        errors.append(invalid_value(path, gateway, str(exc)))
        return None
    if parsed.zone:
        errors.append(invalid_value(path, gateway, MSG_ZONE))
        return None
    return parsed


def validate_ip_pool(spec: IPPoolSpec) -> list[FieldError]:
    """All field errors of an IP pool spec, in upstream's order (§3.1); empty when valid. A list over the
    entry limit (`incluster_ipam.api.limits`) stops validation there: its cost is what the limit bounds."""
    limits = entry_limit_errors({"spec.addresses": spec.addresses, "spec.excludedAddresses": spec.excluded})
    if limits:
        return limits
    errors: list[FieldError] = []
    entries = spec.addresses or ()
    if not entries:
        errors.append(invalid_value("spec.addresses", _list_value(spec.addresses), MSG_ADDRESSES_REQUIRED))
    if spec.prefix < 0:
        # Upstream reports the addresses list as the value of this prefix error; so do we.
        errors.append(invalid_value("spec.prefix", _list_value(spec.addresses), MSG_PREFIX_REQUIRED))
    families = _families("spec.addresses", entries, errors)
    if len(families) > 1:
        errors.append(invalid_value("spec.addresses", list(entries), MSG_MIXED))
    if spec.gateway:
        gateway = parse_gateway("spec.gateway", spec.gateway, errors)
        if gateway is not None and any(f != gateway.version for f in families):
            errors.append(invalid_value("spec.gateway", spec.gateway, MSG_GATEWAY_MIXED))
    excluded = spec.excluded or ()
    excluded_families = _families("spec.excludedAddresses", excluded, errors)
    if len(excluded_families) > 1:
        errors.append(invalid_value("spec.excludedAddresses", list(excluded), MSG_MIXED))
    if any(f != g for f in families for g in excluded_families):
        errors.append(invalid_value("spec.excludedAddresses", list(excluded), MSG_EXCLUDED_MIXED))
    if spec.reuse_grace_seconds is not None and spec.reuse_grace_seconds < 0:
        errors.append(
            invalid_value("spec.addressReuseGracePeriodSeconds", spec.reuse_grace_seconds, MSG_GRACE_NEGATIVE)
        )
    if not errors:
        errors.extend(_subnet_errors(entries, spec.prefix))
    return errors


def _list_value(entries: tuple[str, ...] | None) -> list[str] | None:
    return None if entries is None else list(entries)


def _subnet_errors(entries: tuple[str, ...], prefix: int) -> list[FieldError]:
    """§3.1 rule 8: every entry inside the subnet inferred from the lowest address and ``prefix``."""
    subnet = core.inferred_subnet(addr.IPSet.from_entries(entries), prefix)
    if subnet is None:
        return [invalid_value("spec.prefix", prefix, MSG_PREFIX_INVALID)]
    return [
        invalid_value("spec.addresses", entry, MSG_OTHER_SUBNET)
        for entry in entries
        if not subnet.covers(addr.parse_entry(entry))
    ]


def ip_pool_status(kind: str, name: str, spec: IPPoolSpec) -> Status | None:
    """The 422 Invalid status for an invalid IP pool spec, None when it is valid."""
    errors = validate_ip_pool(spec)
    return invalid(kind, name, errors) if errors else None


def _range_text(version: int, first: int, last: int) -> str:
    # netipx prints every range as "from-to", even a single address.
    return f"{addr.format_address(version, first)}-{addr.format_address(version, last)}"


def addresses_outside(allocatable: addr.IPSet, in_use: Iterable[str]) -> list[str]:
    """In-use addresses outside ``allocatable`` as merged ranges, IPv4 first; unparsable ones are ignored."""
    values: dict[int, list[int]] = {4: [], 6: []}
    for text in in_use:
        try:
            parsed = goparse.parse_addr(text)
        except goparse.GoParseError:
            continue
        values[parsed.version].append(parsed.value)
    out: list[str] = []
    for version in (4, 6):
        used = addr.IPSet.from_addresses(version, values[version])
        if version == allocatable.version:
            used = used - allocatable
        out.extend(_range_text(version, first, last) for first, last in used.intervals())
    return out


def validate_ip_pool_update(
    kind: str, name: str, new: IPPoolSpec, in_use: Iterable[str], old: IPPoolSpec | None = None
) -> Status | None:
    """Update check (§3.1, §3.2): 422 for an invalid spec, 400 when in-use addresses fall out of the pool."""
    status = ip_pool_status(kind, name, new)
    if status is not None:
        return status
    return in_use_status(new, in_use, old)


def in_use_status(new: IPPoolSpec, in_use: Iterable[str], old: IPPoolSpec | None = None) -> Status | None:
    """In-use protection for a valid new spec: 400 when in-use addresses fall out of the pool.

    Only addresses the update *newly* strands count: one that the old spec did not contain either (planted
    by hand, or left behind by a forced edit) is already outside, and must not lock the pool for every
    later edit (finding 12 of the December review). Upstream counts it."""
    try:
        allocatable = core.allocatable_set(ip_core_spec(new))
    except addr.AddressError as exc:  # validated by the caller; kept as a guard, never a crash
        return bad_request(f"pool spec cannot be evaluated: {exc}")
    addresses = list(in_use)
    if old is not None:
        try:
            before = core.allocatable_set(ip_core_spec(old))
        except addr.AddressError:
            before = None
        if before is not None:
            addresses = [a for a in addresses if _inside(before, a)]
    outside = addresses_outside(allocatable, addresses)
    if outside:
        return bad_request(MSG_IN_USE + list_v(outside))
    return None


def _inside(allocatable: addr.IPSet, text: str) -> bool:
    try:
        parsed = goparse.parse_addr(text)
    except goparse.GoParseError:
        return False
    return parsed.version == allocatable.version and parsed.value in allocatable


def delete_validation_skipped(annotations: Mapping[str, str]) -> bool:
    """Whether the pool opts out of delete protection (§3.3 and §10.9: both move annotations count)."""
    return SKIP_VALIDATE_DELETE_ANNOTATION in annotations or DELETE_FOR_MOVE_ANNOTATION in annotations


def validate_pool_delete(annotations: Mapping[str, str], allocated: int) -> Status | None:
    """Delete check for every pool kind: refused (400) while IPAddresses reference the pool."""
    if delete_validation_skipped(annotations) or allocated == 0:
        return None
    return bad_request(MSG_DELETE_IN_USE)
