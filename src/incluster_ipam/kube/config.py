"""Where the apiserver is and how to authenticate: kubeconfig files or the in-cluster service account.

Loading happens once at start-up (file reads here are small and synchronous on purpose). Supported:
server, certificate-authority(-data), insecure-skip-tls-verify, tls-server-name, proxy-url,
client-certificate(-data), client-key(-data), token, tokenFile and exec credential plugins (`execplugin`);
several $KUBECONFIG files are merged as kubectl merges them (`kubeconfig`). auth-provider plugins are not
supported (clear error). Files named here are re-read when they change (`credentials`).
"""

from __future__ import annotations

import base64
import os
import ssl
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .execplugin import ExecConfig, ExecConfigError, cluster_info, parse_exec_config
from .filewatch import FileWatch
from .kubeconfig import SECTIONS, Entry, KubeconfigError, Merged, merge, precedence
from .proxy import ProxyError, check_proxy_url

SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
#: How often a token file is looked at for a change (a stat; re-read only when it changed). kubelet rotates
#: projected tokens long before expiry, so this only bounds how soon a rotated file is noticed.
TOKEN_REFRESH_SECONDS = 5.0
#: The same for client certificate and key files.
FILE_CHECK_SECONDS = TOKEN_REFRESH_SECONDS


class ConfigError(Exception):
    """The kubeconfig or the in-cluster environment cannot be used."""


class TokenSource:
    """A bearer token, static or from a file re-read when it changes (projected tokens rotate). The file
    is looked at (stat) at most every `refresh_seconds`, and re-read when it changed or after a 401."""

    def __init__(
        self,
        token: str | None = None,
        path: Path | None = None,
        refresh_seconds: float = TOKEN_REFRESH_SECONDS,
    ) -> None:
        if token is None and path is None:
            raise ValueError("a token source needs a token or a token file")
        self._token = token
        self._file = FileWatch(path, refresh_seconds) if path is not None else None

    async def token(self) -> str:
        if self._file is not None:
            self._token = (await self._file.read()).decode().strip()
        assert self._token is not None
        return self._token

    def invalidate(self) -> None:
        """Force a look at the file on next use (after a 401, it may already hold a rotated token)."""
        if self._file is not None:
            self._file.invalidate()


@dataclass(frozen=True)
class ClusterConfig:
    """Resolved connection settings. Data fields hold PEM bytes; file fields absolute paths."""

    server: str
    ca_file: Path | None = None
    ca_data: bytes | None = None
    insecure_skip_tls_verify: bool = False
    tls_server_name: str | None = None
    client_cert_file: Path | None = None
    client_cert_data: bytes | None = None
    client_key_file: Path | None = None
    client_key_data: bytes | None = None
    token: str | None = field(default=None, repr=False)
    token_file: Path | None = None
    namespace: str | None = None
    proxy_url: str | None = None
    exec: ExecConfig | None = None
    #: spec.cluster handed to an exec plugin that asked for it (provideClusterInfo).
    exec_cluster: Mapping[str, Any] | None = field(default=None, repr=False)

    def ssl_context(self, client_pair: tuple[bytes, bytes] | None = None) -> ssl.SSLContext | None:
        """TLS settings for an https server (None for plain http). `client_pair` (certificate and key PEM)
        replaces the configured client certificate: a rotated file's content, an exec plugin's answer."""
        if not self.server.startswith("https://"):
            return None
        if self.insecure_skip_tls_verify:
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        elif self.ca_data is not None:
            context = ssl.create_default_context(cadata=self.ca_data.decode())
        elif self.ca_file is not None:
            context = ssl.create_default_context(cafile=str(self.ca_file))
        else:
            context = ssl.create_default_context()
        cert_given = self.client_cert_data is not None or self.client_cert_file is not None
        key_given = self.client_key_data is not None or self.client_key_file is not None
        if cert_given != key_given:
            raise ConfigError("a client certificate needs both the certificate and its key")
        if client_pair is not None:
            _load_cert_chain(context, None, client_pair[0], None, client_pair[1])
        elif cert_given:
            _load_cert_chain(
                context,
                self.client_cert_file,
                self.client_cert_data,
                self.client_key_file,
                self.client_key_data,
            )
        return context

    def token_source(self, check_seconds: float = TOKEN_REFRESH_SECONDS) -> TokenSource | None:
        if self.token_file is not None:
            return TokenSource(path=self.token_file, refresh_seconds=check_seconds)
        if self.token:
            return TokenSource(token=self.token)
        return None


