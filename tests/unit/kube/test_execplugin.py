"""Exec credential plugins: the exec block and the ExecCredential validated field by field, the
KUBERNETES_EXEC_INFO handed over, caching until expirationTimestamp, a new run after a 401, and failures
that name the command and carry its stderr. The plugins are small Python scripts run for real."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from incluster_ipam.kube.execplugin import (
    ExecConfig,
    ExecConfigError,
    ExecPlugin,
    ExecPluginError,
    cluster_info,
    parse_exec_config,
    parse_exec_credential,
)

V1 = "client.authentication.k8s.io/v1"
V1BETA1 = "client.authentication.k8s.io/v1beta1"
WHERE = "/k: users[0].user.exec"


def credential(api_version: str = V1, **status: Any) -> bytes:
    return json.dumps({"apiVersion": api_version, "kind": "ExecCredential", "status": status}).encode()


def test_exec_block_validation_names_the_field() -> None:
    good = parse_exec_config(
        {
            "command": "aws",
            "args": ["eks", "get-token"],
            "env": [{"name": "AWS_PROFILE", "value": "prod"}],
            "apiVersion": V1BETA1,
        },
        WHERE,
    )
    assert (good.args, good.env, good.interactive_mode) == (
        ("eks", "get-token"),
        (("AWS_PROFILE", "prod"),),
        "IfAvailable",
    )
    cases: list[tuple[dict[str, Any], str]] = [
        ({"apiVersion": V1}, r"users\[0\].user.exec.command: is required"),
        ({"command": "x"}, r"exec.apiVersion: is required"),
        (
            {"command": "x", "apiVersion": "client.authentication.k8s.io/v1alpha1"},
            r"exec.apiVersion: .*v1alpha1.* not supported",
        ),
        ({"command": "x", "apiVersion": V1}, r"exec.interactiveMode: is required for .*/v1"),
        (
            {"command": "x", "apiVersion": V1, "interactiveMode": "Sometimes"},
            r"interactiveMode: 'Sometimes' is not one of",
        ),
        ({"command": "x", "apiVersion": V1BETA1, "args": "--flag"}, r"exec.args: must be a list of strings"),
        (
            {"command": "x", "apiVersion": V1BETA1, "env": [{"name": "A"}]},
            r"exec.env\[0\].value: must be a string",
        ),
        (
            {"command": "x", "apiVersion": V1BETA1, "provideClusterInfo": "yes"},
            r"provideClusterInfo: must be true or false",
        ),
    ]
    for raw, message in cases:
        with pytest.raises(ExecConfigError, match=message):
            parse_exec_config(raw, WHERE)


def test_relative_commands_with_a_separator_are_relative_to_the_kubeconfig() -> None:
    raw = {"apiVersion": V1BETA1}
    assert parse_exec_config({**raw, "command": "bin/get-token"}, WHERE, Path("/home/me/.kube")).command == (
        "/home/me/.kube/bin/get-token"
    )
    assert (
        parse_exec_config({**raw, "command": "get-token"}, WHERE, Path("/home/me/.kube")).command
        == "get-token"
    )


def test_exec_credential_validation() -> None:
    config = ExecConfig(command="plug", api_version=V1, interactive_mode="Never", where=WHERE)
    parsed = parse_exec_credential(credential(token="t", expirationTimestamp="2030-01-02T03:04:05Z"), config)
    assert parsed.token == "t"
    assert parsed.expires == 1893553445.0
    cert = parse_exec_credential(credential(clientCertificateData="C", clientKeyData="K"), config)
    assert (cert.client_cert_data, cert.client_key_data, cert.expires) == (b"C", b"K", None)
    cases: list[tuple[bytes, str]] = [
        (b"not json", "no JSON ExecCredential"),
        (
            credential(V1BETA1, token="t"),
            r"apiVersion '.*v1beta1': expected '.*/v1' \(/k: users\[0\].user.exec.apiVersion\)",
        ),
        (json.dumps({"apiVersion": V1, "kind": "Other", "status": {}}).encode(), "kind 'Other'"),
        (json.dumps({"apiVersion": V1, "kind": "ExecCredential"}).encode(), "without status"),
        (credential(), "neither a token nor a client certificate"),
        (credential(clientCertificateData="C"), "clientCertificateData and status.clientKeyData go together"),
        (
            credential(token="t", expirationTimestamp="tomorrow"),
            "expirationTimestamp: 'tomorrow' is not an RFC 3339",
        ),
        (credential(token=5), "status.token must be a string"),
    ]
    for output, message in cases:
        with pytest.raises(ExecConfigError, match=message):
            parse_exec_credential(output, config)


def script(tmp_path: Path, body: str) -> Path:
    """A plugin: Python that sees `info` (KUBERNETES_EXEC_INFO), `count` (its run number) and `os`."""
    path = tmp_path / "plugin.py"
    path.write_text(
        "import json, os, sys\n"
        f"counter = {str(tmp_path / 'runs')!r}\n"
        "count = int(open(counter).read()) + 1 if os.path.exists(counter) else 1\n"
        "open(counter, 'w').write(str(count))\n"
        "info = json.loads(os.environ['KUBERNETES_EXEC_INFO'])\n" + body
    )
    return path


def plugin_config(path: Path, **kwargs: Any) -> ExecConfig:
    defaults: dict[str, Any] = {"api_version": V1, "interactive_mode": "Never", "where": WHERE}
    return ExecConfig(command=sys.executable, args=(str(path),), **{**defaults, **kwargs})


async def test_credentials_are_cached_until_they_expire_and_refreshed_after_a_401(tmp_path: Path) -> None:
    path = script(
        tmp_path,
        "print(json.dumps({'apiVersion': info['apiVersion'], 'kind': 'ExecCredential', 'status': "
        "{'token': f'token-{count}', 'expirationTimestamp': f'2030-01-01T00:0{count}:00Z'}}))\n",
    )
    now = [1893456000.0]  # 2030-01-01T00:00:00Z; run n expires n minutes later
    plugin = ExecPlugin(plugin_config(path), clock=lambda: now[0])
    first = await plugin.credential()
    assert first.token == "token-1"
    assert (await plugin.credential()).token == "token-1"  # cached
    now[0] = 1893456090.0  # past the first expirationTimestamp
    second = await plugin.credential()
    assert second.token == "token-2"
    assert plugin.rejected(first)  # a stale rejection does not throw away the newer credential
    assert (await plugin.credential()).token == "token-2"
    assert plugin.rejected(second)
    assert (await plugin.credential()).token == "token-3"
    assert plugin.runs == 3


async def test_concurrent_callers_share_one_run(tmp_path: Path) -> None:
    path = script(
        tmp_path,
        "import time; time.sleep(0.3)\n"
        "print(json.dumps({'apiVersion': info['apiVersion'], 'kind': 'ExecCredential', 'status': "
        "{'token': f'token-{count}'}}))\n",
    )
    plugin = ExecPlugin(plugin_config(path))
    tokens = {c.token for c in await asyncio.gather(*(plugin.credential() for _ in range(5)))}
    assert tokens == {"token-1"}
    assert (tmp_path / "runs").read_text() == "1"


async def test_env_args_and_cluster_info_reach_the_plugin(tmp_path: Path) -> None:
    path = script(
        tmp_path,
        "json.dump({'info': info, 'env': os.environ.get('PLUGIN_MODE'), 'argv': sys.argv[1:],"
        " 'stdin': sys.stdin.read()}, open(os.path.join(os.path.dirname(counter), 'seen'), 'w'))\n"
        "print(json.dumps({'apiVersion': info['apiVersion'], 'kind': 'ExecCredential',"
        " 'status': {'token': 't'}}))\n",
    )
    cluster = cluster_info(
        {
            "server": "https://127.0.0.1:6443",
            "tls-server-name": "kube",
            "extensions": [{"name": "client.authentication.k8s.io/exec", "extension": {"audience": "x"}}],
        },
        b"PEM",
    )
    config = plugin_config(
        path, api_version=V1BETA1, env=(("PLUGIN_MODE", "test"),), provide_cluster_info=True
    )
    config = ExecConfig(**{**config.__dict__, "args": (*config.args, "--region", "eu")})
    await ExecPlugin(config, cluster).credential()
    seen = json.loads((tmp_path / "seen").read_text())
    assert seen["env"] == "test"
    assert seen["argv"] == ["--region", "eu"]
    assert seen["stdin"] == ""  # not interactive: stdin is closed
    assert seen["info"] == {
        "apiVersion": V1BETA1,
        "kind": "ExecCredential",
        "spec": {
            "interactive": False,
            "cluster": {
                "server": "https://127.0.0.1:6443",
                "tls-server-name": "kube",
                "certificate-authority-data": "UEVN",
                "config": {"audience": "x"},
            },
        },
    }


async def test_failures_name_the_command_and_carry_stderr(tmp_path: Path) -> None:
    failing = script(tmp_path, "print('token expired, run aws sso login', file=sys.stderr); sys.exit(3)\n")
    with pytest.raises(
        ExecPluginError,
        match=r"exec plugin .* \(/k: users\[0\].user.exec\) exited with 3: token expired, run aws sso login",
    ):
        await ExecPlugin(plugin_config(failing)).credential()
    hanging = script(tmp_path, "import time; time.sleep(30)\n")
    with pytest.raises(ExecPluginError, match=r"did not answer within 0.5 s"):
        await ExecPlugin(plugin_config(hanging), timeout=0.5).credential()
    absent = ExecConfig(
        command=str(tmp_path / "no-such-plugin"),
        api_version=V1,
        interactive_mode="Never",
        install_hint="install it with brew",
        where=WHERE,
    )
    with pytest.raises(
        ExecPluginError,
        match=r"no-such-plugin' .* cannot be started: No such file or directory; install it with brew",
    ):
        await ExecPlugin(absent).credential()
    garbage = script(tmp_path, "print('hello')\n")
    with pytest.raises(ExecPluginError, match=r"answered no JSON ExecCredential"):
        await ExecPlugin(plugin_config(garbage)).credential()


async def test_interactive_modes(tmp_path: Path) -> None:
    path = script(
        tmp_path,
        "print(json.dumps({'apiVersion': info['apiVersion'], 'kind': 'ExecCredential', 'status': "
        "{'token': str(info['spec']['interactive'])}}))\n",
    )
    always = plugin_config(path, interactive_mode="Always")
    with pytest.raises(
        ExecPluginError, match=r"exec.interactiveMode is Always but standard input is not a terminal"
    ):
        await ExecPlugin(always, stdin_is_terminal=lambda: False).credential()
    if_available = plugin_config(path, interactive_mode="IfAvailable")
    assert (await ExecPlugin(if_available, stdin_is_terminal=lambda: False).credential()).token == "False"
    never = plugin_config(path, interactive_mode="Never")
    assert (await ExecPlugin(never, stdin_is_terminal=lambda: True).credential()).token == "False"
