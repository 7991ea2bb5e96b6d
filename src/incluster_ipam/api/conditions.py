"""Pool conditions (`status.conditions`, metav1.Condition): what `Ready` and `Available` say about a pool.

- `Ready`: whether the provider can use the pool's spec. True (`SpecInUse`) with `observedGeneration` the
  generation of the spec in use; False (`InvalidSpec`) with a message naming the field and why. The Cluster
  API IPAM contract asks pools for it; upstream's pools have none.
- `Available`: whether a claim can get an address now. False with `PoolExhausted` when none is free (as the
  claims say), or `PoolNotReady` when no spec could ever be used.

Pure: the status writer renders these from what the backend made of the spec and its counts, and writes
only when something differs. `lastTransitionTime` moves only when a condition's status flips; conditions of
other types (someone else's) are kept where they are.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from incluster_ipam.api.constants import PoolFamily
from incluster_ipam.api.errors import FieldError, aggregate
from incluster_ipam.api.models import IPPoolSpec, PrefixPoolSpec
from incluster_ipam.api.prefix_validation import validate_prefix_pool
from incluster_ipam.api.validation import validate_ip_pool
from incluster_ipam.ipam.pool import PoolCounts

READY = "Ready"
AVAILABLE = "Available"

# Reasons (CamelCase, as metav1.Condition requires).
SPEC_IN_USE = "SpecInUse"
INVALID_SPEC = "InvalidSpec"
ADDRESSES_AVAILABLE = "AddressesAvailable"
POOL_EXHAUSTED = "PoolExhausted"  # the claims' reason for the same state
POOL_NOT_READY = "PoolNotReady"

#: Field errors quoted in a message; a spec with thousands of bad entries is summarised.
SHOWN_ERRORS = 5
#: metav1.Condition's limit on `message`.
MESSAGE_LIMIT = 32768


@dataclass(frozen=True)
class SpecVerdict:
    """What the backend made of a pool's spec at one `metadata.generation`: in use, or why not."""

    generation: int
    problem: str | None = None


@dataclass(frozen=True)
class Wanted:
    """What one condition should say."""

    type: str
    status: bool
    reason: str
    message: str


def unusable_message(spec: IPPoolSpec | PrefixPoolSpec | None, detail: str) -> str:
    """Why a spec cannot be used, naming the field: the admission rules' field errors when they refuse it
    too (webhooks off, or an object older than them), else the address core's own `detail` under `spec`.
    Without a decoded spec, `detail` is the decode error, which names the field already."""
    if spec is None:
        return _capped(detail)
    errors: list[FieldError] = (
        validate_ip_pool(spec) if isinstance(spec, IPPoolSpec) else validate_prefix_pool(spec)
    )
    if not errors:
        return _capped(f"spec: {detail}")
    text = aggregate(errors[:SHOWN_ERRORS])
    if len(errors) > SHOWN_ERRORS:
        text += f" (and {len(errors) - SHOWN_ERRORS} more errors)"
    return _capped(text)


def _capped(text: str) -> str:
    return text if len(text) <= MESSAGE_LIMIT else text[: MESSAGE_LIMIT - 3] + "..."


def _units(family: PoolFamily) -> tuple[str, str]:
    """What the pool hands out, and the spec field that lists it."""
    return ("addresses", "spec.addresses") if family is PoolFamily.IP else ("sub-prefixes", "spec.prefixes")


def wanted(verdict: SpecVerdict, counts: PoolCounts | None, family: PoolFamily) -> list[Wanted]:
    """Ready and Available for a pool: `counts` is None when the pool has no allocation state (no spec of
    it was ever usable); with a `problem` and counts, the last usable spec is still the one in use."""
    unit, field = _units(family)
    if verdict.problem is None:
        ready = Wanted(READY, True, SPEC_IN_USE, f"the spec is valid and {unit} are handed out from it")
    elif counts is None:
        ready = Wanted(READY, False, INVALID_SPEC, verdict.problem)
    else:
        ready = Wanted(
            READY,
            False,
            INVALID_SPEC,
            _capped(f"{verdict.problem} (claims still get {unit} from the last valid spec)"),
        )
    if counts is None:
        available = Wanted(
            AVAILABLE, False, POOL_NOT_READY, f"no {unit} can be handed out until the spec is fixed"
        )
    elif counts.free > 0:
        available = Wanted(AVAILABLE, True, ADDRESSES_AVAILABLE, f"free {unit} are left to hand out")
    elif counts.total == 0:
        available = Wanted(
            AVAILABLE,
            False,
            POOL_EXHAUSTED,
            f"the spec leaves no {unit} to hand out (status.ipAddresses.total is 0): {field}, minus the "
            "excluded and reserved ones and the gateway, is empty",
        )
    else:
        available = Wanted(
            AVAILABLE,
            False,
            POOL_EXHAUSTED,
            f"all {counts.total} allocatable {unit} are in use (status.ipAddresses.free is 0); claims wait "
            f"until one is released or {field} grows",
        )
    return [ready, available]


def condition(want: Wanted, previous: Mapping[str, Any] | None, generation: int, now: str) -> dict[str, Any]:
    """One metav1.Condition; `lastTransitionTime` is kept from `previous` unless the status flips."""
    status = "True" if want.status else "False"
    kept = previous.get("lastTransitionTime") if previous is not None else None
    flipped = previous is None or previous.get("status") != status or not isinstance(kept, str)
    return {
        "type": want.type,
        "status": status,
        "observedGeneration": generation,
        "lastTransitionTime": now if flipped else kept,
        "reason": want.reason,
        "message": want.message,
    }


def set_conditions(
    current: Sequence[Mapping[str, Any]], wants: Sequence[Wanted], generation: int, now: str
) -> list[dict[str, Any]]:
    """`current` with each wanted condition set: replaced in place when its type is there, else appended;
    other types are kept as they are."""
    by_type = {c.get("type"): c for c in current if isinstance(c, Mapping)}
    rendered = {w.type: condition(w, by_type.get(w.type), generation, now) for w in wants}
    out: list[dict[str, Any]] = []
    for item in current:
        if not isinstance(item, Mapping):
            continue
        kind = item.get("type")
        if kind in rendered:
            out.append(rendered.pop(str(kind)))
        elif kind not in {w.type for w in wants}:
            out.append(dict(item))
    out.extend(rendered[w.type] for w in wants if w.type in rendered)
    return out


def pool_conditions(
    current: Sequence[Mapping[str, Any]],
    verdict: SpecVerdict,
    counts: PoolCounts | None,
    family: PoolFamily,
    now: str,
) -> list[dict[str, Any]]:
    """The pool's `status.conditions`: `current` with Ready and Available as the verdict and counts say."""
    return set_conditions(current, wanted(verdict, counts, family), verdict.generation, now)
