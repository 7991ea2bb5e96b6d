"""The release artifacts rendered by hack/release.py: structure, names, labels, RBAC and cert wiring.

Whether the apiserver accepts them and clusterctl reads them is checked in tests/integration/packaging/.
"""

from __future__ import annotations

import importlib.util
import pathlib
import re
from collections import Counter
from typing import Any

import pytest
import yaml

from incluster_ipam.api.constants import POOL_KINDS
from incluster_ipam.cli import _parser
from incluster_ipam.webhooks.admission import ROUTES

ROOT = pathlib.Path(__file__).resolve().parents[3]
NAMESPACE = "capi-ipam-in-cluster-system"
PREFIX = "capi-ipam-in-cluster-"
#: Cluster-scoped RBAC carries the namespace as prefix (clusterctl delete finds it by that).
CLUSTER_PREFIX = f"{NAMESPACE}-"
WEBHOOK_KINDS = ("ValidatingWebhookConfiguration", "MutatingWebhookConfiguration")
PROVIDER_LABEL = ("cluster.x-k8s.io/provider", "ipam-in-cluster")
SERVICE_ACCOUNT = "capi-ipam-in-cluster-manager"
CLUSTER_SCOPED = {
    "Namespace",
    "CustomResourceDefinition",
    "ClusterRole",
    "ClusterRoleBinding",
    "ValidatingWebhookConfiguration",
    "MutatingWebhookConfiguration",
}


def _release() -> Any:
    spec = importlib.util.spec_from_file_location("release", ROOT / "hack" / "release.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


release = _release()


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, list[dict[str, Any]], dict[str, Any]]:
    out = tmp_path_factory.mktemp("out")
    components, metadata = release.write(out, "0.3.1", "registry.example/ipam")
    text = components.read_text()
    return text, [d for d in yaml.safe_load_all(text) if d], yaml.safe_load(metadata.read_text())


def _by_kind(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] == kind]


def _one(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    found = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind} {name}: {len(found)} found"
    return found[0]


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("0.1.0", "v0.1.0"),
        ("v1.2.3", "v1.2.3"),
        ("0.1.0.dev0", "v0.1.0-dev.0"),
        ("1.2.0rc1", "v1.2.0-rc.1"),
        ("1.2.0b2", "v1.2.0-beta.2"),
        ("1.2.0a1.dev3", "v1.2.0-alpha.1.dev.3"),
    ],
)
def test_package_versions_become_clusterctl_semver(given: str, expected: str) -> None:
    assert release.semver(given) == expected


def test_a_version_that_is_not_semver_is_refused() -> None:
    with pytest.raises(ValueError, match="semantic version"):
        release.semver("1.2")


def test_the_inventory_of_objects(rendered: tuple[str, list[dict[str, Any]], dict[str, Any]]) -> None:
    _, objects, _ = rendered
    kinds = Counter(o["kind"] for o in objects)
    assert kinds == {
        "Namespace": 1,
        "CustomResourceDefinition": 4,
        "ServiceAccount": 1,
        "ClusterRole": 3,
        "ClusterRoleBinding": 2,
        "Role": 1,
        "RoleBinding": 1,
        "Issuer": 1,
        "Certificate": 2,
        "Service": 2,
        "Deployment": 1,
        "PodDisruptionBudget": 1,
        "NetworkPolicy": 1,
        "ValidatingWebhookConfiguration": 1,
        "MutatingWebhookConfiguration": 1,
    }
    assert objects[0]["kind"] == "Namespace"
    assert objects[0]["metadata"]["name"] == NAMESPACE


def test_every_object_is_labelled_named_and_placed(
    rendered: tuple[str, list[dict[str, Any]], dict[str, Any]],
) -> None:
    text, objects, _ = rendered
    for obj in objects:
        meta = obj["metadata"]
        assert meta["labels"][PROVIDER_LABEL[0]] == PROVIDER_LABEL[1], meta["name"]
        if obj["kind"] == "CustomResourceDefinition":
            assert meta["name"].endswith(".ipam.cluster.x-k8s.io")
        elif obj["kind"] != "Namespace":
            assert meta["name"].startswith(PREFIX), meta["name"]
        if obj["kind"] in CLUSTER_SCOPED:
            assert "namespace" not in meta, meta["name"]
        else:
            assert meta["namespace"] == NAMESPACE, meta["name"]
    # clusterctl parses the Deployment's image before it substitutes variables: none there. Elsewhere (the
    # NetworkPolicy's source CIDRs) variables are fine, each with a default, so `clusterctl init` needs none.
    deployment = next(o for o in objects if o["kind"] == "Deployment")
    assert "${" not in str(deployment["spec"]["template"]["spec"]["containers"][0]["image"])
    variables = re.findall(r"\$\{([^}]*)\}", text)
    assert variables, "the NetworkPolicy's CIDRs are variables"
    assert all(re.fullmatch(r"CAPI_IPAM_[A-Z0-9_]+:=[^}]+", v) for v in variables), variables


