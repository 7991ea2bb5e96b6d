"""What the real node's daemons are told: pure builders of containerd's, the CNI's, the kubelet's,
kube-proxy's and the scheduler's configuration and command lines, and of the firewall rules (unit-tested;
`devcluster.node` writes and runs them).

The network layout keeps every packet on this machine: pods sit on a bridge of ours whose subnet has no route
beyond it (no default route in the pods, no masquerading), the apiserver listens on the bridge's own address,
kube-proxy turns Service addresses into pod or apiserver addresses, and a firewall rule drops anything
forwarded from the bridge to another interface.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

NODE_NAME = "incluster-ipam-node"
#: containerd's CRI asks for its sandbox image by this exact name; nothing can be pulled, so we build it.
SANDBOX_IMAGE = "registry.k8s.io/pause:3.6"
#: Marks our firewall rules, so cleanup finds them (also ones a killed run left behind).
RULE_COMMENT = "incluster-ipam-node"
#: The controllers a node needs besides the garbage collector and the namespace controller: service accounts
#: and their tokens and root CA (pods mount them), Deployments and ReplicaSets, Services' endpoint slices
#: (kube-proxy), Jobs, PodDisruptionBudgets, node lifecycle (lifts the not-ready taint of a Ready node), and
#: ClusterRole aggregation (Cluster API's manager role is an aggregated role: without it, its webhooks cannot
#: read the claims an IPAddress points at).
NODE_CONTROLLERS: tuple[str, ...] = (
    "garbagecollector",
    "namespace",
    "serviceaccount",
    "serviceaccount-token",
    "root-ca-cert-publisher",
    "deployment",
    "replicaset",
    "endpoint",
    "endpointslice",
    "job",
    "disruption",
    "podgc",
    "nodelifecycle",
    "clusterrole-aggregation",
)


POD_SUBNET = ipaddress.IPv4Network("10.244.0.0/24")
SERVICE_SUBNET = ipaddress.IPv4Network("10.0.0.0/24")


@dataclass(frozen=True)
class NodeNetwork:
    """The pod bridge and the Service range. The bridge's first address is the node's address and where
    the apiserver listens; `service_subnet` must be the apiserver's `--service-cluster-ip-range`."""

    bridge: str = "incl-ipam0"
    pod_subnet: ipaddress.IPv4Network = POD_SUBNET
    service_subnet: ipaddress.IPv4Network = SERVICE_SUBNET

    def __post_init__(self) -> None:
        if len(self.bridge) > 15 or not self.bridge.isascii() or not self.bridge:
            raise ValueError(f"bridge name {self.bridge!r} must be 1-15 ASCII characters (a Linux interface)")
        if self.pod_subnet.overlaps(self.service_subnet):
            raise ValueError(f"pod subnet {self.pod_subnet} overlaps service subnet {self.service_subnet}")
        if self.pod_subnet.num_addresses < 8:
            raise ValueError(f"pod subnet {self.pod_subnet} is too small for a node")

    @property
    def gateway(self) -> str:
        """The bridge's own address: node IP, apiserver address, the pods' gateway to Services."""
        return str(self.pod_subnet.network_address + 1)

    @property
    def kubernetes_service_ip(self) -> str:
        """The `kubernetes` Service's cluster IP (the apiserver gives it the range's first address)."""
        return str(self.service_subnet.network_address + 1)


@dataclass(frozen=True)
class ContainerdPaths:
    """Everything containerd writes, under a work directory of ours (none of the machine's defaults)."""

    root: Path
    state: Path
    socket: Path
    runc_root: Path
    cni_conf_dir: Path
    cni_bin_dir: Path = Path("/usr/lib/cni")


def _toml_string(value: str | Path) -> str:
    return json.dumps(str(value))  # a JSON string is a valid TOML basic string


