"""`kubectl-ipam` and `kubectl ipam` against what `make run` starts, claims bound by the real provider."""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path

import yaml

from incluster_ipam.api.constants import GROUP
from incluster_ipam.kube import Request, Resource
from incluster_ipam.kube.resources import SERVICE_ACCOUNTS

from ..support import eventually
from .conftest import ADDRESSES, GLOBAL_IP_POOLS, IP_POOLS, DevCluster, Fleet, Ran


def rows(text: str) -> dict[str, list[str]]:
    """Table rows by their NAME cell (the first cell that is not a namespace)."""
    lines = text.splitlines()
    header = lines[0].split()
    at = header.index("NAME")
    return {line.split()[at]: line.split() for line in lines[1:] if line.strip()}


async def test_pools_in_a_namespace_count_what_the_provider_allocated(
    dev_cluster: DevCluster, fleet: Fleet
) -> None:
    ran = await dev_cluster.plugin("pools", "-n", fleet.ns)
    assert (ran.code, ran.err) == (0, "")
    lines = ran.out.splitlines()
    assert lines[0].split() == ["NAME", "KIND", "FAMILY", "TOTAL", "USED", "FREE", "USE"]
    table = rows(ran.out)
    assert set(table) == {"workers", fleet.global_pool}  # not the other namespace's pool
    # 10.77.0.10-20: 11 addresses, three claims.
    assert table["workers"][:7] == ["workers", "InClusterIPPool", "IPv4", "11", "3", "8", "27%"]
    assert table["workers"][7].startswith("[")
    assert table["workers"][-1].endswith("]")
    assert table[fleet.global_pool][:7] == [
        fleet.global_pool,
        "GlobalInClusterIPPool",
        "IPv6",
        "255",
        "1",
        "254",
        "<1%",
    ]
    assert all(len(line) <= 120 for line in lines)

    # The same numbers as the provider's own status, in JSON.
    ran = await dev_cluster.plugin("pools", "-n", fleet.ns, "-o", "json")
    assert ran.code == 0
    body = json.loads(ran.out)
    assert body["namespace"] == fleet.ns
    workers = next(p for p in body["pools"] if p["name"] == "workers")
    assert (workers["total"], workers["used"], workers["free"], workers["outOfRange"]) == (11, 3, 8, 0)

    async def status_agrees() -> bool:
        pool = await dev_cluster.client.get(IP_POOLS, "workers", fleet.ns)
        counts = (pool.get("status") or {}).get("ipAddresses") or {}
        return counts.get("used") == 3 and counts == {"total": 11, "used": 3, "free": 8, "outOfRange": 0}

    await eventually(status_agrees, 20.0, "the pool status to agree with kubectl ipam")
    shared = await dev_cluster.client.get(GLOBAL_IP_POOLS, fleet.global_pool)
    assert shared["metadata"]["name"] == fleet.global_pool


async def test_all_namespaces_and_the_context_namespace(
    dev_cluster: DevCluster, fleet: Fleet, tmp_path: Path
) -> None:
    ran = await dev_cluster.plugin("pools", "-A")
    assert ran.code == 0
    header = ran.out.splitlines()[0].split()
    assert header[:3] == ["NAMESPACE", "NAME", "KIND"]
    found = {(line.split()[0], line.split()[1]) for line in ran.out.splitlines()[1:]}
    assert {(fleet.ns, "workers"), (fleet.other_ns, "edge"), ("-", fleet.global_pool)} <= found

    # A kubeconfig whose current context sits in the other namespace, and a second context in ours.
    config = yaml.safe_load(dev_cluster.kubeconfig.read_text())
    context = config["contexts"][0]
    config["contexts"] = [
        {"name": "edge", "context": {**context["context"], "namespace": fleet.other_ns}},
        {"name": "workers", "context": {**context["context"], "namespace": fleet.ns}},
    ]
    config["current-context"] = "edge"
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(yaml.safe_dump(config))
    ran = await dev_cluster.plugin("pools", "-o", "json", env={"KUBECONFIG": str(kubeconfig)})
    assert ran.code == 0
    assert {p["name"] for p in json.loads(ran.out)["pools"]} == {"edge", fleet.global_pool}
    ran = await dev_cluster.plugin(
        "--kubeconfig", str(kubeconfig), "--context", "workers", "pools", kubeconfig=False
    )
    assert ran.code == 0
    assert "workers" in rows(ran.out)
    ran = await dev_cluster.plugin(
        "pools", "--context", "nope", "--kubeconfig", str(kubeconfig), kubeconfig=False
    )
    assert ran.code == 2
    assert "no context named 'nope'" in ran.err