def test_clusterctl_delete_can_find_every_cluster_scoped_object(
    rendered: tuple[str, list[dict[str, Any]], dict[str, Any]],
) -> None:
    """clusterctl (v1.14) deletes a provider's cluster-scoped objects other than CRDs, namespaces and webhook
    configurations only when their name starts with "<provider namespace>-"; anything else is left behind
    by `clusterctl delete` (found by tests/e2e/test_node_clusterctl.py)."""
    _, objects, _ = rendered
    exempt = {"CustomResourceDefinition", "Namespace", *WEBHOOK_KINDS}
    for obj in objects:
        if obj["kind"] in CLUSTER_SCOPED and obj["kind"] not in exempt:
            assert obj["metadata"]["name"].startswith(f"{NAMESPACE}-"), (obj["kind"], obj["metadata"]["name"])


def test_crds_convert_through_the_service_with_an_injected_ca(
    rendered: tuple[str, list[dict[str, Any]], dict[str, Any]],
) -> None:
    _, objects, _ = rendered
    crds = {o["metadata"]["name"]: o for o in _by_kind(objects, "CustomResourceDefinition")}
    assert set(crds) == {kind.crd_name for kind in POOL_KINDS}
    for crd in crds.values():
        conversion = crd["spec"]["conversion"]
        assert conversion["strategy"] == "Webhook"
        assert conversion["webhook"]["clientConfig"]["service"] == {
            "name": f"{PREFIX}webhook-service",
            "namespace": NAMESPACE,
            "path": "/convert",
        }
        assert crd["metadata"]["annotations"]["cert-manager.io/inject-ca-from"] == (
            f"{NAMESPACE}/{PREFIX}serving-cert"
        )
        assert crd["metadata"]["labels"]["clusterctl.cluster.x-k8s.io/move-hierarchy"] == ""


def test_webhook_configurations_cover_every_route_through_the_service(
    rendered: tuple[str, list[dict[str, Any]], dict[str, Any]],
) -> None:
    _, objects, _ = rendered
    configurations = _by_kind(objects, "ValidatingWebhookConfiguration") + _by_kind(
        objects, "MutatingWebhookConfiguration"
    )
    paths = set()
    for configuration in configurations:
        assert configuration["metadata"]["annotations"]["cert-manager.io/inject-ca-from"] == (
            f"{NAMESPACE}/{PREFIX}serving-cert"
        )
        for hook in configuration["webhooks"]:
            service = hook["clientConfig"]["service"]
            assert (service["name"], service["namespace"]) == (f"{PREFIX}webhook-service", NAMESPACE)
            assert "caBundle" not in hook["clientConfig"]
            paths.add(service["path"])
    assert paths == {route.path for route in ROUTES}


def test_certificates_match_services_and_mounted_secrets(
    rendered: tuple[str, list[dict[str, Any]], dict[str, Any]],
) -> None:
    _, objects, _ = rendered
    issuer = _one(objects, "Issuer", f"{PREFIX}selfsigned-issuer")
    assert issuer["spec"] == {"selfSigned": {}}
    services = {o["metadata"]["name"] for o in _by_kind(objects, "Service")}
    secrets = set()
    for certificate in _by_kind(objects, "Certificate"):
        assert certificate["spec"]["issuerRef"] == {"kind": "Issuer", "name": issuer["metadata"]["name"]}
        for dns in certificate["spec"]["dnsNames"]:
            service, namespace, *_ = dns.split(".")
            assert service in services
            assert namespace == NAMESPACE
        secrets.add(certificate["spec"]["secretName"])
    deployment = _by_kind(objects, "Deployment")[0]
    volumes = {v["secret"]["secretName"] for v in deployment["spec"]["template"]["spec"]["volumes"]}
    assert volumes == secrets


