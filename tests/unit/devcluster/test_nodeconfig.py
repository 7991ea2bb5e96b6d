"""The real node's configuration: what keeps its traffic on this machine, and what this machine needs."""

from __future__ import annotations

import ipaddress
import tomllib
from pathlib import Path

import pytest

from incluster_ipam.devcluster.nodeconfig import (
    NODE_CONTROLLERS,
    RULE_COMMENT,
    SANDBOX_IMAGE,
    ContainerdPaths,
    KubeletFiles,
    NodeNetwork,
    apiserver_node_args,
    cni_config,
    containerd_config,
    firewall_rules,
    jumps_into_kube_chain,
    kube_proxy_config,
    kubelet_argv,
    kubelet_config,
    scheduler_argv,
    serving_hosts,
)

NET = NodeNetwork()
WORK = Path("/work dir/node")


def paths() -> ContainerdPaths:
    return ContainerdPaths(
        root=WORK / "root",
        state=WORK / "state",
        socket=WORK / "c.sock",
        runc_root=WORK / "runc",
        cni_conf_dir=WORK / "net.d",
    )


def kubelet_files() -> KubeletFiles:
    return KubeletFiles(
        kubeconfig=WORK / "kubelet.kubeconfig",
        config=WORK / "kubelet.yaml",
        client_ca=WORK / "ca.crt",
        root_dir=WORK / "kubelet",
        pod_logs_dir=WORK / "pod-logs",
        resolv_conf=WORK / "resolv.conf",
        containerd_socket=WORK / "c.sock",
    )


