"""Throwaway certificates for the packaging tests."""

from __future__ import annotations

import os
import ssl
from pathlib import Path

from incluster_ipam.devcluster.pki import CertificateAuthority, KeyPair


def write_pair(directory: Path, pair: KeyPair, cert_name: str = "tls.crt", key_name: str = "tls.key") -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / cert_name).write_bytes(pair.cert_pem)
    (directory / key_name).write_bytes(pair.key_pem)


def swap_secret_volume(directory: Path, pair: KeyPair, generation: int) -> None:
    """Update `directory` the way the kubelet updates a Secret volume: files live in a timestamped
    directory, `..data` points at it and is replaced atomically; tls.crt and tls.key link through it."""
    target = directory / f"..{generation}"
    write_pair(target, pair)
    link = directory / "..data_tmp"
    link.symlink_to(target.name)
    os.replace(link, directory / "..data")
    for name in ("tls.crt", "tls.key"):
        if not (directory / name).is_symlink():
            (directory / name).symlink_to(f"..data/{name}")


def der(pem: bytes) -> bytes:
    return ssl.PEM_cert_to_DER_cert(pem.decode())


def serving_pair(ca: CertificateAuthority | None = None) -> KeyPair:
    return (ca or CertificateAuthority()).serving(("127.0.0.1", "localhost"))
