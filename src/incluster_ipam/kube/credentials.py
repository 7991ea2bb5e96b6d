"""What the client presents on each request: a bearer token and the TLS context (with its client
certificate), from whichever source the configuration names: static data, files re-read when they change,
or an exec plugin. After a 401 the sources are refreshed once; `rejected` says whether that gave anything new.
"""

from __future__ import annotations

import contextlib
import ssl
from dataclasses import dataclass, field
from pathlib import Path

from .config import FILE_CHECK_SECONDS, ClusterConfig, ConfigError
from .errors import TransportError
from .execplugin import ExecCredential, ExecPlugin
from .filewatch import FileWatch


@dataclass(frozen=True)
class Auth:
    """The credentials one request went out with."""

    token: str | None = field(default=None, repr=False)
    ssl: ssl.SSLContext | None = None
    client_pair: tuple[bytes, bytes] | None = field(default=None, repr=False)
    exec_credential: ExecCredential | None = field(default=None, repr=False)


class Credentials:
    """The credential sources of one configuration; shared by a client and its forks."""

    def __init__(
        self,
        config: ClusterConfig,
        *,
        check_seconds: float = FILE_CHECK_SECONDS,
        exec_timeout: float | None = None,
    ) -> None:
        self._config = config
        self._base_ssl = config.ssl_context()  # validates the TLS settings at start-up
        self._tokens = config.token_source(check_seconds)
        self._exec = (
            ExecPlugin(config.exec, config.exec_cluster, timeout=exec_timeout) if config.exec else None
        )
        self._cert_files: tuple[FileWatch | bytes, FileWatch | bytes] | None = None
        if config.client_cert_file is not None or config.client_key_file is not None:
            self._cert_files = (
                _source(config.client_cert_file, config.client_cert_data, check_seconds),
                _source(config.client_key_file, config.client_key_data, check_seconds),
            )
        self._pair: tuple[bytes, bytes] | None = None
        self._ssl = self._base_ssl

    @property
    def exec_plugin(self) -> ExecPlugin | None:
        return self._exec

    async def current(self) -> Auth:
        """The credentials for the next request (may run the exec plugin or look at files)."""
        credential = await self._exec.credential() if self._exec is not None else None
        token = credential.token if credential is not None else None
        if token is None and self._tokens is not None:
            try:
                token = await self._tokens.token()
            except OSError as exc:  # a projected token volume mid-update: transient like any other failure
                raise TransportError(f"reading the token file {self._config.token_file}: {exc!r}") from exc
        pair: tuple[bytes, bytes] | None = None
        if credential is not None and credential.client_cert_data and credential.client_key_data:
            pair = (credential.client_cert_data, credential.client_key_data)
        elif self._cert_files is not None:
            pair = await self._read_pair()
        return Auth(token, self._context_for(pair), pair, credential)

    async def rejected(self, used: Auth) -> bool:
        """A 401 answered `used`: refresh the sources. True when the next try will present something new."""
        if used.exec_credential is not None and self._exec is not None:
            return self._exec.rejected(used.exec_credential)
        changed = False
        if self._tokens is not None:
            self._tokens.invalidate()
            try:
                changed = await self._tokens.token() != used.token
            except OSError:
                changed = False
        if self._cert_files is not None:
            for watch in self._cert_files:
                if isinstance(watch, FileWatch):
                    watch.invalidate()
            with contextlib.suppress(TransportError):
                changed = changed or await self._read_pair() != used.client_pair
        return changed

    async def _read_pair(self) -> tuple[bytes, bytes]:
        assert self._cert_files is not None
        cert_watch, key_watch = self._cert_files
        try:
            return await _content(cert_watch), await _content(key_watch)
        except OSError as exc:
            raise TransportError(f"reading the client certificate: {exc!r}") from exc

    def _context_for(self, pair: tuple[bytes, bytes] | None) -> ssl.SSLContext | None:
        """The TLS context presenting `pair`; rebuilt only when the pair changed. A pair that does not load
        (a certificate and key caught mid-rotation) keeps the previous context until the files settle."""
        if pair is None or self._base_ssl is None or pair == self._pair:
            return self._ssl
        try:
            context = self._config.ssl_context(pair)
        except (ssl.SSLError, ConfigError) as exc:
            if self._pair is None:
                raise TransportError(f"the client certificate and key do not load: {exc}") from exc
            return self._ssl
        self._pair, self._ssl = pair, context
        return context


def _source(path: Path | None, data: bytes | None, check_seconds: float) -> FileWatch | bytes:
    if path is not None:
        return FileWatch(path, check_seconds)
    assert data is not None  # ClusterConfig.ssl_context() refused a certificate without its key
    return data


async def _content(source: FileWatch | bytes) -> bytes:
    return source if isinstance(source, bytes) else await source.read()
