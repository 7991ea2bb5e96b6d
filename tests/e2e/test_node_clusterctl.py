"""The install users run, on a real node: `clusterctl init --ipam in-cluster` puts cert-manager, Cluster API
and our provider (our image, two replicas) on a node of this machine (tests/e2e/nodecluster.py); the kubelet
probes the pods, the apiserver reaches the webhooks through their Service (kube-proxy), cert-manager issues
and rotates the webhook certificate and its cainjector sets the CA bundles.

The tests share one install and run in file order: init, the webhook through its Service, claims and
`kubectl get`, a rollout restart under a churn of 500 claims, the leader pod deleted, a certificate
rotation, the container as shipped (user, read-only root, memory limit, SIGTERM drain), `clusterctl delete`,
and last the node's own clean stop. Every scenario ends with the invariants (no duplicate, no orphan) and
`incluster-ipam audit`.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import socket
import ssl
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from incluster_ipam.api.constants import GROUP
from incluster_ipam.kube import ApiError, Resource
from incluster_ipam.kube.resources import CRDS

from ..integration.faults import invariants
from ..integration.faults.helpers import ADDRESSES, CLAIMS, IP_POOLS, Cluster, claim_body, pool_body
from ..integration.support import eventually
from .clusterctl import PROVIDERS, WEBHOOK_CONFIGURATIONS
from .nodecluster import (
    BUILT_IMAGE,
    CERTIFICATES,
    DEPLOYMENT,
    DEPLOYMENTS,
    IMAGE,
    IMAGE_REPOSITORY,
    LEASES,
    PODS,
    SECRETS,
    SELECTOR,
    SYSTEM,
    Installed,
    installed,
    render_release,
)
from .providers import audit_cli

pytestmark = pytest.mark.timeout(1800)

NAMESPACES = Resource("", "v1", "namespaces", "Namespace", False)
WEBHOOK_SECRET = "capi-ipam-in-cluster-webhook-service-cert"
WEBHOOK_CERTIFICATE = "capi-ipam-in-cluster-serving-cert"
MEMORY_LIMIT = 256 * 1024 * 1024
NEXT_VERSION = "0.1.1"
NEXT_IMAGE = f"{IMAGE_REPOSITORY}:v{NEXT_VERSION}"


@pytest.fixture(scope="module")
async def cluster(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Installed]:
    async for install in installed(tmp_path_factory.mktemp("node")):
        yield install


def figures(**values: Any) -> None:
    print(json.dumps(values))


async def fresh_namespace(install: Installed, stem: str) -> str:
    name = f"{stem}-{int(time.time() * 1000) % 10**8}"
    await install.client.create(
        NAMESPACES, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
    )
    return name


async def bound(install: Installed, namespace: str) -> dict[str, str]:
    """claim name → bound address, for every bound claim of the namespace."""
    claims = (await install.client.list(CLAIMS, namespace)).items
    addresses = {
        a["metadata"]["name"]: a["spec"]["address"]
        for a in (await install.client.list(ADDRESSES, namespace)).items
    }
    out = {}
    for claim in claims:
        ref = ((claim.get("status") or {}).get("addressRef") or {}).get("name")
        if ref and ref in addresses:
            out[claim["metadata"]["name"]] = addresses[ref]
    return out


async def all_bound(
    install: Installed, namespace: str, names: set[str], within: float = 120.0
) -> dict[str, str]:
    async def probe() -> dict[str, str] | None:
        found = await bound(install, namespace)
        return found if names <= set(found) else None

    return await eventually(probe, within, f"{len(names)} claims in {namespace} to be bound")


async def clean(install: Installed, namespace: str) -> str:
    """The invariants hold (settled) and the operator's audit exits 0; a one-line summary."""
    verdict = await invariants.settle(install.client, namespace, within=90)
    code, report = await audit_cli(install.kubeconfig, namespace)
    assert code == 0, report
    return invariants.summary(verdict)