def _load_cert_chain(
    context: ssl.SSLContext,
    cert_file: Path | None,
    cert_data: bytes | None,
    key_file: Path | None,
    key_data: bytes | None,
) -> None:
    """ssl only loads key pairs from files: inline data goes through private temp files, removed at once."""
    with tempfile.TemporaryDirectory(prefix="incluster-ipam-tls-") as tmp:
        if cert_data is not None:
            cert_file = Path(tmp) / "client.crt"
            cert_file.write_bytes(cert_data)
        if key_data is not None:
            key_file = Path(tmp) / "client.key"
            fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(key_data)
        context.load_cert_chain(str(cert_file), str(key_file))


def _data(value: Any, where: str) -> bytes | None:
    if not value:
        return None
    try:
        return base64.b64decode(value, validate=True)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{where}: is not valid base64") from exc


def _path(value: Any, base_dir: Path) -> Path | None:
    if not value:
        return None
    path = Path(os.path.expanduser(str(value)))
    return path if path.is_absolute() else base_dir / path


def _lookup(merged: Merged, section: str, name: str, wanted_by: str) -> Entry:
    entry = merged.section(section).get(name)
    if entry is None:
        raise ConfigError(f"kubeconfig has no {SECTIONS[section]} named {name!r} ({wanted_by})")
    return entry


def _ca_bytes(ca_data: bytes | None, ca_file: Path | None, where: str) -> bytes | None:
    if ca_data is not None or ca_file is None:
        return ca_data
    try:
        return ca_file.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{where}: cannot read {ca_file}: {exc.strerror or exc}") from exc


def resolve(merged: Merged, context: str | None = None) -> ClusterConfig:
    """One context of a (merged) kubeconfig; relative paths are relative to the file that wrote them."""
    files = ", ".join(str(f) for f in merged.files)
    context_name = context or merged.current_context
    if not context_name:
        raise ConfigError(f"kubeconfig ({files}) has no current-context and none was given")
    wanted = "--context" if context else f"current-context of {merged.current_context_file}"
    ctx = _lookup(merged, "contexts", context_name, wanted)
    cluster_name = ctx.body.get("cluster")
    if not cluster_name:
        raise ConfigError(f"{ctx.field('cluster')}: context {context_name!r} names no cluster")
    cluster_entry = _lookup(merged, "clusters", str(cluster_name), ctx.field("cluster"))
    cluster = cluster_entry.body
    user_name = ctx.body.get("user")
    user_entry = _lookup(merged, "users", str(user_name), ctx.field("user")) if user_name else None
    user: Mapping[str, Any] = user_entry.body if user_entry else {}
    server = cluster.get("server")
    if not server:
        raise ConfigError(f"{cluster_entry.field('server')}: cluster {cluster_name!r} has no server")
    cluster_dir = cluster_entry.base_dir
    ca_file = _path(cluster.get("certificate-authority"), cluster_dir)
    ca_field = cluster_entry.field("certificate-authority-data")
    ca_data = _data(cluster.get("certificate-authority-data"), ca_field)
    proxy_url = cluster.get("proxy-url") or None
    if proxy_url is not None:
        try:
            check_proxy_url(str(proxy_url), cluster_entry.field("proxy-url"))
        except ProxyError as exc:
            raise ConfigError(str(exc)) from exc
    exec_config: ExecConfig | None = None
    exec_cluster: Mapping[str, Any] | None = None
    if user_entry is not None:
        if user.get("auth-provider"):
            provider = user["auth-provider"]
            name = provider.get("name") if isinstance(provider, Mapping) else None
            raise ConfigError(
                f"{user_entry.field('auth-provider')}: auth-provider plugins ({name!r}) are not supported; "
                "use an exec credential plugin (for OIDC, e.g. kubelogin)"
            )
        if user.get("exec") is not None:
            try:
                exec_config = parse_exec_config(user["exec"], user_entry.field("exec"), user_entry.base_dir)
            except ExecConfigError as exc:
                raise ConfigError(str(exc)) from exc
            if exec_config.provide_cluster_info:
                ca = _ca_bytes(ca_data, ca_file, cluster_entry.field("certificate-authority"))
                exec_cluster = cluster_info(cluster, ca)
    user_dir = user_entry.base_dir if user_entry else cluster_dir
    field_of = user_entry.field if user_entry else cluster_entry.field
    return ClusterConfig(
        server=str(server).rstrip("/"),
        ca_file=ca_file,
        ca_data=ca_data,
        insecure_skip_tls_verify=bool(cluster.get("insecure-skip-tls-verify", False)),
        tls_server_name=cluster.get("tls-server-name") or None,
        client_cert_file=_path(user.get("client-certificate"), user_dir),
        client_cert_data=_data(user.get("client-certificate-data"), field_of("client-certificate-data")),
        client_key_file=_path(user.get("client-key"), user_dir),
        client_key_data=_data(user.get("client-key-data"), field_of("client-key-data")),
        token=user.get("token") or None,
        token_file=_path(user.get("tokenFile"), user_dir),
        namespace=ctx.body.get("namespace") or None,
        proxy_url=str(proxy_url) if proxy_url else None,
        exec=exec_config,
        exec_cluster=exec_cluster,
    )