async def test_show_lists_ranges_free_ranges_and_holders(dev_cluster: DevCluster, fleet: Fleet) -> None:
    ran = await dev_cluster.plugin("show", "workers", "-n", fleet.ns, env={"COLUMNS": "100"})
    assert (ran.code, ran.err) == (0, "")
    held = sorted(ipaddress.IPv4Address(fleet.addresses[c]) for c in ("vm-1-eth0", "vm-2-eth0", "lb"))
    assert held == [ipaddress.IPv4Address(f"10.77.0.{i}") for i in (10, 11, 12)]  # lowest free first
    lines = ran.out.splitlines()
    assert lines[0] == f"InClusterIPPool {fleet.ns}/workers (IPv4, /24, gateway 10.77.0.1)"
    assert lines[1].startswith("usage:   3 used, 8 free of 11  [")
    assert lines[2] == "ranges:  10.77.0.10-10.77.0.20"
    assert lines[3] == "free:    10.77.0.13-10.77.0.20"
    table = lines[lines.index("") + 1 :]
    assert table[0].split() == ["ADDRESS", "NAMESPACE", "IPADDRESS", "CLAIM", "CLUSTER"]
    by_claim = {line.split()[3]: line.split() for line in table[1:]}
    assert by_claim["vm-2-eth0"] == [fleet.addresses["vm-2-eth0"], fleet.ns, "vm-2-eth0", "vm-2-eth0", "prod"]
    assert set(by_claim) == {"vm-1-eth0", "vm-2-eth0", "lb"}

    ran = await dev_cluster.plugin(
        "show", f"globalinclusterippool/{fleet.global_pool}", "-n", fleet.ns, "-o", "json"
    )
    assert ran.code == 0
    body = json.loads(ran.out)
    assert (body["kind"], body["total"], body["used"]) == ("GlobalInClusterIPPool", 255, 1)
    assert body["ranges"] == ["2001:db8:77::1-2001:db8:77::ff"]
    assert body["freeRanges"] == ["2001:db8:77::2-2001:db8:77::ff"]
    assert [(h["address"], h["claim"]) for h in body["holdings"]] == [("2001:db8:77::1", "vm-1-eth1")]

    ran = await dev_cluster.plugin("show", "edge", "-n", fleet.ns)
    assert ran.code == 1
    assert f"no pool 'edge' in namespace {fleet.ns}" in ran.err
    ran = await dev_cluster.plugin("show", "flavour/edge", "-n", fleet.ns)
    assert ran.code == 2
    assert "'flavour' is not a pool kind" in ran.err


async def test_who_walks_the_owner_chain_to_the_machine_and_cluster(
    dev_cluster: DevCluster, fleet: Fleet
) -> None:
    address = fleet.addresses["vm-1-eth0"]
    ran = await dev_cluster.plugin("who", address)
    assert (ran.code, ran.err) == (0, "")
    assert ran.out.splitlines() == [
        f"{address} is held by IPAddress {fleet.ns}/vm-1-eth0 of InClusterIPPool {fleet.ns}/workers",
        f"  claim:     IPAddressClaim {fleet.ns}/vm-1-eth0",
        f"  owned by:  ConfigMap {fleet.ns}/vm-1",
        f"  owned by:  Machine {fleet.ns}/prod-md-0-x7k2p",
        f"  machine:   Machine {fleet.ns}/prod-md-0-x7k2p",
        f"  cluster:   Cluster {fleet.ns}/prod",
    ]

    # An IPv6 address in another spelling finds the same IPAddress; JSON for scripts.
    v6 = ipaddress.IPv6Address(fleet.addresses["vm-1-eth1"]).exploded.upper()
    ran = await dev_cluster.plugin("who", v6, "-o", "json")
    assert ran.code == 0
    body = json.loads(ran.out)
    assert body["address"] == "2001:db8:77::1"
    (holder,) = body["holders"]
    assert holder["ipAddress"]["name"] == "vm-1-eth1"
    assert holder["pool"] == f"GlobalInClusterIPPool {fleet.global_pool}"
    assert [o["kind"] for o in holder["owners"]] == ["ConfigMap", "Machine"]
    assert holder["machine"]["name"] == "prod-md-0-x7k2p"
    assert (holder["cluster"]["name"], holder["cluster"]["state"]) == ("prod", "found")