async def refuse_invalid_pool(install: Installed, namespace: str) -> str:
    """An invalid pool through the webhook's Service; the rejection message."""
    body = pool_body(
        "InClusterIPPool",
        "invalid",
        namespace,
        {"addresses": ["10.10.0.10-10.10.0.20"], "prefix": 24, "gateway": "nope"},
    )
    with pytest.raises(ApiError) as refused:
        await install.client.create(IP_POOLS, body, namespace, dry_run=True)
    return refused.value.message


# ---- clusterctl init -------------------------------------------------------------------------------------


async def test_clusterctl_init_installs_cert_manager_and_both_replicas_become_ready(
    cluster: Installed,
) -> None:
    assert "Installing cert-manager" in cluster.init_output
    assert "ipam-in-cluster" in cluster.init_output or "in-cluster" in cluster.init_output
    pods = await cluster.ready_pods()
    for pod in pods:
        (container,) = pod["spec"]["containers"]
        assert container["image"] == IMAGE
        (status,) = pod["status"]["containerStatuses"]
        assert status["ready"] is True
        assert status["restartCount"] == 0
    inventory = {p["metadata"]["name"] for p in (await cluster.client.list(PROVIDERS)).items}
    assert "ipam-in-cluster" in inventory, inventory
    # cert-manager issued the webhook certificate and its cainjector put the CA into every client config.
    certificate = await cluster.client.get(CERTIFICATES, WEBHOOK_CERTIFICATE, SYSTEM)
    assert any(c["type"] == "Ready" and c["status"] == "True" for c in certificate["status"]["conditions"])
    secret = await cluster.client.get(SECRETS, WEBHOOK_SECRET, SYSTEM)
    ca = secret["data"]["ca.crt"]
    for resource in WEBHOOK_CONFIGURATIONS:
        for configuration in (await cluster.client.list(resource, label_selector=SELECTOR)).items:
            for hook in configuration["webhooks"]:
                assert hook["clientConfig"]["caBundle"] == ca, hook["name"]
    figures(node_install_seconds=cluster.timings, node=cluster.node.timings)


async def test_an_invalid_pool_is_refused_by_the_webhook_through_its_service(cluster: Installed) -> None:
    namespace = await fresh_namespace(cluster, "webhook")
    # Ready pods reach the Service a moment later (endpoint slice, then kube-proxy's rules): until then the
    # apiserver's call is refused. Measured, then the rejection itself is checked.
    began = time.monotonic()

    async def served() -> str | None:
        message = await refuse_invalid_pool(cluster, namespace)
        return message if "failed calling webhook" not in message else None

    message = await eventually(served, 60, "the webhook Service to answer")
    figures(webhook_service_answered_after_ready_seconds=round(time.monotonic() - began, 2))
    assert "spec.gateway" in message, message
    assert "denied the request" in message, message


PROBE = """
import errno, socket
s = socket.socket()
s.settimeout(2)
try:
    s.connect(("192.0.2.1", 80))  # TEST-NET-1: documentation only, and no route to it from a pod anyway
    print("CONNECTED")
except OSError as exc:
    print("refused", errno.errorcode.get(exc.errno, exc.errno))
"""


async def test_a_pod_has_no_route_off_the_machine(cluster: Installed) -> None:
    namespace = await fresh_namespace(cluster, "probe")
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "probe", "namespace": namespace},
        "spec": {
            "restartPolicy": "Never",
            "containers": [
                {
                    "name": "probe",
                    "image": IMAGE,
                    "imagePullPolicy": "Never",
                    "command": ["python3", "-c", PROBE],
                }
            ],
        },
    }

    async def created() -> bool:
        try:
            await cluster.client.create(PODS, pod, namespace)
        except ApiError as exc:  # the namespace's default ServiceAccount comes a moment after it
            if "serviceaccount" not in exc.message.lower():
                raise
            return False
        return True

    await eventually(created, 30, "the probe pod to be admitted")

    async def finished() -> str | None:
        phase = ((await cluster.client.get(PODS, "probe", namespace)).get("status") or {}).get("phase")
        return phase if phase in ("Succeeded", "Failed") else None

    assert await eventually(finished, 120, "the probe pod to finish") == "Succeeded"
    out = await cluster.kubectl_run("logs", "-n", namespace, "probe")
    # The kernel refuses at once: the pod's only route is the Service range, nothing is sent.
    assert out.strip() == "refused ENETUNREACH", out