def containerd_config(paths: ContainerdPaths, sandbox_image: str = SANDBOX_IMAGE) -> str:
    """containerd 1.6's config (version 2). `restrict_oom_score_adj` because this machine lacks
    CAP_SYS_RESOURCE (the kubelet's negative oom_score_adj would fail every sandbox); network namespaces
    under our state directory, so cleanup finds them; runc's state under `runc_root`, so cleanup can kill
    every container even when containerd is gone."""
    cri = '[plugins."io.containerd.grpc.v1.cri"]'
    runc = '[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]'
    lines = [
        "version = 2",
        f"root = {_toml_string(paths.root)}",
        f"state = {_toml_string(paths.state)}",
        "[grpc]",
        f"  address = {_toml_string(paths.socket)}",
        "[ttrpc]",
        f"  address = {_toml_string(str(paths.socket) + '.ttrpc')}",
        "[metrics]",
        '  address = ""',
        '[plugins."io.containerd.internal.v1.opt"]',
        f"  path = {_toml_string(paths.root / 'opt')}",
        cri,
        f"  sandbox_image = {_toml_string(sandbox_image)}",
        "  restrict_oom_score_adj = true",
        "  netns_mounts_under_state_dir = true",
        '  stream_server_address = "127.0.0.1"',
        '  stream_server_port = "0"',
        "  disable_apparmor = true",
        '[plugins."io.containerd.grpc.v1.cri".containerd]',
        '  snapshotter = "overlayfs"',
        '  default_runtime_name = "runc"',
        runc,
        '  runtime_type = "io.containerd.runc.v2"',
        '[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]',
        "  SystemdCgroup = false",
        f"  Root = {_toml_string(paths.runc_root)}",
        '[plugins."io.containerd.grpc.v1.cri".cni]',
        f"  bin_dir = {_toml_string(paths.cni_bin_dir)}",
        f"  conf_dir = {_toml_string(paths.cni_conf_dir)}",
        "  max_conf_num = 1",
    ]
    return "\n".join(lines) + "\n"


def cni_config(network: NodeNetwork, ipam_data_dir: Path) -> dict[str, Any]:
    """A CNI network list: our bridge (not a gateway the plugin manages: we own its address, and the plugin
    would otherwise switch on IP forwarding), host-local addresses from the pod subnet, one route (the Service
    range through the bridge's address) and no default route, so a pod cannot address anything else."""
    return {
        "cniVersion": "1.0.0",
        "name": "incluster-ipam-pods",
        "plugins": [
            {
                "type": "bridge",
                "bridge": network.bridge,
                "isGateway": False,
                "ipMasq": False,
                "hairpinMode": True,
                "ipam": {
                    "type": "host-local",
                    "dataDir": str(ipam_data_dir),
                    "ranges": [
                        [
                            {
                                "subnet": str(network.pod_subnet),
                                "rangeStart": str(network.pod_subnet.network_address + 2),
                                "gateway": network.gateway,
                            }
                        ]
                    ],
                    "routes": [{"dst": str(network.service_subnet), "gw": network.gateway}],
                },
            },
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ],
    }


@dataclass(frozen=True)
class KubeletFiles:
    """The kubelet's inputs and where it writes."""

    kubeconfig: Path
    config: Path
    client_ca: Path
    root_dir: Path
    pod_logs_dir: Path
    resolv_conf: Path
    containerd_socket: Path


def kubelet_config(
    network: NodeNetwork, files: KubeletFiles, *, port: int, healthz_port: int
) -> dict[str, Any]:
    """A KubeletConfiguration for this machine: cgroup v1 with cgroupfs (`failCgroupV1: false`), no QoS
    cgroup tree or node allocatable enforcement, serving on the bridge's address, no anonymous access, a
    resolv.conf that names no outside nameserver, image garbage collection off (the images were imported
    by hand: none could be pulled back), and a 10 s pod sync (Secret volumes follow within it)."""
    return {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "address": network.gateway,
        "port": port,
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": healthz_port,
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": True},
            "x509": {"clientCAFile": str(files.client_ca)},
        },
        "authorization": {"mode": "Webhook"},
        "cgroupDriver": "cgroupfs",
        "failCgroupV1": False,
        "failSwapOn": False,
        "cgroupsPerQOS": False,
        "enforceNodeAllocatable": [],
        "localStorageCapacityIsolation": False,
        "containerRuntimeEndpoint": f"unix://{files.containerd_socket}",
        "podLogsDir": str(files.pod_logs_dir),
        "resolvConf": str(files.resolv_conf),
        "clusterDomain": "cluster.local",
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "evictionHard": {"memory.available": "100Mi"},
        "serializeImagePulls": False,
        "shutdownGracePeriod": "0s",
        # Mounted Secrets (a rotated certificate) reach the pods within ~10 s instead of the default minute.
        "syncFrequency": "10s",
    }