async def test_who_prints_what_is_known_when_an_owner_is_gone(dev_cluster: DevCluster, fleet: Fleet) -> None:
    ran = await dev_cluster.plugin("who", fleet.addresses["vm-2-eth0"], "-n", fleet.ns)
    assert ran.code == 0
    assert ran.out.splitlines()[2:] == [
        f"  owned by:  ConfigMap {fleet.ns}/vm-gone (not found)",
        "  machine:   - (no Machine among the owners)",
        f"  cluster:   Cluster {fleet.ns}/prod",  # from the claim's cluster-name label
    ]
    ran = await dev_cluster.plugin("who", fleet.addresses["lb"])
    assert ran.code == 0
    assert ran.out.splitlines()[-2:] == [
        "  machine:   - (no Machine among the owners)",
        "  cluster:   - (no Cluster is named)",
    ]

    ran = await dev_cluster.plugin("who", "10.77.0.20")
    assert ran.code == 1
    assert (
        ran.out.strip() == f"no IPAddress holds 10.77.0.20; it is free in InClusterIPPool {fleet.ns}/workers"
    )
    ran = await dev_cluster.plugin("who", "10.77.0.010")
    assert ran.code == 2
    assert "ADDRESS '10.77.0.010': not a valid IP address" in ran.err


async def test_audit_through_the_plugin(dev_cluster: DevCluster, fleet: Fleet) -> None:
    ran = await dev_cluster.plugin("audit", "-n", fleet.ns)
    assert ran.code == 0, ran.out + ran.err
    assert ran.out.splitlines()[-1] == "no findings"
    assert f"(namespace {fleet.ns}," in ran.out.splitlines()[0]

    # An IPAddress whose claim does not exist: the audit (the same one as `incluster-ipam audit`) finds it.
    await dev_cluster.client.create(
        ADDRESSES,
        {
            "apiVersion": ADDRESSES.api_version,
            "kind": "IPAddress",
            "metadata": {"name": "stray"},
            "spec": {
                "address": "192.168.50.6",
                "prefix": 24,
                "claimRef": {"name": "ghost"},
                "poolRef": {"apiGroup": ADDRESSES.group, "kind": "InClusterIPPool", "name": "edge"},
            },
        },
        fleet.other_ns,
    )
    ran = await dev_cluster.plugin("audit", "-n", fleet.other_ns, "--grace-seconds", "0", "-o", "json")
    assert ran.code == 1, ran.out + ran.err
    body = json.loads(ran.out)
    assert body["counts"] == {"orphaned-address": 1}
    assert body["findings"][0]["objects"][0]["name"] == "stray"
    ran = await dev_cluster.plugin("audit", "-A", "--grace-seconds", "0")
    assert ran.code == 1
    assert f"IPAddress {fleet.other_ns}/stray" in ran.out
    assert "(all namespaces," in ran.out.splitlines()[0]