async def test_claims_are_bound_and_kubectl_get_shows_the_columns(cluster: Installed) -> None:
    namespace = await fresh_namespace(cluster, "claims")
    spec = {"addresses": ["10.10.0.10-10.10.0.20"], "prefix": 24, "gateway": "10.10.0.1"}
    await cluster.client.create(IP_POOLS, pool_body("InClusterIPPool", "pool", namespace, spec), namespace)
    names = {f"machine-{i}" for i in range(5)}
    for name in sorted(names):
        await cluster.client.create(CLAIMS, claim_body(name, "pool"), namespace)
    addresses = await all_bound(cluster, namespace, names)
    assert sorted(addresses.values()) == [f"10.10.0.{10 + i}" for i in range(5)]
    pools = await cluster.kubectl_run("get", "inclusterippools", "-n", namespace)
    header = pools.splitlines()[0].split()
    assert header[:2] == ["NAME", "ADDRESSES"], pools
    assert {"TOTAL", "FREE", "USED"} <= set(header), pools
    row = pools.splitlines()[1].split()
    assert row[header.index("TOTAL")] == "11", pools
    assert row[header.index("USED")] == "5", pools
    claims = await cluster.kubectl_run("get", "ipaddressclaims.ipam.cluster.x-k8s.io", "-n", namespace)
    assert len(claims.splitlines()) == 6, claims
    plan = await cluster.clusterctl.run("upgrade", "plan", "--kubeconfig", str(cluster.kubeconfig))
    assert "in-cluster" in plan or "ipam-in-cluster" in plan, plan
    print(pools)
    print(plan)
    await clean(cluster, namespace)


# ---- clusterctl upgrade --------------------------------------------------------------------------------


async def test_clusterctl_upgrade_to_a_patch_release_keeps_every_address(cluster: Installed) -> None:
    namespace = await fresh_namespace(cluster, "upgrade")
    spec = {"addresses": ["10.50.0.10-10.50.0.60"], "prefix": 24, "gateway": "10.50.0.1"}
    await cluster.client.create(IP_POOLS, pool_body("InClusterIPPool", "pool", namespace, spec), namespace)
    names = {f"before-{i}" for i in range(10)}
    for name in sorted(names):
        await cluster.client.create(CLAIMS, claim_body(name, "pool"), namespace)
    before = await all_bound(cluster, namespace, names)
    versions = {
        a["metadata"]["name"]: a["metadata"]["resourceVersion"]
        for a in (await cluster.client.list(ADDRESSES, namespace)).items
    }
    # The next patch release: the same image under its new tag, rendered into the same local repository.
    await render_release(cluster.repository, NEXT_VERSION)
    await cluster.node.ctr("images", "tag", "--force", BUILT_IMAGE, NEXT_IMAGE)
    plan = await cluster.clusterctl.run("upgrade", "plan", "--kubeconfig", str(cluster.kubeconfig))
    assert f"v{NEXT_VERSION}" in plan, plan
    began = time.monotonic()
    await cluster.clusterctl.run(
        "upgrade",
        "apply",
        "--kubeconfig",
        str(cluster.kubeconfig),
        "--ipam",
        f"{SYSTEM}/in-cluster:v{NEXT_VERSION}",
        limit=600,
    )

    async def upgraded() -> list[dict[str, Any]] | None:
        pods = await cluster.ready_pods()
        return pods if all(p["spec"]["containers"][0]["image"] == NEXT_IMAGE for p in pods) else None

    await eventually(upgraded, 240, f"both replicas to run {NEXT_IMAGE}")
    took = time.monotonic() - began
    await cluster.leader()
    after = await all_bound(cluster, namespace, names)
    assert after == before
    rewritten = [
        a["metadata"]["name"]
        for a in (await cluster.client.list(ADDRESSES, namespace)).items
        if versions.get(a["metadata"]["name"]) != a["metadata"]["resourceVersion"]
    ]
    assert rewritten == []
    more = {f"after-{i}" for i in range(5)}
    for name in sorted(more):
        await cluster.client.create(CLAIMS, claim_body(name, "pool"), namespace)
    fresh = await all_bound(cluster, namespace, names | more)
    assert len(set(fresh.values())) == len(fresh)
    inventory = {
        p["metadata"]["name"]: p.get("version") for p in (await cluster.client.list(PROVIDERS)).items
    }
    assert inventory.get("ipam-in-cluster") == f"v{NEXT_VERSION}", inventory
    summary = await clean(cluster, namespace)
    figures(upgrade_seconds=round(took, 1), addresses_rewritten=len(rewritten), invariants=summary)


