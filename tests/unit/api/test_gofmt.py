"""Go-compatible rendering and parsing: the texts Kubernetes and Go's net/netip would produce."""

import pytest

from incluster_ipam.api import gofmt, goparse
from incluster_ipam.api.errors import ErrorType, FieldError, aggregate, invalid, invalid_value
from incluster_ipam.ipam import addresses as addr


@pytest.mark.parametrize(
    ("text", "quoted"),
    [
        ("invalid", '"invalid"'),
        ('a"b\\c', '"a\\"b\\\\c"'),
        ("tab\there\n", '"tab\\there\\n"'),
        ("\x00\x7f", '"\\x00\\x7f"'),
        ("é中", '"é中"'),
        ("\u200b", '"\\u200b"'),
        ("\U0001f600", '"\U0001f600"'),
        ("\ud800", '"\ufffd"'),
    ],
)
def test_quote_matches_strconv_quote(text: str, quoted: str) -> None:
    assert gofmt.quote(text) == quoted


@pytest.mark.parametrize(
    ("value", "rendered"),
    [
        (None, "null"),
        ([], "[]"),
        (["10.0.0.1", "fd00::1"], '["10.0.0.1","fd00::1"]'),
        (["<a&b>"], '["\\u003ca\\u0026b\\u003e"]'),
        (["\b\f\x01"], '["\\b\\f\\u0001"]'),
        (24, "24"),
        (True, "true"),
        ({"b": 1, "a": [None]}, '{"a":[null],"b":1}'),
    ],
)
def test_json_value_matches_go_marshal(value: object, rendered: str) -> None:
    assert gofmt.json_value(value) == rendered


def test_field_error_bodies() -> None:
    assert str(invalid_value("spec.gateway", "x", "d")) == 'spec.gateway: Invalid value: "x": d'
    assert str(invalid_value("spec.prefix", 33, "d")) == "spec.prefix: Invalid value: 33: d"
    assert str(invalid_value("spec.addresses", None, "d")) == "spec.addresses: Invalid value: null: d"
    assert str(FieldError(ErrorType.REQUIRED, "spec.x", "", "must")) == "spec.x: Required value: must"


def test_aggregate_brackets_and_deduplicates() -> None:
    one = invalid_value("spec.a", "x", "bad")
    two = invalid_value("spec.b", 1, "worse")
    assert aggregate([one]) == 'spec.a: Invalid value: "x": bad'
    assert aggregate([one, two, one]) == '[spec.a: Invalid value: "x": bad, spec.b: Invalid value: 1: worse]'
    status = invalid("InClusterIPPool", "p", [one, one])
    assert (
        status.message
        == 'InClusterIPPool.ipam.cluster.x-k8s.io "p" is invalid: spec.a: Invalid value: "x": bad'
    )
    assert status.code == 422
    assert status.reason == "Invalid"
    causes = status.to_dict()["details"]["causes"]  # type: ignore[index]
    assert len(causes) == 2  # the causes keep duplicates, only the message drops them


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("invalid", 'ParseAddr("invalid"): unable to parse IP'),
        ("", 'ParseAddr(""): unable to parse IP'),
        ("%eth0", 'ParseAddr("%eth0"): missing IPv6 address'),
        ("1.2.3", 'ParseAddr("1.2.3"): IPv4 address too short'),
        ("1.2.3.4.5", 'ParseAddr("1.2.3.4.5"): IPv4 address too long'),
        ("01.2.3.4", 'ParseAddr("01.2.3.4"): IPv4 field has octet with leading zero'),
        ("256.1.1.1", 'ParseAddr("256.1.1.1"): IPv4 field has value >255'),
        ("1..2.3", 'ParseAddr("1..2.3"): IPv4 field must have at least one digit (at ".2.3")'),
        ("1.2.3.x", 'ParseAddr("1.2.3.x"): unexpected character (at "x")'),
        ("fe80::1%", 'ParseAddr("fe80::1%"): zone must be a non-empty string'),
        ("1:2", 'ParseAddr("1:2"): address string too short'),
        ("1::2::3", 'ParseAddr("1::2::3"): multiple :: in address (at ":3")'),
        (
            "12345::",
            'ParseAddr("12345::"): each colon-separated field must have at most 4 hex digits (at "12345::")',
        ),
        ("1:2:3:4:5:6:7:8:9", 'ParseAddr("1:2:3:4:5:6:7:8:9"): trailing garbage after address (at "9")'),
        (
            "1:2:3:4:5:6:7::8",
            'ParseAddr("1:2:3:4:5:6:7::8"): the :: must expand to at least one field of zeros',
        ),
        ("fd00::g", 'ParseAddr("fd00::g"): each colon-separated field must have at least one digit (at "g")'),
    ],
)
def test_parse_addr_errors_match_go(text: str, message: str) -> None:
    with pytest.raises(goparse.GoParseError) as info:
        goparse.parse_addr(text)
    assert str(info.value) == message


@pytest.mark.parametrize(
    ("text", "version", "value", "zone"),
    [
        ("10.0.0.1", 4, 0x0A000001, ""),
        ("::", 6, 0, ""),
        ("::ffff:1.2.3.4", 6, 0xFFFF01020304, ""),
        ("fe80::1%eth0", 6, (0xFE80 << 112) | 1, "eth0"),
        ("1:2:3:4:5:6:7::", 6, int.from_bytes(bytes.fromhex("00010002000300040005000600070000"), "big"), ""),
    ],
)
def test_parse_addr_values(text: str, version: int, value: int, zone: str) -> None:
    assert goparse.parse_addr(text) == goparse.GoAddr(version, value, zone)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("1.1.1.0", "netip.ParsePrefix(\"1.1.1.0\"): no '/'"),
        ("1.1.1.0/33", 'netip.ParsePrefix("1.1.1.0/33"): prefix length out of range'),
        ("1.1.1.0/024", 'netip.ParsePrefix("1.1.1.0/024"): bad bits after slash: "024"'),
        ("1.1.1.0/+8", 'netip.ParsePrefix("1.1.1.0/+8"): bad bits after slash: "+8"'),
        ("1.1.1.0/", 'netip.ParsePrefix("1.1.1.0/"): bad bits after slash: ""'),
        ("fe80::%eth0/64", 'netip.ParsePrefix("fe80::%eth0/64"): IPv6 zones cannot be present in a prefix'),
        ("x/8", 'netip.ParsePrefix("x/8"): ParseAddr("x"): unable to parse IP'),
    ],
)
def test_parse_prefix_errors_match_go(text: str, message: str) -> None:
    with pytest.raises(goparse.GoParseError) as info:
        goparse.parse_prefix(text)
    assert str(info.value) == message


def test_parse_prefix_keeps_host_bits() -> None:
    prefix = goparse.parse_prefix("1.1.1.7/24")
    assert (prefix.bits, prefix.is_masked) == (24, False)
    assert addr.format_address(4, prefix.masked_value) == "1.1.1.0"
    assert addr.format_address(4, prefix.last_value) == "1.1.1.255"