def kubelet_argv(
    binary: Path, files: KubeletFiles, network: NodeNetwork, node_name: str = NODE_NAME
) -> list[str]:
    return [
        str(binary),
        f"--config={files.config}",
        f"--kubeconfig={files.kubeconfig}",
        f"--root-dir={files.root_dir}",
        f"--cert-dir={files.root_dir / 'pki'}",
        f"--node-ip={network.gateway}",
        f"--hostname-override={node_name}",
        "--v=1",
    ]


#: No outside nameserver: pods resolve nothing (the provider and the components address the apiserver by IP).
RESOLV_CONF = "nameserver 127.0.0.1\noptions ndots:1 timeout:1 attempts:1\n"


def scheduler_argv(binary: Path, kubeconfig: Path, *, port: int) -> list[str]:
    """kube-scheduler on loopback, one instance (no leader election)."""
    return [
        str(binary),
        f"--kubeconfig={kubeconfig}",
        f"--authentication-kubeconfig={kubeconfig}",
        f"--authorization-kubeconfig={kubeconfig}",
        "--bind-address=127.0.0.1",
        f"--secure-port={port}",
        "--leader-elect=false",
    ]


def kube_proxy_config(
    network: NodeNetwork,
    kubeconfig: Path,
    *,
    healthz_port: int,
    metrics_port: int,
    node_name: str = NODE_NAME,
) -> dict[str, Any]:
    """iptables mode; the host's conntrack sizes left alone (`maxPerCore: 0`); node ports only on the
    bridge's address; health and metrics on loopback."""
    return {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "clientConnection": {"kubeconfig": str(kubeconfig)},
        "mode": "iptables",
        "clusterCIDR": str(network.pod_subnet),
        "hostnameOverride": node_name,
        "healthzBindAddress": f"127.0.0.1:{healthz_port}",
        "metricsBindAddress": f"127.0.0.1:{metrics_port}",
        "conntrack": {"maxPerCore": 0, "min": 0},
        "nodePortAddresses": [f"{network.gateway}/32"],
        "iptables": {"localhostNodePorts": False},
    }


def firewall_rules(network: NodeNetwork) -> list[list[str]]:
    """iptables rule specifications (without the `-I`/`-D` verb) that make leaving impossible: nothing that
    comes from the bridge is forwarded to another interface."""
    comment = ["-m", "comment", "--comment", RULE_COMMENT]
    return [
        ["FORWARD", "-i", network.bridge, "!", "-o", network.bridge, *comment, "-j", "DROP"],
    ]


def jumps_into_kube_chain(words: Sequence[str]) -> bool:
    """Whether an `iptables -S` rule (split into words) of a built-in chain jumps into a `KUBE-*` chain:
    the jumps that must go before kube-proxy's and the kubelet's chains can be deleted."""
    if len(words) < 2 or words[0] != "-A" or words[1].startswith("KUBE-") or "-j" not in words[:-1]:
        return False
    return words[list(words).index("-j") + 1].startswith("KUBE-")


def apiserver_node_args(network: NodeNetwork, kubelet_client: tuple[Path, Path]) -> list[str]:
    """What kube-apiserver needs beyond the bare control plane to serve a node: Node authorization for the
    kubelet, ServiceAccount admission, the `kubernetes` Service's endpoint on the bridge address, and a
    client certificate for the kubelet's API (logs)."""
    cert, key = kubelet_client
    return [
        "--authorization-mode=Node,RBAC",
        f"--service-cluster-ip-range={network.service_subnet}",
        f"--kubelet-client-certificate={cert}",
        f"--kubelet-client-key={key}",
        "--kubelet-preferred-address-types=InternalIP",
    ]


def serving_hosts(network: NodeNetwork, extra: Sequence[str] = ()) -> tuple[str, ...]:
    """The apiserver certificate's names as pods reach it (Service IP and names) and as we do."""
    return (
        network.gateway,
        network.kubernetes_service_ip,
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
        "kubernetes.default.svc.cluster.local",
        *extra,
    )