async def test_kubectl_finds_the_plugin_on_path(dev_cluster: DevCluster, fleet: Fleet) -> None:
    version = await dev_cluster.run(dev_cluster.kubectl, "version", "--client")
    assert version.code == 0
    assert "v1.37" in version.out
    listed = await dev_cluster.run(dev_cluster.kubectl, "plugin", "list")
    assert str(Path(dev_cluster.kubectl).parent) not in listed.out
    assert "kubectl-ipam" in listed.out
    ran = await dev_cluster.run(dev_cluster.kubectl, "ipam", "pools", "-n", fleet.ns)
    assert (ran.code, ran.err) == (0, "")
    assert rows(ran.out)["workers"][:6] == ["workers", "InClusterIPPool", "IPv4", "11", "3", "8"]
    ran = await dev_cluster.run(
        dev_cluster.kubectl, "ipam", "who", fleet.addresses["vm-1-eth0"], "-o", "json"
    )
    assert ran.code == 0
    assert json.loads(ran.out)["holders"][0]["machine"]["name"] == "prod-md-0-x7k2p"
    ran = await dev_cluster.run(dev_cluster.kubectl, "ipam", "show", "workers", "-n", fleet.ns)
    assert ran.code == 0
    assert "free:    10.77.0.13-10.77.0.20" in ran.out


CLUSTER_ROLES = Resource("rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole", False)
CLUSTER_ROLE_BINDINGS = Resource(
    "rbac.authorization.k8s.io", "v1", "clusterrolebindings", "ClusterRoleBinding", False
)


async def viewer_kubeconfig(d: DevCluster, namespace: str, path: Path) -> Path:
    """A kubeconfig for a ServiceAccount that may read IPAM objects, ConfigMaps and Clusters, not Machines."""
    name = f"ipam-viewer-{namespace}"
    await d.client.create(
        SERVICE_ACCOUNTS,
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "viewer"}},
        namespace,
    )
    read = ["get", "list"]
    rules = [
        {"apiGroups": [GROUP], "resources": ["*"], "verbs": read},
        {"apiGroups": [""], "resources": ["configmaps"], "verbs": read},
        {"apiGroups": ["cluster.x-k8s.io"], "resources": ["clusters"], "verbs": read},
    ]
    role = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": name}}
    await d.client.create(CLUSTER_ROLES, {**role, "rules": rules})
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
        "subjects": [{"kind": "ServiceAccount", "name": "viewer", "namespace": namespace}],
    }
    await d.client.create(CLUSTER_ROLE_BINDINGS, binding)
    token_request = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {}}
    answer = await d.client.request(
        Request(
            "POST",
            f"/api/v1/namespaces/{namespace}/serviceaccounts/viewer/token",
            json.dumps(token_request).encode(),
            "application/json",
        )
    )
    return write_token_kubeconfig(d.kubeconfig, answer["status"]["token"], path)


def write_token_kubeconfig(admin: Path, token: str, path: Path) -> Path:
    """The admin kubeconfig with its user replaced by a bearer token."""
    config = yaml.safe_load(admin.read_text())
    config["users"] = [{"name": "viewer", "user": {"token": token}}]
    config["contexts"][0]["context"]["user"] = "viewer"
    path.write_text(yaml.safe_dump(config))
    return path


async def test_who_shows_a_forbidden_owner_and_goes_on(
    dev_cluster: DevCluster, fleet: Fleet, tmp_path: Path
) -> None:
    kubeconfig = await viewer_kubeconfig(dev_cluster, fleet.ns, tmp_path / "viewer")
    address = fleet.addresses["vm-1-eth0"]

    async def reads_as_viewer() -> Ran | None:  # RBAC takes effect within a moment
        ran = await dev_cluster.plugin("who", address, "-n", fleet.ns, env={"KUBECONFIG": str(kubeconfig)})
        return ran if ran.code == 0 and "forbidden" in ran.out else None

    ran = await eventually(reads_as_viewer, 20.0, "the viewer's RBAC to take effect")
    lines = ran.out.splitlines()
    assert lines[2] == f"  owned by:  ConfigMap {fleet.ns}/vm-1"
    assert lines[3].startswith(f"  owned by:  Machine {fleet.ns}/prod-md-0-x7k2p (forbidden: ")
    assert 'cannot get resource "machines"' in lines[3]
    assert (
        lines[4] == f"  machine:   Machine {fleet.ns}/prod-md-0-x7k2p (forbidden)"
    )  # known by its reference
    assert lines[5] == "  cluster:   - (no Cluster is named)"
