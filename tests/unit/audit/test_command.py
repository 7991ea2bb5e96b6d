"""The audit command without a cluster: flags, reads (against a fake client), output, exit codes."""

from __future__ import annotations

import io
import json
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import pytest

from incluster_ipam import cli
from incluster_ipam.audit import command
from incluster_ipam.audit.command import (
    EXIT_ERROR,
    Snapshot,
    audit_main,
    read_cluster,
    render_json,
    render_text,
)
from incluster_ipam.audit.findings import audit
from incluster_ipam.kube import ApiError, KubeClient, ObjectList, Resource

from .objects import NOW, address, claim, ip_pool


def test_audit_flags_and_defaults() -> None:
    args = cli._parser().parse_args(["audit"])
    assert (args.kubeconfig, args.namespace, args.json, args.grace_seconds) == (None, None, False, 30.0)
    args = cli._parser().parse_args(
        ["audit", "--kubeconfig", "k", "--namespace", "ns", "--json", "--grace-seconds", "0"]
    )
    assert (args.kubeconfig, args.namespace, args.json, args.grace_seconds) == (Path("k"), "ns", True, 0.0)


@pytest.mark.parametrize("bad", [["--grace-seconds", "-1"], ["--grace-seconds", "soon"], ["--namespace", ""]])
def test_bad_flags_are_usage_errors_with_exit_2(bad: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main(["audit", *bad])
    assert exited.value.code == 2
    assert "usage:" in capsys.readouterr().err


def test_an_unreadable_kubeconfig_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["audit", "--kubeconfig", str(tmp_path / "missing")]) == EXIT_ERROR
    assert "incluster-ipam audit: error: cannot read kubeconfig" in capsys.readouterr().err


