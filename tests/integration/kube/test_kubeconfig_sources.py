"""Laptop kubeconfigs against the real apiserver: exec plugins handing out real ServiceAccount tokens
(cached until they expire, run again after a 401), proxy-url and HTTPS_PROXY through a loopback CONNECT
proxy, and token and client certificate files re-read when they are rotated."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from incluster_ipam.devcluster import ControlPlane
from incluster_ipam.kube import NAMESPACES, ApiError, KubeClient, load_kubeconfig

from .identities import (
    ConnectProxy,
    exec_user,
    kubeconfig,
    runs,
    service_account_token,
    whoami,
    write_plugin,
    write_yaml,
)


@pytest.fixture
async def admin(control_plane: ControlPlane) -> AsyncIterator[KubeClient]:
    async with KubeClient.from_kubeconfig(control_plane.kubeconfig_path) as client:
        yield client


async def test_exec_token_is_cached_until_it_expires_then_the_plugin_runs_again(
    control_plane: ControlPlane, admin: KubeClient, tmp_path: Path
) -> None:
    user, token = await service_account_token(admin)
    plugin = write_plugin(tmp_path / "plugin", [token], expires_in=2.0)
    path = write_yaml(tmp_path / "kubeconfig", kubeconfig(control_plane, exec_user(plugin)))
    async with KubeClient.from_kubeconfig(path) as client:
        assert await whoami(client) == user
        assert await whoami(client) == user
        assert runs(tmp_path / "plugin") == 1  # cached while valid
        await asyncio.sleep(2.2)
        assert await whoami(client) == user
        assert runs(tmp_path / "plugin") == 2  # expired: run again
    info = json.loads((tmp_path / "plugin" / "exec-info.json").read_text())
    assert info == {
        "apiVersion": "client.authentication.k8s.io/v1",
        "kind": "ExecCredential",
        "spec": {"interactive": False},
    }


async def test_a_401_runs_the_plugin_once_more_and_the_request_succeeds(
    control_plane: ControlPlane, admin: KubeClient, tmp_path: Path
) -> None:
    user, token = await service_account_token(admin)
    plugin = write_plugin(tmp_path / "plugin", ["not-a-valid-token", token])
    path = write_yaml(
        tmp_path / "kubeconfig", kubeconfig(control_plane, exec_user(plugin, provideClusterInfo=True))
    )
    async with KubeClient.from_kubeconfig(path) as client:
        assert await whoami(client) == user
        assert runs(tmp_path / "plugin") == 2
    cluster = json.loads((tmp_path / "plugin" / "exec-info.json").read_text())["spec"]["cluster"]
    assert cluster["server"] == control_plane.server
    assert "certificate-authority-data" in cluster

    # A plugin that keeps answering with a rejected token: one refresh, then the 401 is the caller's.
    always_bad = write_plugin(tmp_path / "bad", ["not-a-valid-token"])
    path = write_yaml(tmp_path / "bad.yaml", kubeconfig(control_plane, exec_user(always_bad)))
    async with KubeClient.from_kubeconfig(path) as client:
        with pytest.raises(ApiError) as info:
            await whoami(client)
    assert info.value.is_unauthorized
    assert runs(tmp_path / "bad") == 2


async def test_proxy_url_carries_the_traffic(control_plane: ControlPlane, tmp_path: Path) -> None:
    admin_user = {
        "client-certificate": str(control_plane.admin_cert_file),
        "client-key": str(control_plane.admin_key_file),
    }
    async with ConnectProxy().running() as proxy:
        data = kubeconfig(control_plane, admin_user, **{"proxy-url": proxy.url})
        path = write_yaml(tmp_path / "kubeconfig", data)
        async with KubeClient.from_kubeconfig(path) as client:
            await client.list(NAMESPACES)
        host_port = control_plane.server.removeprefix("https://")
        assert proxy.targets
        assert set(proxy.targets) == {host_port}


async def test_https_proxy_from_the_environment_and_loopback_going_direct(
    control_plane: ControlPlane, tmp_path: Path
) -> None:
    admin_user = {
        "client-certificate": str(control_plane.admin_cert_file),
        "client-key": str(control_plane.admin_key_file),
    }
    port = control_plane.server.rsplit(":", 1)[1]
    async with ConnectProxy().running() as proxy:
        # A name only the proxy knows (it sends every tunnel to 127.0.0.1): the traffic must go through it.
        remote = kubeconfig(
            control_plane,
            admin_user,
            server=f"https://kube-apiserver.invalid:{port}",
            **{"tls-server-name": "localhost"},
        )
        config = load_kubeconfig(write_yaml(tmp_path / "remote", remote))
        env = {"HTTPS_PROXY": proxy.url, "NO_PROXY": "10.0.0.0/8,.cluster.local"}
        async with KubeClient(config, env=env) as client:
            assert await whoami(client) == "incluster-ipam-admin"
        assert proxy.targets == [f"kube-apiserver.invalid:{port}"]

        # A loopback server never goes through an environment proxy (as with kubectl).
        local = load_kubeconfig(write_yaml(tmp_path / "local", kubeconfig(control_plane, admin_user)))
        async with KubeClient(local, env={"HTTPS_PROXY": proxy.url}) as client:
            await client.list(NAMESPACES)
        assert len(proxy.targets) == 1


async def test_a_rotated_token_file_is_re_read(
    control_plane: ControlPlane, admin: KubeClient, tmp_path: Path
) -> None:
    first_user, first = await service_account_token(admin)
    second_user, second = await service_account_token(admin)
    token_file = tmp_path / "token"
    token_file.write_text(first)
    path = write_yaml(tmp_path / "kubeconfig", kubeconfig(control_plane, {"tokenFile": "token"}))
    async with KubeClient.from_kubeconfig(path, file_check_seconds=0.2) as client:
        assert await whoami(client) == first_user
        replacement = tmp_path / "token.new"
        replacement.write_text(second)
        replacement.rename(token_file)  # as kubelet's atomic writer swaps it
        await asyncio.sleep(0.3)
        assert await whoami(client) == second_user


async def test_rotated_client_certificate_files_are_re_read(
    control_plane: ControlPlane, tmp_path: Path
) -> None:
    alice, bob = control_plane.ca.client("alice"), control_plane.ca.client("bob")
    cert, key = tmp_path / "client.crt", tmp_path / "client.key"
    cert.write_bytes(alice.cert_pem)
    key.write_bytes(alice.key_pem)
    user = {"client-certificate": "client.crt", "client-key": "client.key"}
    path = write_yaml(tmp_path / "kubeconfig", kubeconfig(control_plane, user))
    async with KubeClient.from_kubeconfig(path, file_check_seconds=0.2) as client:
        assert await whoami(client) == "alice"
        cert.write_bytes(bob.cert_pem)
        key.write_bytes(bob.key_pem)
        await asyncio.sleep(0.3)
        assert await whoami(client) == "bob"
