"""Upstream's IP-pool webhook scenarios (spec §7), shared by the rule tests and the webhook tests."""

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Scenario:
    name: str
    spec: dict[str, Any]
    error: str = ""  # expected substring of the message; "" for a valid spec
    extra: dict[str, Any] = field(default_factory=dict)


def _v4(addresses: list[str], prefix: int = 24, gateway: str = "10.0.0.1", **rest: Any) -> dict[str, Any]:
    return {"addresses": addresses, "prefix": prefix, "gateway": gateway, **rest}


SUBNET = "provided address belongs to a different subnet than others"
BAD_ENTRY = "provided address is not a valid IP, range, nor CIDR"

INVALID: list[Scenario] = [
    Scenario("addresses must be set", _v4([]), "addresses is required"),
    Scenario(
        "invalid gateway",
        _v4(["10.0.0.25", "10.0.0.26", "10.0.0.27"], gateway="invalid"),
        'spec.gateway: Invalid value: "invalid": ParseAddr("invalid"): unable to parse IP',
    ),
    Scenario("addresses in separate subnets", _v4(["10.0.0.25", "10.0.0.26", "10.0.1.27"]), SUBNET),
    Scenario("invalid address", _v4(["10.0.0.25", "10.0.0.26", "garbage"]), BAD_ENTRY),
    Scenario("negative prefix", _v4(["10.0.0.25", "10.0.0.26"], prefix=-1), "a valid prefix is required"),
    Scenario("invalid prefix", _v4(["10.0.0.25", "10.0.0.26"], prefix=9999), "provided prefix is not valid"),
    Scenario("range out of order", _v4(["10.0.0.10-10.0.0.5"]), BAD_ENTRY),
    Scenario("CIDR with invalid length", _v4(["10.0.0.10/33"]), BAD_ENTRY),
    Scenario("range below prefix", _v4(["10.0.1.0", "10.0.0.10-10.0.0.20"]), SUBNET),
    Scenario("range above prefix", _v4(["10.0.1.0", "10.0.2.10-10.0.2.20"]), SUBNET),
    Scenario("range start below prefix", _v4(["10.0.1.0", "10.0.0.20-10.0.1.20"]), SUBNET),
    Scenario("range end above prefix", _v4(["10.0.1.0", "10.0.1.20-10.0.2.20"]), SUBNET),
    Scenario("CIDR below prefix", _v4(["10.0.1.0", "10.0.0.1/24"]), SUBNET),
    Scenario("CIDR above prefix", _v4(["10.0.1.0", "10.0.2.1/24"]), SUBNET),
    Scenario("CIDR start below prefix", _v4(["10.0.1.0", "10.0.0.0/23"]), SUBNET),
    Scenario("CIDR end above prefix", _v4(["10.0.1.0", "10.0.1.0/23"]), SUBNET),
    Scenario(
        "IPv4 addresses, IPv6 gateway",
        _v4(["10.0.1.0", "10.0.0.2-10.0.0.250"], gateway="fd00::1"),
        "provided gateway and addresses are of mixed IP families",
    ),
    Scenario(
        "IPv6 addresses, IPv4 gateway",
        _v4(["fd00::1", "fd00::100-fd00::200"]),
        "provided gateway and addresses are of mixed IP families",
    ),
    Scenario(
        "mixed address families",
        _v4(["fd00::1", "fd00::100-fd00::200", "10.0.1.0", "10.0.0.2-10.0.0.250"]),
        "provided addresses are of mixed IP families",
    ),
    Scenario(
        "mixed excluded families",
        _v4(["10.0.1.0", "10.0.0.2-10.0.0.250"], excludedAddresses=["fd00::1", "10.0.0.4"]),
        "provided addresses are of mixed IP families",
    ),
    Scenario(
        "addresses and excluded addresses of different families",
        _v4(["10.0.1.0", "10.0.0.2-10.0.0.250"], excludedAddresses=["fd00::1"]),
        "addresses and excluded addresses are of mixed IP families",
    ),
    Scenario(
        "negative reuse grace period",
        _v4(["10.0.0.10-10.0.0.20"], addressReuseGracePeriodSeconds=-1),
        "spec.addressReuseGracePeriodSeconds: Invalid value: -1: "
        "addressReuseGracePeriodSeconds must not be negative",
    ),
]

VALID: list[Scenario] = [
    Scenario(
        "addresses, gateway and prefix",
        {"addresses": ["10.0.0.25", "10.0.0.26", "10.0.0.27"], "gateway": "10.0.0.24", "prefix": 28},
    ),
    Scenario(
        "addresses and prefix, no gateway",
        {"addresses": ["10.0.0.25", "10.0.0.26", "10.0.0.27"], "prefix": 28},
    ),
    Scenario(
        "addresses, prefix and exclusions",
        {
            "addresses": ["10.0.0.25", "10.0.0.26", "10.0.0.27"],
            "prefix": 28,
            "excludedAddresses": ["10.0.0.23", "10.0.0.24"],
        },
    ),
    Scenario(
        "IPv6 with gateway",
        {"addresses": ["fe01::2", "fe01::3-fe01::5", "fe01::1:1/126"], "gateway": "fe01::1", "prefix": 28},
    ),
    Scenario(
        "IPv6 without gateway", {"addresses": ["fe01::2", "fe01::3-fe01::5", "fe01::1:1/126"], "prefix": 28}
    ),
    Scenario(
        "IPv6 with exclusions",
        {
            "addresses": ["fe01::2", "fe01::3-fe01::5", "fe01::1:1/126"],
            "prefix": 28,
            "excludedAddresses": ["fe01::4", "fe01::6-fe01::8", "fe01::1:10/126"],
        },
    ),
    Scenario(
        "reserved addresses, grace period",
        {
            "addresses": ["192.168.0.0/24"],
            "prefix": 24,
            "allocateReservedIPAddresses": True,
            "addressReuseGracePeriodSeconds": 30,
        },
    ),
]