def test_the_deployment_is_locked_down(rendered: tuple[str, list[dict[str, Any]], dict[str, Any]]) -> None:
    _, objects, _ = rendered
    deployment = _one(objects, "Deployment", f"{PREFIX}controller-manager")
    assert deployment["spec"]["replicas"] == 2  # a leader and a standby (finding 18)
    pod = deployment["spec"]["template"]["spec"]
    assert pod["terminationGracePeriodSeconds"] >= 30  # drain (10 s) + release (5 s) + informers
    assert pod["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    budget = _one(objects, "PodDisruptionBudget", f"{PREFIX}controller-manager")
    assert budget["spec"]["minAvailable"] == 1
    assert budget["spec"]["selector"] == deployment["spec"]["selector"]
    pod = deployment["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == SERVICE_ACCOUNT
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    (container,) = pod["containers"]
    assert container["image"] == "registry.example/ipam:v0.3.1"
    security = container["securityContext"]
    assert security["runAsUser"] == 65532
    assert security["runAsNonRoot"] is True
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert security["seccompProfile"] == {"type": "RuntimeDefault"}
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"webhook-server": 9443, "metrics": 8443, "healthz": 8081}
    assert container["livenessProbe"]["httpGet"]["port"] == "healthz"
    assert set(container["resources"]) == {"requests", "limits"}
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert "/tmp/k8s-webhook-server/serving-certs" in mounts
    assert "--leader-elect" in container["args"]
    labels = deployment["spec"]["selector"]["matchLabels"]
    assert labels.items() <= deployment["spec"]["template"]["metadata"]["labels"].items()
    for service in _by_kind(objects, "Service"):
        assert service["spec"]["selector"] == labels
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in ports


def test_the_deployment_arguments_are_flags_of_run(
    rendered: tuple[str, list[dict[str, Any]], dict[str, Any]],
) -> None:
    """The image's entrypoint is `incluster-ipam run`; the Deployment only adds arguments."""
    _, objects, _ = rendered
    (container,) = _by_kind(objects, "Deployment")[0]["spec"]["template"]["spec"]["containers"]
    assert "command" not in container
    args = _parser().parse_args(["run", *container["args"]])
    assert args.leader_elect is True
    assert args.metrics_bind_address == "0"
    assert args.diagnostics_address == ":8443"
    assert args.insecure_diagnostics is False
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert str(args.webhook_cert_dir) == mounts["webhook-cert"]
    assert str(args.diagnostics_cert_dir) == mounts["metrics-cert"]


def _rules(objects: list[dict[str, Any]], kind: str, name: str) -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = _one(objects, kind, name)["rules"]
    return rules


def _grants(rules: list[dict[str, Any]]) -> set[tuple[str, str, str]]:
    return {
        (group, resource, verb)
        for rule in rules
        for group in rule.get("apiGroups", [])
        for resource in rule.get("resources", [])
        for verb in rule["verbs"]
    }


def test_the_manager_role_grants_exactly_what_the_provider_uses(
    rendered: tuple[str, list[dict[str, Any]], dict[str, Any]],
) -> None:
    _, objects, _ = rendered
    grants = _grants(_rules(objects, "ClusterRole", f"{CLUSTER_PREFIX}manager-role"))
    ipam = "ipam.cluster.x-k8s.io"
    expected = {("", "events", v) for v in ("create", "patch")}
    expected |= {("cluster.x-k8s.io", "clusters", v) for v in ("get", "list", "watch")}
    expected |= {(ipam, "ipaddressclaims", v) for v in ("get", "list", "watch", "patch")}
    expected |= {(ipam, "ipaddressclaims/status", "patch"), (ipam, "ipaddressclaims/finalizers", "update")}
    expected |= {(ipam, "ipaddresses", v) for v in ("get", "list", "watch", "create", "patch", "delete")}
    for kind in POOL_KINDS:
        expected |= {(ipam, kind.plural, v) for v in ("get", "list", "watch", "patch")}
        expected |= {(ipam, f"{kind.plural}/status", "patch"), (ipam, f"{kind.plural}/finalizers", "update")}
    assert grants == expected
    assert not any("*" in part for grant in grants for part in grant)


def test_leader_election_and_metrics_roles(
    rendered: tuple[str, list[dict[str, Any]], dict[str, Any]],
) -> None:
    _, objects, _ = rendered
    election = _rules(objects, "Role", f"{PREFIX}leader-election-role")
    assert _grants(election) == {("coordination.k8s.io", "leases", v) for v in ("create", "get", "update")}
    named = [r for r in election if r.get("resourceNames")]
    assert named == [
        {
            "apiGroups": ["coordination.k8s.io"],
            "resources": ["leases"],
            "resourceNames": ["7bb7acb4.ipam.cluster.x-k8s.io"],
            "verbs": ["get", "update"],
        }
    ]
    assert _grants(_rules(objects, "ClusterRole", f"{CLUSTER_PREFIX}metrics-auth-role")) == {
        ("authentication.k8s.io", "tokenreviews", "create"),
        ("authorization.k8s.io", "subjectaccessreviews", "create"),
    }
    assert _rules(objects, "ClusterRole", f"{CLUSTER_PREFIX}metrics-reader") == [
        {"nonResourceURLs": ["/metrics"], "verbs": ["get"]}
    ]


def test_bindings_tie_the_service_account_to_its_roles(
    rendered: tuple[str, list[dict[str, Any]], dict[str, Any]],
) -> None:
    _, objects, _ = rendered
    subject = {"kind": "ServiceAccount", "name": SERVICE_ACCOUNT, "namespace": NAMESPACE}
    bound = {
        (b["roleRef"]["kind"], b["roleRef"]["name"])
        for b in _by_kind(objects, "ClusterRoleBinding") + _by_kind(objects, "RoleBinding")
        if b["subjects"] == [subject]
    }
    assert bound == {
        ("ClusterRole", f"{CLUSTER_PREFIX}manager-role"),
        ("ClusterRole", f"{CLUSTER_PREFIX}metrics-auth-role"),
        ("Role", f"{PREFIX}leader-election-role"),
    }
    _one(objects, "ServiceAccount", SERVICE_ACCOUNT)


def test_metadata_declares_the_release_series(
    rendered: tuple[str, list[dict[str, Any]], dict[str, Any]],
) -> None:
    _, _, metadata = rendered
    assert metadata == {
        "apiVersion": "clusterctl.cluster.x-k8s.io/v1alpha3",
        "kind": "Metadata",
        "releaseSeries": [{"major": 0, "minor": 3, "contract": "v1beta1"}],
    }


def test_the_repository_layout_is_clusterctls(tmp_path: pathlib.Path) -> None:
    files = release.write(tmp_path / "out", "0.1.0.dev0", release.DEFAULT_IMAGE_REPOSITORY)
    target = release.lay_out_repository(tmp_path / "repo", "0.1.0.dev0", files)
    assert target == tmp_path / "repo" / "ipam-in-cluster" / "v0.1.0-dev.0"
    assert sorted(p.name for p in target.iterdir()) == ["ipam-components.yaml", "metadata.yaml"]


def test_the_network_policy_admits_only_the_webhook_and_metrics_ports(
    rendered: tuple[str, list[dict[str, Any]], dict[str, Any]],
) -> None:
    """Findings 1 and 17: only the apiserver's webhook calls and labelled scrapers reach the pods."""
    _, objects, _ = rendered
    policy = _one(objects, "NetworkPolicy", f"{PREFIX}ingress")
    deployment = _one(objects, "Deployment", f"{PREFIX}controller-manager")
    assert policy["spec"]["podSelector"]["matchLabels"] == deployment["spec"]["selector"]["matchLabels"]
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    ports = {rule["ports"][0]["port"]: rule["from"] for rule in policy["spec"]["ingress"]}
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    served = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert set(ports) == {served["webhook-server"], served["metrics"]}
    assert [peer["ipBlock"]["cidr"] for peer in ports[served["webhook-server"]]] == [
        "${CAPI_IPAM_WEBHOOK_SOURCE_CIDR:=0.0.0.0/0}",
        "${CAPI_IPAM_WEBHOOK_SOURCE_CIDR_V6:=::/0}",
    ]
    assert ports[served["metrics"]] == [{"namespaceSelector": {"matchLabels": {"metrics": "enabled"}}}]
