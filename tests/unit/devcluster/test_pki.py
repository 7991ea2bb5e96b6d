"""The throwaway PKI issues what kube-apiserver and Go TLS clients require."""

from __future__ import annotations

import ipaddress

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from incluster_ipam.devcluster.pki import CertificateAuthority, service_account_keys


def test_serving_certificate_has_ip_and_dns_sans_signed_by_the_ca() -> None:
    ca = CertificateAuthority()
    pair = ca.serving(("127.0.0.1", "localhost"))
    cert = x509.load_pem_x509_certificate(pair.cert_pem)
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]
    assert sans.get_values_for_type(x509.DNSName) == ["localhost"]
    usage = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.SERVER_AUTH in usage
    ca_cert = x509.load_pem_x509_certificate(ca.cert_pem)
    cert.verify_directly_issued_by(ca_cert)


def test_client_certificate_carries_user_and_groups() -> None:
    ca = CertificateAuthority()
    cert = x509.load_pem_x509_certificate(ca.client("alice", ("system:masters", "devs")).cert_pem)
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "alice"
    orgs = [a.value for a in cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)]
    assert orgs == ["system:masters", "devs"]
    usage = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.CLIENT_AUTH in usage
    assert ExtendedKeyUsageOID.SERVER_AUTH not in usage


def test_service_account_keys_are_a_matching_pem_pair() -> None:
    pair = service_account_keys()
    public = serialization.load_pem_public_key(pair.cert_pem)
    private = serialization.load_pem_private_key(pair.key_pem, password=None)
    assert private.public_key() == public
