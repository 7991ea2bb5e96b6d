"""The one translation from the API's pool specs (wire types, `api.models`) to the address core's
(`ipam.pool.IPPoolSpec`, `ipam.prefix.PrefixPoolSpec`), and the one way to compile a spec into what
allocation works on. Validation, overlap warnings, the audit and the in-cluster backend all use these."""

from __future__ import annotations

from incluster_ipam.api.models import IPPoolSpec, PrefixPoolSpec
from incluster_ipam.ipam import pool as ip_core
from incluster_ipam.ipam import prefix as prefix_core
from incluster_ipam.ipam.addresses import IPSet


def ip_core_spec(spec: IPPoolSpec) -> ip_core.IPPoolSpec:
    """The address core's view of an IP pool spec (absent lists are empty, an empty gateway is none)."""
    return ip_core.IPPoolSpec(
        addresses=tuple(spec.addresses or ()),
        prefix=spec.prefix,
        gateway=spec.gateway or None,
        allocate_reserved=spec.allocate_reserved,
        excluded=tuple(spec.excluded or ()),
    )


def prefix_core_spec(spec: PrefixPoolSpec) -> prefix_core.PrefixPoolSpec:
    """The address core's view of a prefix pool spec (an unset allocation length is the default)."""
    return prefix_core.PrefixPoolSpec(
        prefixes=tuple(spec.prefixes or ()),
        allocation_prefix_length=prefix_core.effective_allocation_prefix_length(
            spec.allocation_prefix_length
        ),
        gateway=spec.gateway or None,
        excluded=tuple(spec.excluded or ()),
    )


def compile_spec(spec: IPPoolSpec | PrefixPoolSpec) -> IPSet | prefix_core.PrefixPool:
    """What allocation works on: an IP pool's allocatable set, or a prefix pool compiled. Costs time linear
    in the spec's entries. Raises `AddressError` or `ValueError` for a spec allocation cannot work with."""
    if isinstance(spec, IPPoolSpec):
        return ip_core.allocatable_set(ip_core_spec(spec))
    return prefix_core.PrefixPool.from_spec(prefix_core_spec(spec))