def test_network_addresses() -> None:
    assert NET.gateway == "10.244.0.1"
    assert NET.kubernetes_service_ip == "10.0.0.1"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"bridge": "a-name-longer-than-15"}, "1-15 ASCII"),
        ({"bridge": ""}, "1-15 ASCII"),
        ({"pod_subnet": ipaddress.IPv4Network("10.0.0.0/16")}, "overlaps"),
        ({"pod_subnet": ipaddress.IPv4Network("10.244.0.0/30")}, "too small"),
    ],
)
def test_network_refuses_unusable_layouts(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        NodeNetwork(**kwargs)  # type: ignore[arg-type]


def test_containerd_config_is_toml_with_this_machines_settings() -> None:
    config = tomllib.loads(containerd_config(paths()))
    assert config["version"] == 2
    assert config["root"] == "/work dir/node/root"
    assert config["state"] == "/work dir/node/state"
    assert config["grpc"]["address"] == "/work dir/node/c.sock"
    cri = config["plugins"]["io.containerd.grpc.v1.cri"]
    # No CAP_SYS_RESOURCE here: without it every sandbox fails.
    assert cri["restrict_oom_score_adj"] is True
    # Cleanup finds network namespaces and containers under our own directories.
    assert cri["netns_mounts_under_state_dir"] is True
    runc = cri["containerd"]["runtimes"]["runc"]
    assert runc["runtime_type"] == "io.containerd.runc.v2"
    assert runc["options"] == {"SystemdCgroup": False, "Root": "/work dir/node/runc"}
    assert cri["sandbox_image"] == SANDBOX_IMAGE
    assert cri["cni"]["conf_dir"] == "/work dir/node/net.d"
    assert cri["stream_server_address"] == "127.0.0.1"
    assert config["metrics"]["address"] == ""


def test_cni_gives_pods_no_route_beyond_the_bridge() -> None:
    (bridge, _portmap) = cni_config(NET, WORK / "ipam")["plugins"]
    assert bridge["bridge"] == NET.bridge
    # The plugin must not take the gateway (it would switch on IP forwarding) nor masquerade.
    assert bridge["isGateway"] is False
    assert bridge["ipMasq"] is False
    ipam = bridge["ipam"]
    assert ipam["dataDir"] == "/work dir/node/ipam"
    # Only the Service range is routed, through the node's address: no default route.
    assert ipam["routes"] == [{"dst": "10.0.0.0/24", "gw": "10.244.0.1"}]
    (range_,) = ipam["ranges"][0]
    assert range_["subnet"] == "10.244.0.0/24"
    assert range_["gateway"] == NET.gateway
    # The node's own address is never handed to a pod.
    assert range_["rangeStart"] == "10.244.0.2"


def test_kubelet_config_for_cgroup_v1_and_no_outside_access() -> None:
    config = kubelet_config(NET, kubelet_files(), port=10250, healthz_port=10248)
    assert config["failCgroupV1"] is False
    assert config["cgroupDriver"] == "cgroupfs"
    assert config["cgroupsPerQOS"] is False
    assert config["address"] == NET.gateway
    assert config["healthzBindAddress"] == "127.0.0.1"
    assert config["readOnlyPort"] == 0
    assert config["authentication"]["anonymous"] == {"enabled": False}
    assert config["authorization"] == {"mode": "Webhook"}
    assert config["resolvConf"] == "/work dir/node/resolv.conf"
    assert config["containerRuntimeEndpoint"] == "unix:///work dir/node/c.sock"
    # Imported images could never be pulled again: no image garbage collection.
    assert config["imageGCHighThresholdPercent"] == 100
    assert config["syncFrequency"] == "10s"


def test_kubelet_argv_registers_the_node_on_the_bridge_address() -> None:
    argv = kubelet_argv(Path("/bin/kubelet"), kubelet_files(), NET)
    assert argv[0] == "/bin/kubelet"
    assert "--node-ip=10.244.0.1" in argv
    assert "--hostname-override=incluster-ipam-node" in argv
    assert "--root-dir=/work dir/node/kubelet" in argv


def test_scheduler_on_loopback_without_election() -> None:
    argv = scheduler_argv(Path("/bin/kube-scheduler"), WORK / "s.kubeconfig", port=4321)
    assert "--bind-address=127.0.0.1" in argv
    assert "--secure-port=4321" in argv
    assert "--leader-elect=false" in argv


def test_kube_proxy_leaves_the_host_alone() -> None:
    config = kube_proxy_config(NET, WORK / "p.kubeconfig", healthz_port=1, metrics_port=2)
    assert config["mode"] == "iptables"
    assert config["conntrack"]["maxPerCore"] == 0
    assert config["nodePortAddresses"] == ["10.244.0.1/32"]
    assert config["healthzBindAddress"] == "127.0.0.1:1"
    assert config["metricsBindAddress"] == "127.0.0.1:2"
    assert config["clusterCIDR"] == "10.244.0.0/24"


def test_firewall_drops_what_would_leave_the_bridge() -> None:
    (rule,) = firewall_rules(NET)
    assert rule[:6] == ["FORWARD", "-i", NET.bridge, "!", "-o", NET.bridge]
    assert rule[-2:] == ["-j", "DROP"]
    assert RULE_COMMENT in rule


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        ("-A FORWARD -m comment --comment x -j KUBE-FORWARD", True),
        ("-A OUTPUT -j KUBE-FIREWALL", True),
        ("-A KUBE-SERVICES -j KUBE-SVC-1", False),  # inside a chain that is flushed anyway
        ("-A FORWARD -i incl-ipam0 -j DROP", False),
        ("-N KUBE-FORWARD", False),
        ("-A FORWARD -j", False),
        ("-P FORWARD ACCEPT", False),
    ],
)
def test_jumps_into_kube_chain(rule: str, expected: bool) -> None:
    assert jumps_into_kube_chain(rule.split()) is expected


def test_apiserver_serves_a_node() -> None:
    args = apiserver_node_args(NET, (WORK / "k.crt", WORK / "k.key"))
    assert "--authorization-mode=Node,RBAC" in args
    assert "--service-cluster-ip-range=10.0.0.0/24" in args
    assert not any(arg.startswith("--disable-admission-plugins") for arg in args)
    hosts = serving_hosts(NET, ("127.0.0.1",))
    assert hosts[:2] == ("10.244.0.1", "10.0.0.1")
    assert "kubernetes.default.svc" in hosts
    assert hosts[-1] == "127.0.0.1"


def test_node_controllers_keep_the_lightweight_defaults() -> None:
    assert {"garbagecollector", "namespace"} <= set(NODE_CONTROLLERS)
    # Pods need their service account, its token's CA and the not-ready taint lifted.
    assert {"serviceaccount", "root-ca-cert-publisher", "nodelifecycle"} <= set(NODE_CONTROLLERS)
    # Cluster API's manager role is aggregated: without the controller it has no rules at all.
    assert "clusterrole-aggregation" in NODE_CONTROLLERS
