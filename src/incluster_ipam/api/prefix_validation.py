"""Admission rules for IPv6 prefix pools (spec §3.5): defaulting, validation, update checks, /128 warnings."""

from __future__ import annotations

from collections.abc import Iterable

from incluster_ipam.api.errors import FieldError, Status, bad_request, invalid, invalid_value
from incluster_ipam.api.gofmt import list_v
from incluster_ipam.api.limits import entry_limit_errors
from incluster_ipam.api.models import AllocatedAddress, PrefixPoolSpec
from incluster_ipam.api.specs import prefix_core_spec
from incluster_ipam.api.validation import parse_gateway
from incluster_ipam.ipam import addresses as addr
from incluster_ipam.ipam import prefix as core

MSG_PREFIXES_REQUIRED = "prefixes is required"
MSG_LENGTH_RANGE = "allocationPrefixLength must be between 1 and 128"
MSG_NOT_CIDR = "provided entry is not a valid IPv6 CIDR"
MSG_ONLY_V6 = "only IPv6 prefixes are supported"
MSG_NOT_ALIGNED = "CIDR must be network-aligned"
MSG_GATEWAY_V6 = "provided gateway must be IPv6"
MSG_BAD_EXCLUDED = "provided entry is not a valid IP, range, nor CIDR"
MSG_EXCLUDED_V6 = "only IPv6 excluded prefixes are supported"
MSG_IMMUTABLE = "spec.allocationPrefixLength is immutable"
MSG_NON_ALLOCATABLE = "existing allocations become non-allocatable: "
WARN_HOST_LENGTH = (
    "spec.allocationPrefixLength=128 behaves like host-address allocation; "
    "consider InClusterIPPool for single-address semantics"
)
WARN_GATEWAY_ALLOCATABLE = (
    "spec.gateway is within spec.prefixes and is not reserved; "
    "with /128 allocationPrefixLength it may also be allocated to claims"
)


def effective_length(spec: PrefixPoolSpec) -> int:
    """The allocation length in force (0, i.e. unset, means 64)."""
    return core.effective_allocation_prefix_length(spec.allocation_prefix_length)


def default_prefix_pool(spec: PrefixPoolSpec) -> PrefixPoolSpec:
    """The defaulted spec: allocationPrefixLength 0 (unset) becomes 64."""
    length = effective_length(spec)
    if length == spec.allocation_prefix_length:
        return spec
    return PrefixPoolSpec(spec.prefixes, length, spec.gateway, spec.excluded)


def _max_length_message(length: int) -> str:
    return f"CIDR prefix length must be <= allocationPrefixLength ({length})"


def validate_prefix_pool(spec: PrefixPoolSpec) -> list[FieldError]:
    """All field errors of a prefix pool spec, in upstream's order; the first two rules stop at once, and
    so does a list over the entry limit (`incluster_ipam.api.limits`)."""
    limits = entry_limit_errors({"spec.prefixes": spec.prefixes, "spec.excludedPrefixes": spec.excluded})
    if limits:
        return limits
    if not spec.prefixes:
        value: list[str] | None = None if spec.prefixes is None else []
        return [invalid_value("spec.prefixes", value, MSG_PREFIXES_REQUIRED)]
    length = effective_length(spec)
    if not 1 <= length <= 128:
        return [invalid_value("spec.allocationPrefixLength", length, MSG_LENGTH_RANGE)]
    errors: list[FieldError] = []
    for entry in spec.prefixes:
        try:
            block, bits, aligned = addr.parse_cidr(entry)
        except addr.AddressError:
            errors.append(invalid_value("spec.prefixes", entry, MSG_NOT_CIDR))
            continue
        if block.version != 6:
            errors.append(invalid_value("spec.prefixes", entry, MSG_ONLY_V6))
            continue
        if not aligned:
            errors.append(invalid_value("spec.prefixes", entry, MSG_NOT_ALIGNED))
        if bits > length:
            errors.append(invalid_value("spec.prefixes", entry, _max_length_message(length)))
    if spec.gateway:
        gateway = parse_gateway("spec.gateway", spec.gateway, errors)
        if gateway is not None and gateway.version != 6:
            errors.append(invalid_value("spec.gateway", spec.gateway, MSG_GATEWAY_V6))
    for entry in spec.excluded or ():
        try:
            item = addr.parse_entry(entry)
        except addr.AddressError:
            errors.append(invalid_value("spec.excludedPrefixes", entry, MSG_BAD_EXCLUDED))
            continue
        if item.version != 6:
            errors.append(invalid_value("spec.excludedPrefixes", entry, MSG_EXCLUDED_V6))
    return errors


def prefix_pool_status(kind: str, name: str, spec: PrefixPoolSpec) -> Status | None:
    """The 422 Invalid status for an invalid prefix pool spec, None when it is valid."""
    errors = validate_prefix_pool(spec)
    return invalid(kind, name, errors) if errors else None


def _allocatable(pool: core.PrefixPool, allocated: AllocatedAddress) -> bool:
    if allocated.prefix is None:
        return False
    try:
        address = addr.parse_address(allocated.address)
    except addr.AddressError:
        return False
    return pool.is_allocatable(address, allocated.prefix)


def validate_prefix_pool_update(
    kind: str, name: str, old: PrefixPoolSpec, new: PrefixPoolSpec, in_use: Iterable[AllocatedAddress]
) -> Status | None:
    """Update check: 422 for an invalid spec; 400 for a changed length or allocations the new spec orphans
    (only those the old spec still allowed: see `validation.in_use_status`)."""
    status = prefix_pool_status(kind, name, new)
    if status is not None:
        return status
    if effective_length(old) != effective_length(new):
        return bad_request(MSG_IMMUTABLE)
    try:
        pool = core.PrefixPool.from_spec(prefix_core_spec(new))
    except addr.AddressError as exc:  # validated above; kept as a guard, never a crash
        return bad_request(f"pool spec cannot be evaluated: {exc}")
    try:
        before: core.PrefixPool | None = core.PrefixPool.from_spec(prefix_core_spec(old))
    except (addr.AddressError, ValueError):
        before = None
    in_use = [a for a in in_use if before is None or _allocatable(before, a)]
    orphaned = sorted(a.address for a in in_use if not _allocatable(pool, a))
    if orphaned:
        return bad_request(MSG_NON_ALLOCATABLE + list_v(orphaned))
    return None


def prefix_pool_warnings(spec: PrefixPoolSpec) -> list[str]:
    """Advice for a valid spec: /128 allocations act like single addresses and may hand out the gateway."""
    if effective_length(spec) != 128:
        return []
    warnings = [WARN_HOST_LENGTH]
    try:
        pool = core.PrefixPool.from_spec(prefix_core_spec(spec))
    except addr.AddressError:
        return warnings
    if pool.gateway_in_prefixes():
        warnings.append(WARN_GATEWAY_ALLOCATABLE)
    return warnings