def parse_kubeconfig(
    data: Mapping[str, Any], base_dir: Path, context: str | None = None, *, source: Path | None = None
) -> ClusterConfig:
    """Resolve one context of one parsed kubeconfig; relative file paths are relative to `base_dir`."""
    try:
        return resolve(merge([(source or base_dir / "kubeconfig", data)]), context)
    except KubeconfigError as exc:
        raise ConfigError(str(exc)) from exc


def _read(file: Path) -> Mapping[str, Any]:
    try:
        data = yaml.safe_load(file.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read kubeconfig {file}: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"kubeconfig {file} is not a mapping")
    return data


def load_kubeconfig(path: str | Path, context: str | None = None) -> ClusterConfig:
    """Read and resolve one kubeconfig file (an explicit --kubeconfig: nothing is merged into it)."""
    file = Path(path).expanduser()
    return parse_kubeconfig(_read(file), file.parent, context, source=file)


def load_kubeconfigs(paths: Sequence[Path], context: str | None = None) -> ClusterConfig:
    """Merge the files of $KUBECONFIG as kubectl does; files that do not exist are skipped."""
    present = [p for p in paths if p.exists()]
    if not present:
        listed = ", ".join(str(p) for p in paths)
        raise ConfigError(f"none of the KUBECONFIG files exists: {listed}")
    try:
        return resolve(merge([(p, _read(p)) for p in present]), context)
    except KubeconfigError as exc:
        raise ConfigError(str(exc)) from exc


def in_cluster_config(
    env: Mapping[str, str] | None = None, account_dir: Path = SERVICE_ACCOUNT_DIR
) -> ClusterConfig:
    """The pod's service account: KUBERNETES_SERVICE_HOST/PORT, CA, rotating token file, namespace."""
    env = os.environ if env is None else env
    host, port = env.get("KUBERNETES_SERVICE_HOST"), env.get("KUBERNETES_SERVICE_PORT")
    if not host or not port:
        raise ConfigError("not running in a cluster: KUBERNETES_SERVICE_HOST/PORT are not set")
    token_file = account_dir / "token"
    if not token_file.is_file():
        raise ConfigError(f"service account token {token_file} does not exist")
    namespace_file = account_dir / "namespace"
    namespace = namespace_file.read_text().strip() if namespace_file.is_file() else None
    ca_file = account_dir / "ca.crt"
    host = f"[{host}]" if ":" in host else host
    return ClusterConfig(
        server=f"https://{host}:{port}",
        ca_file=ca_file if ca_file.is_file() else None,
        token_file=token_file,
        namespace=namespace,
    )


def load_config(
    kubeconfig: str | Path | None = None, context: str | None = None, env: Mapping[str, str] | None = None
) -> ClusterConfig:
    """client-go's order: explicit kubeconfig, then $KUBECONFIG (its files merged), then in-cluster, then
    ~/.kube/config."""
    env = os.environ if env is None else env
    if kubeconfig:
        return load_kubeconfig(kubeconfig, context)
    paths = precedence(env.get("KUBECONFIG", ""), os.pathsep)
    if paths:
        return load_kubeconfigs(paths, context)
    if env.get("KUBERNETES_SERVICE_HOST"):
        return in_cluster_config(env)
    return load_kubeconfig(Path.home() / ".kube" / "config", context)