# ---- replicas replaced under load -----------------------------------------------------------------------


async def watch_takeover(install: Installed, stop: asyncio.Event) -> list[tuple[float, str]]:
    """The lease holder over time (polled every 0.1 s): [(monotonic time, holder)] at each change."""
    changes: list[tuple[float, str]] = []
    while not stop.is_set():
        with contextlib.suppress(ApiError):
            for lease in (await install.client.list(LEASES, SYSTEM)).items:
                holder = (lease.get("spec") or {}).get("holderIdentity") or ""
                if not changes or changes[-1][1] != holder:
                    changes.append((time.monotonic(), holder))
        await asyncio.sleep(0.1)
    return changes


async def churn(install: Installed, namespace: str, count: int, *, delete_every: int = 5) -> set[str]:
    """Create `count` claims (20 at a time) and delete every `delete_every`-th again; the names kept."""
    cluster = Cluster(install.node.control_plane, install.client)  # type: ignore[arg-type]
    kept: set[str] = set()
    semaphore = asyncio.Semaphore(20)

    async def one(i: int) -> None:
        name = f"churn-{i}"
        async with semaphore:
            await cluster.claim(namespace, name, "pool")
            if i % delete_every == 0:
                await cluster.delete_claim(namespace, name)
            else:
                kept.add(name)

    await asyncio.gather(*(one(i) for i in range(count)))
    return kept


async def test_rollout_restart_during_a_churn_of_500_claims(cluster: Installed) -> None:
    namespace = await fresh_namespace(cluster, "rollout")
    spec = {"addresses": ["10.30.0.0/22"], "prefix": 22, "gateway": "10.30.0.1"}
    await cluster.client.create(IP_POOLS, pool_body("InClusterIPPool", "pool", namespace, spec), namespace)
    old_pods = {p["metadata"]["name"] for p in await cluster.ready_pods()}
    stop = asyncio.Event()
    watcher = asyncio.create_task(watch_takeover(cluster, stop))
    started = time.monotonic()
    work = asyncio.create_task(churn(cluster, namespace, 500))
    await asyncio.sleep(1.0)
    restarted = time.monotonic()
    await cluster.kubectl_run("rollout", "restart", f"deployment/{DEPLOYMENT}", "-n", SYSTEM)
    kept = await work
    churned = time.monotonic() - started
    await cluster.kubectl_run(
        "rollout", "status", f"deployment/{DEPLOYMENT}", "-n", SYSTEM, "--timeout=300s", limit=320
    )
    rolled = time.monotonic() - restarted
    new_pods = {p["metadata"]["name"] for p in await cluster.ready_pods()}
    assert not old_pods & new_pods
    # The new leader is one of the new pods (the old ones are gone); claims made meanwhile are all bound.
    leader = await cluster.leader()
    assert leader in new_pods
    addresses = await all_bound(cluster, namespace, kept, within=180)
    stop.set()
    changes = await watcher
    assert len(set(addresses.values())) == len(addresses), "two claims share an address"
    summary = await clean(cluster, namespace)
    holders = [(round(t - restarted, 2), h.split("_")[0][-5:] or "(released)") for t, h in changes]
    gaps = [round(b[0] - a[0], 2) for a, b in itertools.pairwise(changes) if not a[1]]
    figures(
        rollout_restart_claims_kept=len(kept),
        churn_seconds=round(churned, 1),
        rollout_seconds=round(rolled, 1),
        lease_holders_since_restart=holders,
        released_to_acquired_seconds=gaps,
        invariants=summary,
    )


