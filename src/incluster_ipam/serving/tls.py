"""TLS for the provider's servers (webhooks, secure metrics): one way to build a server context, and a
serving certificate that can be replaced while the server runs.

- TLS 1.2 or newer; for TLS 1.2 only forward-secret AEAD suites (ECDHE with AES-GCM or ChaCha20-Poly1305),
  as Go's defaults are; renegotiation off. `--tls-cipher-suites` takes Go's suite names, as Cluster API
  providers do (TLS 1.3 suites are not configurable, in Go neither).
- `ServingTLS.reload()` builds a complete new context from the files and swaps it in for new handshakes;
  the listening context picks the current one in its SNI callback (called for every handshake, with or
  without SNI). A pair that does not load leaves the served one untouched, and the files are read once per
  reload, so a swap between two reads can never leave a certificate with the wrong key (finding 19).
"""

from __future__ import annotations

import ssl
from collections.abc import Iterable, Mapping
from pathlib import Path

#: Go's names of the TLS 1.2 suites we offer, and OpenSSL's names for them.
TLS12_SUITES: Mapping[str, str] = {
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256": "ECDHE-ECDSA-AES128-GCM-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256": "ECDHE-RSA-AES128-GCM-SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384": "ECDHE-ECDSA-AES256-GCM-SHA384",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384": "ECDHE-RSA-AES256-GCM-SHA384",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-ECDSA-CHACHA20-POLY1305",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-RSA-CHACHA20-POLY1305",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305": "ECDHE-ECDSA-CHACHA20-POLY1305",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305": "ECDHE-RSA-CHACHA20-POLY1305",
}
#: TLS 1.3 suites: always on, not configurable (accepted in `--tls-cipher-suites`, as Go ignores them).
TLS13_SUITES = frozenset({"TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256"})

TLS_VERSIONS: Mapping[str, ssl.TLSVersion] = {
    "VersionTLS12": ssl.TLSVersion.TLSv1_2,
    "VersionTLS13": ssl.TLSVersion.TLSv1_3,
}
"""`--tls-min-version` values (Cluster API's names); TLS 1.0 and 1.1 are not offered."""


def tls_version(name: str) -> ssl.TLSVersion:
    """`VersionTLS12` -> `ssl.TLSVersion.TLSv1_2`; ValueError for anything else."""
    try:
        return TLS_VERSIONS[name]
    except KeyError:
        raise ValueError(f"unsupported TLS version {name!r}; use one of {', '.join(TLS_VERSIONS)}") from None


def cipher_list(suites: Iterable[str] | None = None) -> str:
    """OpenSSL's cipher string for Go suite names (None: all of `TLS12_SUITES`); ValueError for a suite we
    do not offer (CBC, RSA key exchange, 3DES...), naming it."""
    if suites is None:
        return ":".join(dict.fromkeys(TLS12_SUITES.values()))
    chosen: list[str] = []
    for given in suites:
        suite = given.strip()
        if not suite or suite in TLS13_SUITES:
            continue
        if suite not in TLS12_SUITES:
            raise ValueError(
                f"unsupported TLS cipher suite {suite!r}; use TLS 1.2 ECDHE AEAD suites: "
                + ", ".join(sorted(TLS12_SUITES))
            )
        chosen.append(TLS12_SUITES[suite])
    if not chosen:
        return cipher_list(None)
    return ":".join(dict.fromkeys(chosen))


def server_context(
    cert_file: str | Path,
    key_file: str | Path,
    min_version: ssl.TLSVersion = ssl.TLSVersion.TLSv1_2,
    ciphers: str | None = None,
) -> ssl.SSLContext:
    """A server-side TLS context with the given PEM certificate chain and key (raises on a bad pair)."""
    if min_version < ssl.TLSVersion.TLSv1_2:
        raise ValueError("TLS older than 1.2 is not served")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = min_version
    context.set_ciphers(ciphers or cipher_list())
    context.options |= ssl.OP_NO_RENEGOTIATION | ssl.OP_NO_COMPRESSION | ssl.OP_CIPHER_SERVER_PREFERENCE
    context.load_cert_chain(str(cert_file), str(key_file))
    return context


class ServingTLS:
    """The context a server listens with, serving the certificate of the latest successful `reload()`."""

    def __init__(
        self,
        cert_file: str | Path,
        key_file: str | Path,
        min_version: ssl.TLSVersion = ssl.TLSVersion.TLSv1_2,
        ciphers: str | None = None,
    ) -> None:
        self.cert_file = Path(cert_file)
        self.key_file = Path(key_file)
        self._min_version = min_version
        self._ciphers = ciphers
        self._current = self._build()
        self.context = self._build()
        self.context.sni_callback = self._select

    def _build(self) -> ssl.SSLContext:
        return server_context(self.cert_file, self.key_file, self._min_version, self._ciphers)

    def _select(self, connection: ssl.SSLObject, _server_name: str | None, _context: ssl.SSLContext) -> None:
        connection.context = self._current

    def reload(self) -> None:
        """Read the files again; new handshakes get the new pair. A pair that does not load raises
        (`ssl.SSLError`, `OSError`) and leaves the served one in place."""
        self._current = self._build()