async def test_an_unreachable_apiserver_exits_2(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound but not listening: connections are refused
        kubeconfig = tmp_path / "kubeconfig"
        kubeconfig.write_text(
            json.dumps(
                {
                    "current-context": "c",
                    "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
                    "clusters": [{"name": "c", "cluster": {"server": f"https://127.0.0.1:{port}"}}],
                    "users": [{"name": "u", "user": {"token": "t"}}],
                }
            )
        )
        err = io.StringIO()
        assert await audit_main(kubeconfig, out=io.StringIO(), err=err) == EXIT_ERROR
    assert err.getvalue().startswith("incluster-ipam audit: error: ")


# ---- read_cluster against a fake client --------------------------------------------------------------------


@dataclass
class FakeConfig:
    server: str = "https://fake:6443"


@dataclass
class FakeClient:
    """Serves lists by (plural, version, namespace); `forbidden` lists answer 403, missing plurals 404."""

    objects: dict[str, list[dict[str, Any]]]
    versions: dict[str, list[str]]
    forbidden: set[tuple[str, str | None]] = field(default_factory=set)
    calls: list[tuple[str, str, str | None]] = field(default_factory=list)
    config: FakeConfig = field(default_factory=FakeConfig)

    async def server_versions(self, group: str, plural: str | None = None) -> list[str]:
        return self.versions.get(plural or "", [])

    async def list(self, resource: Resource, namespace: str | None = None, **_: Any) -> ObjectList:
        self.calls.append((resource.plural, resource.version, namespace))
        if (resource.plural, namespace) in self.forbidden:
            raise ApiError(403, "Forbidden", "no")
        if resource.plural not in self.objects:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        items = [
            {k: v for k, v in o.items() if k not in ("apiVersion", "kind")}  # list items may lack them
            for o in self.objects[resource.plural]
            if namespace is None or o["metadata"].get("namespace") == namespace
        ]
        return ObjectList(items, "1")


def fake(**kwargs: Any) -> KubeClient:
    return cast(KubeClient, FakeClient(**kwargs))


async def test_reads_the_newest_contract_and_v1alpha2_pools_and_notes_missing_kinds() -> None:
    client = FakeClient(
        objects={
            "ipaddressclaims": [claim("c", "ns", "pool")],
            "ipaddresses": [address("c", "ns", "10.0.0.5", "pool")],
            "inclusterippools": [ip_pool("pool", "ns", ["10.0.0.0/24"], 24)],
            "globalinclusterippools": [],
        },
        versions={"ipaddressclaims": ["v1beta1", "v1beta2"]},
    )
    snapshot = await read_cluster(cast(KubeClient, client))
    assert snapshot.contract == "v1beta2"
    assert ("ipaddressclaims", "v1beta2", None) in client.calls
    assert ("ipaddresses", "v1beta2", None) in client.calls
    assert ("inclusterippools", "v1alpha2", None) in client.calls
    assert [p["kind"] for p in snapshot.pools] == ["InClusterIPPool"]  # kind restored on list items
    assert snapshot.claims[0]["kind"] == "IPAddressClaim"
    assert snapshot.clusters is None
    assert snapshot.notes == [
        "InClusterPrefixPool is not installed (no inclusterprefixpools.ipam.cluster.x-k8s.io v1alpha2)",
        "GlobalInClusterPrefixPool is not installed "
        "(no globalinclusterprefixpools.ipam.cluster.x-k8s.io v1alpha2)",
        "Cluster API core is not installed: Cluster pauses were not considered",
    ]


async def test_v1beta1_only_clusters_are_read_in_v1beta1() -> None:
    client = FakeClient(
        objects={"ipaddressclaims": [], "ipaddresses": [], "clusters": []},
        versions={"ipaddressclaims": ["v1beta1"], "clusters": ["v1beta1"]},
    )
    snapshot = await read_cluster(cast(KubeClient, client))
    assert snapshot.contract == "v1beta1"
    assert ("ipaddresses", "v1beta1", None) in client.calls
    assert ("clusters", "v1beta1", None) in client.calls
    assert snapshot.clusters == []


async def test_without_cluster_api_there_is_no_contract_to_read() -> None:
    with pytest.raises(command.NoContractError):
        await read_cluster(fake(objects={}, versions={}))


async def test_a_namespaced_read_falls_back_when_other_namespaces_are_forbidden() -> None:
    objects = {
        "ipaddressclaims": [claim("c", "ns", "pool")],
        "ipaddresses": [address("a", "ns", "10.0.0.5", "pool"), address("b", "other", "10.0.0.6", "pool")],
        "inclusterippools": [],
    }
    versions = {"ipaddressclaims": ["v1beta2"]}
    allowed = FakeClient(objects=objects, versions=versions)
    snapshot = await read_cluster(cast(KubeClient, allowed), "ns")
    assert snapshot.global_usage_complete
    assert [a["metadata"]["name"] for a in snapshot.addresses] == ["a", "b"]
    assert ("ipaddressclaims", "v1beta2", "ns") in allowed.calls
    denied = FakeClient(objects=objects, versions=versions, forbidden={("ipaddresses", None)})
    snapshot = await read_cluster(cast(KubeClient, denied), "ns")
    assert not snapshot.global_usage_complete
    assert [a["metadata"]["name"] for a in snapshot.addresses] == ["a"]


async def test_other_api_errors_propagate() -> None:
    client = fake(
        objects={"ipaddressclaims": [], "ipaddresses": []},
        versions={"ipaddressclaims": ["v1beta2"]},
        forbidden={("ipaddressclaims", None)},
    )
    with pytest.raises(ApiError):
        await read_cluster(client)


# ---- output ------------------------------------------------------------------------------------------------


def sample() -> tuple[Snapshot, Any]:
    snapshot = Snapshot(
        server="https://fake:6443",
        contract="v1beta2",
        pools=[ip_pool("pool", "ns", ["10.0.0.10-10.0.0.20"], 24)],
        claims=[claim("w", "ns", "pool")],
        addresses=[address("x", "ns", "10.0.0.99", "pool", claim="w")],
        notes=["InClusterPrefixPool is not installed"],
    )
    report = audit(snapshot.pools, snapshot.claims, snapshot.addresses, now=NOW)
    return snapshot, report


def test_text_report() -> None:
    snapshot, report = sample()
    text = render_text(report, snapshot, None)
    assert text.splitlines() == [
        "audit of https://fake:6443 (all namespaces, ipam.cluster.x-k8s.io/v1beta2): 1 pools, 1 claims, "
        "1 IPAddresses",
        "out-of-range            IPAddress ns/x is out of range: 10.0.0.99 is not allocatable in "
        "InClusterIPPool ns/pool",
        "orphaned-address        IPAddress ns/x (10.0.0.99, InClusterIPPool ns/pool) is orphaned: its claim "
        "IPAddressClaim ns/w is unbound and expects IPAddress ns/w",
        "unbound-claim           IPAddressClaim ns/w is unbound although InClusterIPPool ns/pool has 11 free "
        "addresses",
        "note: InClusterPrefixPool is not installed",
        "3 findings: 1 out-of-range, 1 orphaned-address, 1 unbound-claim",
    ]
    clean = audit([], [], [], now=NOW)
    assert render_text(clean, Snapshot("https://s", "v1beta1"), "ns").splitlines() == [
        "audit of https://s (namespace ns, ipam.cluster.x-k8s.io/v1beta1): 0 pools, 0 claims, 0 IPAddresses",
        "no findings",
    ]


def test_json_report() -> None:
    snapshot, report = sample()
    body = json.loads(render_json(report, snapshot, "ns", 5.0))
    assert body["clean"] is False
    assert body["contract"] == "ipam.cluster.x-k8s.io/v1beta2"
    assert (body["namespace"], body["graceSeconds"]) == ("ns", 5.0)
    assert body["scanned"] == {"pools": 1, "claims": 1, "ipAddresses": 1}
    assert body["counts"] == {"out-of-range": 1, "orphaned-address": 1, "unbound-claim": 1}
    assert [f["kind"] for f in body["findings"]] == ["out-of-range", "orphaned-address", "unbound-claim"]
    assert body["findings"][2]["objects"][0] == {"kind": "IPAddressClaim", "namespace": "ns", "name": "w"}
    assert body["notes"] == ["InClusterPrefixPool is not installed"]