async def test_deleting_the_leader_pod_hands_over_without_duplicates(cluster: Installed) -> None:
    namespace = await fresh_namespace(cluster, "leader")
    spec = {"addresses": ["10.40.0.0/24"], "prefix": 24, "gateway": "10.40.0.1"}
    await cluster.client.create(IP_POOLS, pool_body("InClusterIPPool", "pool", namespace, spec), namespace)
    await cluster.ready_pods()
    leader = await cluster.leader()
    stop = asyncio.Event()
    watcher = asyncio.create_task(watch_takeover(cluster, stop))
    work = asyncio.create_task(churn(cluster, namespace, 100))
    await asyncio.sleep(0.5)
    deleted = time.monotonic()
    await cluster.client.delete(PODS, leader, SYSTEM)

    async def new_leader() -> str | None:
        name = await cluster.leader()
        return name if name != leader else None

    successor = await eventually(new_leader, 60, "another pod to take the lease")
    took_over = time.monotonic() - deleted
    kept = await work
    addresses = await all_bound(cluster, namespace, kept)
    stop.set()
    await watcher
    assert len(set(addresses.values())) == len(addresses)
    summary = await clean(cluster, namespace)
    await cluster.ready_pods()
    figures(
        leader_deleted=leader,
        successor=successor,
        takeover_seconds=round(took_over, 2),
        invariants=summary,
    )


# ---- certificate rotation --------------------------------------------------------------------------------


def serving_serial(host: str, port: int) -> int:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with socket.create_connection((host, port), timeout=5) as raw, context.wrap_socket(raw) as tls:
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der).serial_number


def secret_serial(secret: dict[str, Any]) -> int:
    return x509.load_pem_x509_certificate(base64.b64decode(secret["data"]["tls.crt"])).serial_number


