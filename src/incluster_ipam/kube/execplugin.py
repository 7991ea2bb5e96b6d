"""Exec credential plugins (client.authentication.k8s.io v1 and v1beta1), as kubectl runs them.

`parse_exec_config` validates a kubeconfig user's `exec` block and `parse_exec_credential` the plugin's
answer (both pure). `ExecPlugin` runs the command as an asyncio subprocess (never blocking the loop), with a
timeout, caches the credential until its `expirationTimestamp` and drops it when the apiserver answers 401.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from .errors import TransportError

GROUP = "client.authentication.k8s.io"
API_VERSIONS = (f"{GROUP}/v1", f"{GROUP}/v1beta1")
INTERACTIVE_MODES = ("Never", "IfAvailable", "Always")
#: The extension of a cluster entry that is handed to the plugin as spec.cluster.config.
CLUSTER_EXTENSION = f"{GROUP}/exec"
#: How long a plugin may run without a human at the keyboard; with one (interactive), a login prompt may
#: take a while.
EXEC_TIMEOUT = 60.0
INTERACTIVE_EXEC_TIMEOUT = 300.0
_STDERR_TAIL = 2000


class ExecConfigError(ValueError):
    """A kubeconfig `exec` block or a plugin's answer is malformed; the message names the field."""


class ExecPluginError(TransportError):
    """The plugin could not give a credential (not found, failed, timed out, answered nonsense): no request
    was sent. A `TransportError`, so callers treat it like any other failure to reach the apiserver."""


@dataclass(frozen=True)
class ExecConfig:
    """A validated `users[].user.exec` block. `where` names it in messages (file and field path)."""

    command: str
    api_version: str
    args: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    interactive_mode: str = "IfAvailable"
    provide_cluster_info: bool = False
    install_hint: str | None = None
    where: str = "exec"


@dataclass(frozen=True)
class ExecCredential:
    """What a plugin returned: a bearer token and/or a client certificate (PEM), valid until `expires`
    (POSIX seconds; None: until the apiserver rejects it)."""

    token: str | None = field(default=None, repr=False)
    client_cert_data: bytes | None = None
    client_key_data: bytes | None = field(default=None, repr=False)
    expires: float | None = None


