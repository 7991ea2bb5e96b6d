"""`incluster-ipam audit` run as an operator runs it from a laptop: with an exec credential plugin in the
kubeconfig (a real ServiceAccount token), and with $KUBECONFIG naming two files that kubectl would merge."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

from incluster_ipam.devcluster import ControlPlane
from tests.integration.kube.identities import (
    exec_user,
    kubeconfig,
    runs,
    service_account_token,
    write_plugin,
    write_yaml,
)

from .conftest import Planter
from .test_audit import CLI


async def audit(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        str(CLI),
        "audit",
        *args,
        "--grace-seconds",
        "0",
        "--json",
        env={**os.environ, **(env or {})},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, stdout.decode(), stderr.decode()


async def clean_namespace(planter: Planter) -> str:
    ns = await planter.namespace()
    await planter.ip_pool(ns, "pool", addresses=["10.3.0.10-10.3.0.11"], prefix=24)
    await planter.bound(ns, "m1", "10.3.0.10", "pool")
    return ns


async def test_audit_with_an_exec_plugin_kubeconfig(
    planter: Planter, audit_plane: ControlPlane, tmp_path: Path
) -> None:
    ns = await clean_namespace(planter)
    _, token = await service_account_token(planter.client, cluster_admin=True)
    plane = audit_plane
    plugin = write_plugin(tmp_path / "plugin", [token], expires_in=600)
    path = write_yaml(tmp_path / "kubeconfig", kubeconfig(plane, exec_user(plugin)))
    code, out, err = await audit("--kubeconfig", str(path), "--namespace", ns)
    assert code == 0, err
    body = json.loads(out)
    assert (body["clean"], body["scanned"]) == (True, {"pools": 1, "claims": 1, "ipAddresses": 1})
    assert runs(tmp_path / "plugin") == 1


async def test_audit_says_which_plugin_failed_and_why(
    planter: Planter, audit_plane: ControlPlane, tmp_path: Path
) -> None:
    script = tmp_path / "login.py"
    script.write_text(
        "import sys\nprint('session expired: run `cloud login`', file=sys.stderr)\nsys.exit(1)\n"
    )
    path = write_yaml(tmp_path / "kubeconfig", kubeconfig(audit_plane, exec_user(script)))
    code, out, err = await audit("--kubeconfig", str(path))
    assert code == 2
    assert out == ""
    assert "users[0].user.exec) exited with 1: session expired: run `cloud login`" in err, err


async def test_audit_merges_the_kubeconfig_files_of_KUBECONFIG(
    planter: Planter, audit_plane: ControlPlane, tmp_path: Path
) -> None:
    ns = await clean_namespace(planter)
    plane = audit_plane
    # The first file has the context and current-context and the real cluster; the second, a cluster of
    # the same name that must lose, and the user, whose relative certificate paths are its own.
    first = kubeconfig(plane, {})
    first["users"] = []
    first["contexts"][0]["context"]["namespace"] = ns
    second = kubeconfig(plane, {"client-certificate": "pki/admin.crt", "client-key": "pki/admin.key"})
    second["clusters"][0]["cluster"]["server"] = "https://127.0.0.1:1"
    second["contexts"] = [{"name": "other", "context": {"cluster": "test", "user": "me"}}]
    second["current-context"] = "other"
    (tmp_path / "b" / "pki").mkdir(parents=True)
    (tmp_path / "b" / "pki" / "admin.crt").write_bytes(plane.admin_cert_file.read_bytes())
    (tmp_path / "b" / "pki" / "admin.key").write_bytes(plane.admin_key_file.read_bytes())
    files = [write_yaml(tmp_path / "a" / "config", first), write_yaml(tmp_path / "b" / "config", second)]
    env = {"KUBECONFIG": os.pathsep.join(str(f) for f in files)}
    code, out, err = await audit("--namespace", ns, env=env)
    assert code == 0, err
    assert json.loads(out)["scanned"] == {"pools": 1, "claims": 1, "ipAddresses": 1}