async def test_cert_manager_rotates_the_webhook_certificate_while_webhooks_keep_answering(
    cluster: Installed,
) -> None:
    namespace = await fresh_namespace(cluster, "rotate")
    pods = await cluster.ready_pods()
    before = secret_serial(await cluster.client.get(SECRETS, WEBHOOK_SECRET, SYSTEM))
    for pod in pods:
        assert await asyncio.to_thread(serving_serial, pod["status"]["podIP"], 9443) == before
    answered = failed = 0
    failures: list[str] = []
    stop = asyncio.Event()

    async def keep_asking() -> None:
        nonlocal answered, failed
        while not stop.is_set():
            message = await refuse_invalid_pool(cluster, namespace)
            if "spec.gateway" in message:
                answered += 1
            else:
                failed += 1
                failures.append(message)
            await asyncio.sleep(0.2)

    asker = asyncio.create_task(keep_asking())
    # What `cmctl renew` does: mark the Certificate as due for issuance.
    certificate = await cluster.client.get(CERTIFICATES, WEBHOOK_CERTIFICATE, SYSTEM)
    conditions = [c for c in certificate["status"].get("conditions", []) if c["type"] != "Issuing"]
    conditions.append(
        {
            "type": "Issuing",
            "status": "True",
            "reason": "ManuallyTriggered",
            "message": "Certificate re-issuance manually triggered",
            "lastTransitionTime": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
    )
    triggered = time.monotonic()
    await cluster.client.patch(
        CERTIFICATES,
        WEBHOOK_CERTIFICATE,
        {"status": {"conditions": conditions}},
        SYSTEM,
        subresource="status",
    )

    async def reissued() -> int | None:
        serial = secret_serial(await cluster.client.get(SECRETS, WEBHOOK_SECRET, SYSTEM))
        return serial if serial != before else None

    after = await eventually(reissued, 120, "cert-manager to re-issue the webhook certificate")
    issued = time.monotonic() - triggered

    async def served() -> bool:
        serials = [await asyncio.to_thread(serving_serial, p["status"]["podIP"], 9443) for p in pods]
        return all(s == after for s in serials)

    await eventually(served, 180, "both replicas to serve the new certificate")
    served_after = time.monotonic() - triggered
    await asyncio.sleep(1.0)
    stop.set()
    await asker
    assert failed == 0, failures[:3]
    assert answered > 0
    for pod in await cluster.ready_pods():
        assert pod["status"]["containerStatuses"][0]["restartCount"] == 0
    assert {p["metadata"]["name"] for p in await cluster.provider_pods()} == {
        p["metadata"]["name"] for p in pods
    }
    figures(
        certificate_reissued_seconds=round(issued, 1),
        new_certificate_served_seconds=round(served_after, 1),
        webhook_answers_during_rotation=answered,
        webhook_failures_during_rotation=failed,
    )


# ---- the container as shipped ----------------------------------------------------------------------------


def container_pid(container_id: str) -> int:
    procs = Path(f"/sys/fs/cgroup/memory/k8s.io/{container_id}/cgroup.procs").read_text().split()
    assert procs, f"no process in the container {container_id}'s cgroup"
    return min(int(p) for p in procs)


def memory_file(container_id: str, name: str) -> int:
    return int(Path(f"/sys/fs/cgroup/memory/k8s.io/{container_id}/{name}").read_text())


async def test_the_container_runs_non_root_read_only_under_its_memory_limit_and_drains_on_sigterm(
    cluster: Installed,
) -> None:
    pods = await cluster.ready_pods()
    peaks = []
    for pod in pods:
        container_id = pod["status"]["containerStatuses"][0]["containerID"].removeprefix("containerd://")
        pid = await asyncio.to_thread(container_pid, container_id)
        status = await asyncio.to_thread(Path(f"/proc/{pid}/status").read_text)
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        assert fields["Uid"].split()[:2] == ["65532", "65532"], fields["Uid"]
        assert fields["Gid"].split()[:2] == ["65532", "65532"], fields["Gid"]
        assert int(fields["CapEff"].strip(), 16) == 0
        assert fields["NoNewPrivs"].strip() == "1"
        mounts = await asyncio.to_thread(Path(f"/proc/{pid}/mountinfo").read_text)
        (root,) = [line for line in mounts.splitlines() if line.split()[4] == "/"]
        assert "ro" in root.split()[5].split(","), root
        limit = await asyncio.to_thread(memory_file, container_id, "memory.limit_in_bytes")
        assert limit == MEMORY_LIMIT, limit
        peak = await asyncio.to_thread(memory_file, container_id, "memory.max_usage_in_bytes")
        assert peak < limit
        peaks.append(round(peak / 2**20, 1))
    # SIGTERM: delete a replica and watch its container end inside the grace period with exit code 0.
    victim = pods[0]["metadata"]["name"]
    grace = (await cluster.client.get(DEPLOYMENTS, DEPLOYMENT, SYSTEM))["spec"]["template"]["spec"][
        "terminationGracePeriodSeconds"
    ]
    deleted = time.monotonic()
    await cluster.client.delete(PODS, victim, SYSTEM)

    async def terminated() -> dict[str, Any] | None:
        try:
            pod = await cluster.client.get(PODS, victim, SYSTEM)
        except ApiError as exc:
            if exc.status == 404:
                raise AssertionError(f"pod {victim} went before its terminated state was seen") from exc
            raise
        state = (pod["status"].get("containerStatuses") or [{}])[0].get("state") or {}
        return state.get("terminated")

    final = await eventually(terminated, grace + 10, f"pod {victim}'s container to stop")
    drained = time.monotonic() - deleted
    assert final["exitCode"] == 0, final
    assert drained < grace
    await cluster.ready_pods()
    figures(
        container_peak_mib=peaks,
        memory_limit_mib=MEMORY_LIMIT // 2**20,
        sigterm_drained_seconds=round(drained, 2),
    )


# ---- clusterctl delete and the node's own stop -----------------------------------------------------------


async def test_clusterctl_delete_leaves_nothing_of_ours_behind(cluster: Installed) -> None:
    # What an operator does first: no pool or claim of ours left (the provider releases them).
    for namespace in (n["metadata"]["name"] for n in (await cluster.client.list(NAMESPACES)).items):
        for claim in (await cluster.client.list(CLAIMS, namespace)).items:
            with contextlib.suppress(ApiError):
                await cluster.client.delete(CLAIMS, claim["metadata"]["name"], namespace)
    await eventually(lambda: _none_left(cluster, CLAIMS), 120, "every claim to be released")
    for pool in (await cluster.client.list(IP_POOLS)).items:
        await cluster.client.delete(IP_POOLS, pool["metadata"]["name"], pool["metadata"]["namespace"])
    await eventually(lambda: _none_left(cluster, IP_POOLS), 60, "every pool to be deleted")
    out = await cluster.clusterctl.run(
        "delete",
        "--kubeconfig",
        str(cluster.kubeconfig),
        "--ipam",
        "in-cluster",
        "--include-crd",
        "--include-namespace",
    )

    async def nothing_left() -> bool:
        return not await leftovers_of_ours(cluster)

    try:
        await eventually(nothing_left, 120, "nothing of ours left after clusterctl delete")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; left: {await leftovers_of_ours(cluster)}") from None
    inventory = {p["metadata"]["name"] for p in (await cluster.client.list(PROVIDERS)).items}
    assert "ipam-in-cluster" not in inventory
    print(out)


async def _none_left(cluster: Installed, resource: Resource) -> bool:
    return not (await cluster.client.list(resource)).items


async def leftovers_of_ours(cluster: Installed) -> list[str]:
    """Objects labelled as our provider's, our namespace, our CRDs, our finalizer anywhere."""
    found: list[str] = []
    with contextlib.suppress(ApiError):
        await cluster.client.get(NAMESPACES, SYSTEM)
        found.append(f"namespace {SYSTEM}")
    kinds = [
        CRDS,
        *WEBHOOK_CONFIGURATIONS,
        Resource("rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole", False),
        Resource("rbac.authorization.k8s.io", "v1", "clusterrolebindings", "ClusterRoleBinding", False),
    ]
    for resource in kinds:
        for obj in (await cluster.client.list(resource, label_selector=SELECTOR)).items:
            found.append(f"{resource.kind} {obj['metadata']['name']}")
    for obj in (await cluster.client.list(ADDRESSES)).items:
        if any(GROUP in f for f in obj["metadata"].get("finalizers") or []):
            found.append(f"IPAddress {obj['metadata']['name']} with our finalizer")
    return found


async def test_the_node_stops_and_leaves_nothing_on_the_machine(cluster: Installed) -> None:
    started = time.monotonic()
    await cluster.node.stop()
    stopped = time.monotonic() - started
    assert await cluster.node.leftovers() == []
    figures(node_stop_seconds=round(stopped, 1))