def _strings(value: Any, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ExecConfigError(f"{where}: must be a list of strings")
    return tuple(value)


def _env(value: Any, where: str) -> tuple[tuple[str, str], ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise ExecConfigError(f"{where}: must be a list of {{name, value}} entries")
    pairs = []
    for i, item in enumerate(value):
        if not isinstance(item, Mapping):
            raise ExecConfigError(f"{where}[{i}]: must be a mapping with name and value")
        name, val = item.get("name"), item.get("value")
        if not isinstance(name, str) or not name:
            raise ExecConfigError(f"{where}[{i}].name: must be a non-empty string")
        if not isinstance(val, str):
            raise ExecConfigError(f"{where}[{i}].value: must be a string")
        pairs.append((name, val))
    return tuple(pairs)


def parse_exec_config(raw: Any, where: str, base_dir: Path | None = None) -> ExecConfig:
    """Validate an exec block as clientcmd does. A relative command with a path separator is relative to
    the kubeconfig that names it (`base_dir`); a bare name is looked up in PATH when run."""
    if not isinstance(raw, Mapping):
        raise ExecConfigError(f"{where}: must be a mapping")
    command = raw.get("command")
    if not isinstance(command, str) or not command:
        raise ExecConfigError(f"{where}.command: is required")
    if base_dir is not None and os.sep in command and not os.path.isabs(command):
        command = str(base_dir / command)
    api_version = raw.get("apiVersion")
    if not api_version:
        raise ExecConfigError(f"{where}.apiVersion: is required ({' or '.join(API_VERSIONS)})")
    if api_version not in API_VERSIONS:
        raise ExecConfigError(
            f"{where}.apiVersion: {api_version!r} is not supported; use {' or '.join(API_VERSIONS)}"
        )
    mode = raw.get("interactiveMode")
    if not mode:
        if api_version == API_VERSIONS[0]:
            raise ExecConfigError(f"{where}.interactiveMode: is required for {api_version}")
        mode = "IfAvailable"
    if mode not in INTERACTIVE_MODES:
        choices = ", ".join(INTERACTIVE_MODES)
        raise ExecConfigError(f"{where}.interactiveMode: {mode!r} is not one of {choices}")
    provide = raw.get("provideClusterInfo", False)
    if not isinstance(provide, bool):
        raise ExecConfigError(f"{where}.provideClusterInfo: must be true or false")
    hint = raw.get("installHint")
    return ExecConfig(
        command=command,
        api_version=str(api_version),
        args=_strings(raw.get("args"), f"{where}.args"),
        env=_env(raw.get("env"), f"{where}.env"),
        interactive_mode=str(mode),
        provide_cluster_info=provide,
        install_hint=str(hint) if hint else None,
        where=where,
    )


def _timestamp(value: Any, where: str) -> float:
    if not isinstance(value, str):
        raise ExecConfigError(f"{where}: must be an RFC 3339 timestamp string")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError as exc:
        raise ExecConfigError(f"{where}: {value!r} is not an RFC 3339 timestamp") from exc
    if moment.tzinfo is None:
        raise ExecConfigError(f"{where}: {value!r} has no time zone")
    return moment.timestamp()


def _pem(value: Any, where: str) -> bytes | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ExecConfigError(f"{where}: must be a PEM string")
    return value.encode()


def parse_exec_credential(output: bytes, config: ExecConfig) -> ExecCredential:
    """Validate a plugin's stdout: an ExecCredential of the configured apiVersion with a token or a client
    certificate and key."""
    prefix = f"exec plugin {config.command!r} answered"
    try:
        body = json.loads(output)
    except ValueError as exc:
        raise ExecConfigError(f"{prefix} no JSON ExecCredential: {exc}") from exc
    if not isinstance(body, Mapping):
        raise ExecConfigError(f"{prefix} no JSON object")
    if body.get("kind") != "ExecCredential":
        raise ExecConfigError(f"{prefix} kind {body.get('kind')!r}: expected 'ExecCredential'")
    if body.get("apiVersion") != config.api_version:
        raise ExecConfigError(
            f"{prefix} apiVersion {body.get('apiVersion')!r}: expected {config.api_version!r} "
            f"({config.where}.apiVersion)"
        )
    status = body.get("status")
    if not isinstance(status, Mapping):
        raise ExecConfigError(f"{prefix} without status: status.token or status.clientCertificateData needed")
    token = status.get("token")
    if token is not None and not isinstance(token, str):
        raise ExecConfigError(f"{prefix}: status.token must be a string")
    cert = _pem(status.get("clientCertificateData"), f"{prefix}: status.clientCertificateData")
    key = _pem(status.get("clientKeyData"), f"{prefix}: status.clientKeyData")
    if (cert is None) != (key is None):
        raise ExecConfigError(f"{prefix}: status.clientCertificateData and status.clientKeyData go together")
    if not token and cert is None:
        raise ExecConfigError(f"{prefix}: status has neither a token nor a client certificate")
    expiry = status.get("expirationTimestamp")
    expires = _timestamp(expiry, f"{prefix}: status.expirationTimestamp") if expiry else None
    return ExecCredential(token or None, cert, key, expires)


def exec_info(config: ExecConfig, interactive: bool, cluster: Mapping[str, Any] | None) -> dict[str, Any]:
    """The KUBERNETES_EXEC_INFO document: the request, with the cluster when provideClusterInfo is set."""
    spec: dict[str, Any] = {"interactive": interactive}
    if config.provide_cluster_info and cluster is not None:
        spec["cluster"] = dict(cluster)
    return {"apiVersion": config.api_version, "kind": "ExecCredential", "spec": spec}


def cluster_info(cluster: Mapping[str, Any], ca_data: bytes | None) -> dict[str, Any]:
    """spec.cluster for provideClusterInfo, from a kubeconfig cluster entry (the CA as inline data)."""
    info: dict[str, Any] = {"server": str(cluster.get("server", ""))}
    for key in ("tls-server-name", "insecure-skip-tls-verify", "proxy-url", "disable-compression"):
        if cluster.get(key):
            info[key] = cluster[key]
    if ca_data is not None:
        info["certificate-authority-data"] = base64.b64encode(ca_data).decode()
    for entry in cluster.get("extensions") or []:
        if isinstance(entry, Mapping) and entry.get("name") == CLUSTER_EXTENSION:
            info["config"] = entry.get("extension")
    return info


def _stdin_is_terminal() -> bool:
    try:
        return sys.stdin is not None and sys.stdin.isatty()
    except (ValueError, OSError):  # closed or detached (a daemon)
        return False


def _tail(data: bytes | None) -> str:
    text = (data or b"").decode(errors="replace").strip()
    return text[-_STDERR_TAIL:] if text else "(nothing on stderr)"


class ExecPlugin:
    """Runs one exec plugin; one run at a time, its credential cached until it expires or is rejected."""

    def __init__(
        self,
        config: ExecConfig,
        cluster: Mapping[str, Any] | None = None,
        *,
        timeout: float | None = None,
        clock: Callable[[], float] = time.time,
        stdin_is_terminal: Callable[[], bool] | None = None,
    ) -> None:
        self.config = config
        self._cluster = cluster
        self._timeout = timeout
        self._clock = clock
        self._is_terminal = stdin_is_terminal or _stdin_is_terminal
        self._cached: ExecCredential | None = None
        self._lock = asyncio.Lock()
        self.runs = 0

    def _fresh(self) -> ExecCredential | None:
        cached = self._cached
        if cached is not None and (cached.expires is None or self._clock() < cached.expires):
            return cached
        return None

    async def credential(self) -> ExecCredential:
        """The cached credential, or a new one from the plugin (concurrent callers share one run)."""
        cached = self._fresh()
        if cached is not None:
            return cached
        async with self._lock:
            cached = self._fresh()
            if cached is None:
                cached = await self._run()
                self._cached = cached
            return cached

    def rejected(self, used: ExecCredential) -> bool:
        """The apiserver said 401 to `used`: forget it, so the next request runs the plugin again.
        True when there is something new to try (not when another request already refreshed)."""
        if self._cached is used:
            self._cached = None
        return True

    def _interactive(self) -> bool:
        mode = self.config.interactive_mode
        if mode == "Never":
            return False
        terminal = self._is_terminal()
        if mode == "Always" and not terminal:
            raise ExecPluginError(
                f"exec plugin {self.config.command!r}: {self.config.where}.interactiveMode is Always but "
                "standard input is not a terminal"
            )
        return terminal

    async def _run(self) -> ExecCredential:
        config = self.config
        interactive = self._interactive()
        env = dict(os.environ)
        env.update(config.env)
        env["KUBERNETES_EXEC_INFO"] = json.dumps(exec_info(config, interactive, self._cluster))
        timeout = self._timeout or (INTERACTIVE_EXEC_TIMEOUT if interactive else EXEC_TIMEOUT)
        name = f"exec plugin {config.command!r} ({config.where})"
        self.runs += 1
        try:
            proc = await asyncio.create_subprocess_exec(
                config.command,
                *config.args,
                env=env,
                stdin=None if interactive else asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=None if interactive else asyncio.subprocess.PIPE,  # prompts reach the user
            )
        except OSError as exc:
            hint = f"; {config.install_hint.strip()}" if config.install_hint else ""
            raise ExecPluginError(f"{name} cannot be started: {exc.strerror or exc}{hint}") from exc
        try:
            stdout, stderr = await asyncio.wait_for(proc.communicate(), timeout)
        except TimeoutError as exc:
            proc.kill()
            await proc.wait()
            raise ExecPluginError(f"{name} did not answer within {timeout:g} s") from exc
        except asyncio.CancelledError:
            proc.kill()
            raise
        if proc.returncode != 0:
            raise ExecPluginError(f"{name} exited with {proc.returncode}: {_tail(stderr)}")
        try:
            return parse_exec_credential(stdout, config)
        except ExecConfigError as exc:
            raise ExecPluginError(str(exc)) from exc
