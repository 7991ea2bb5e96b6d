"""The TLS settings shared by the provider's servers (`serving.tls`)."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest

from incluster_ipam.serving.tls import ServingTLS, cipher_list, server_context
from tests.unit.packaging.certs import serving_pair, write_pair


def test_cipher_suites_by_go_name() -> None:
    assert cipher_list(None).split(":") == [
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        "ECDHE-RSA-AES128-GCM-SHA256",
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        "ECDHE-RSA-AES256-GCM-SHA384",
        "ECDHE-ECDSA-CHACHA20-POLY1305",
        "ECDHE-RSA-CHACHA20-POLY1305",
    ]
    chosen = cipher_list(["TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384", "TLS_AES_128_GCM_SHA256"])
    assert chosen == "ECDHE-RSA-AES256-GCM-SHA384"
    with pytest.raises(ValueError, match="TLS_RSA_WITH_AES_128_CBC_SHA"):
        cipher_list(["TLS_RSA_WITH_AES_128_CBC_SHA"])


def test_server_contexts_refuse_old_tls_and_reload_whole_pairs(tmp_path: Path) -> None:
    first, second = serving_pair(), serving_pair()
    write_pair(tmp_path, first)
    with pytest.raises(ValueError, match=r"1\.2"):
        server_context(tmp_path / "tls.crt", tmp_path / "tls.key", ssl.TLSVersion.TLSv1_1)
    tls = ServingTLS(tmp_path / "tls.crt", tmp_path / "tls.key")
    served = tls._current
    (tmp_path / "tls.crt").write_bytes(second.cert_pem)  # the key is not rotated yet
    with pytest.raises(ssl.SSLError):
        tls.reload()
    assert tls._current is served  # the served pair is untouched
    (tmp_path / "tls.key").write_bytes(second.key_pem)
    tls.reload()
    assert tls._current is not served
