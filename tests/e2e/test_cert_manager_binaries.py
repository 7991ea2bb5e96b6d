"""cert-manager's controller and cainjector as built by hack/cert-manager/binaries/build.sh (our own mains
against the root module), run as processes against the session control plane with the arguments the release
manifest passes them (plus --kubeconfig and loopback listeners).

The controller must issue from a SelfSigned Issuer (a CA Certificate) and from a CA Issuer and a CA
ClusterIssuer made of that Secret (leaves signed by it), with leader election on and /livez answering; the
cainjector must copy the CA Certificate's ca.crt into a ValidatingWebhookConfiguration annotated
cert-manager.io/inject-ca-from.
The webhook, with its dynamic serving CA in a Secret (the manifest's --dynamic-serving-* flags), must answer
its probes and, once the cainjector has injected that CA (cert-manager.io/inject-ca-from-secret), reject an
invalid Certificate through the API server. A missing binary or a process that dies fails the test with
its log tail.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import time
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from incluster_ipam.devcluster import ControlPlane
from incluster_ipam.devcluster.controlplane import free_port
from incluster_ipam.devcluster.process import ManagedProcess
from incluster_ipam.kube import ApiError, KubeClient, Resource
from incluster_ipam.kube.resources import LEASES, SECRETS

from ..integration.support import eventually
from .clusterctl import cert_manager_crds
from .providers import BUILD_TIMEOUT, build, wait_healthy

ISSUERS = Resource("cert-manager.io", "v1", "issuers", "Issuer", True)
CLUSTER_ISSUERS = Resource("cert-manager.io", "v1", "clusterissuers", "ClusterIssuer", False)
CERTIFICATES = Resource("cert-manager.io", "v1", "certificates", "Certificate", True)
VALIDATING = Resource(
    "admissionregistration.k8s.io",
    "v1",
    "validatingwebhookconfigurations",
    "ValidatingWebhookConfiguration",
    False,
)
SOLVER_IMAGE = "quay.io/jetstack/cert-manager-acmesolver:v1.21.2"


async def binaries() -> Path:
    """The cached build's bin/ directory; fails loudly if the build or a binary is missing."""
    bin_dir = Path(await asyncio.to_thread(build, "hack/cert-manager/binaries/build.sh")) / "bin"
    for name in ("controller", "webhook", "cainjector"):
        assert (bin_dir / name).is_file(), f"hack/cert-manager/binaries/build.sh left no {bin_dir / name}"
    return bin_dir


def issuer(name: str, namespace: str | None, spec: dict[str, Any]) -> dict[str, Any]:
    """An Issuer, or a ClusterIssuer without a namespace."""
    kind, meta = (
        ("Issuer", {"name": name, "namespace": namespace}) if namespace else ("ClusterIssuer", {"name": name})
    )
    return {"apiVersion": "cert-manager.io/v1", "kind": kind, "metadata": meta, "spec": spec}


def certificate(
    name: str, namespace: str, issuer_name: str, issuer_kind: str = "Issuer", **spec: Any
) -> dict[str, Any]:
    return {
        "apiVersion": "cert-manager.io/v1",
        "kind": "Certificate",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"secretName": name, "issuerRef": {"name": issuer_name, "kind": issuer_kind}, **spec},
    }


async def issued(client: KubeClient, namespace: str, name: str, proc: ManagedProcess) -> dict[str, str]:
    """Wait for the Certificate's Ready condition and its Secret's tls.crt; the Secret's data (decoded)."""

    async def ready() -> dict[str, str] | None:
        proc.check_alive()
        cert = await client.get(CERTIFICATES, name, namespace)
        conditions = (cert.get("status") or {}).get("conditions") or []
        if not any(c["type"] == "Ready" and c["status"] == "True" for c in conditions):
            return None
        try:
            secret = await client.get(SECRETS, name, namespace)
        except ApiError:
            return None
        data = {k: base64.b64decode(v).decode() for k, v in (secret.get("data") or {}).items()}
        return data if data.get("tls.crt") else None

    return await eventually(ready, 30, f"Certificate {namespace}/{name} to be issued")


def controller_argv(bin_dir: Path, plane: ControlPlane, namespace: str, health_port: int) -> list[str]:
    """The release manifest's arguments (namespaces set to the test's), then the host run's own."""
    return [
        str(bin_dir / "controller"),
        "--v=2",
        f"--cluster-resource-namespace={namespace}",
        f"--leader-election-namespace={namespace}",
        f"--acme-http01-solver-image={SOLVER_IMAGE}",
        "--max-concurrent-challenges=60",
        f"--kubeconfig={plane.kubeconfig_path}",
        f"--metrics-listen-address=127.0.0.1:{free_port()}",
        f"--internal-healthz-listen-address=127.0.0.1:{health_port}",
    ]


def cainjector_argv(bin_dir: Path, plane: ControlPlane, namespace: str) -> list[str]:
    return [
        str(bin_dir / "cainjector"),
        "--v=2",
        f"--leader-election-namespace={namespace}",
        "--metrics-listen-address=0",
        f"--kubeconfig={plane.kubeconfig_path}",
    ]


def webhook_configuration(
    name: str, *, annotation: str, source: str, url: str, rule: dict[str, Any], namespace: str
) -> dict[str, Any]:
    """A ValidatingWebhookConfiguration without a caBundle, annotated for the cainjector, limited to one
    namespace (the session control plane is shared)."""
    hook = {
        "name": "probe.cert-manager-binaries.test",
        "clientConfig": {"url": url},
        "rules": [{"apiVersions": ["v1"], "operations": ["CREATE"], **rule}],
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}},
        "failurePolicy": "Fail",
        "sideEffects": "None",
        "admissionReviewVersions": ["v1"],
    }
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": name, "annotations": {f"cert-manager.io/{annotation}": source}},
        "webhooks": [hook],
    }


async def injected_bundle(client: KubeClient, name: str, cainjector: ManagedProcess) -> bytes:
    """Wait for the cainjector to fill the configuration's caBundle; the bundle (PEM)."""

    async def bundle() -> bytes | None:
        cainjector.check_alive()
        value = (await client.get(VALIDATING, name))["webhooks"][0]["clientConfig"].get("caBundle")
        return base64.b64decode(value) if value else None

    return await eventually(bundle, 30, f"cainjector to inject a CA into {name}")


# A cold build takes minutes (docs/operations.md); cached afterwards.
@pytest.mark.timeout(BUILD_TIMEOUT + 120)
async def test_controller_issues_and_cainjector_injects(
    control_plane: ControlPlane, namespace: str, tmp_path: Path
) -> None:
    started = time.monotonic()
    bin_dir = await binaries()
    await control_plane.install_crds(await cert_manager_crds())
    async with KubeClient.from_kubeconfig(control_plane.kubeconfig_path) as client:
        health_port = free_port()
        controller = ManagedProcess(
            "cert-manager-controller",
            controller_argv(bin_dir, control_plane, namespace, health_port),
            tmp_path / "controller.log",
        )
        cainjector = ManagedProcess(
            "cert-manager-cainjector",
            cainjector_argv(bin_dir, control_plane, namespace),
            tmp_path / "cainjector.log",
        )
        vwc = cluster_issuer = f"cm-binaries-{namespace}"
        try:
            await controller.start()
            await cainjector.start()
            await wait_healthy(controller, health_port, "/livez")

            # SelfSigned: a CA certificate
            await client.create(ISSUERS, issuer("selfsigned", namespace, {"selfSigned": {}}))
            await client.create(
                CERTIFICATES, certificate("root", namespace, "selfsigned", isCA=True, commonName="test root")
            )
            root = await issued(client, namespace, "root", controller)
            root_cert = x509.load_pem_x509_certificate(root["tls.crt"].encode())
            assert root_cert.issuer == root_cert.subject, "the SelfSigned certificate is not self-signed"
            self_signed_s = time.monotonic() - started

            # CA: a leaf signed by that Secret
            await client.create(ISSUERS, issuer("ca", namespace, {"ca": {"secretName": "root"}}))
            await client.create(
                CERTIFICATES, certificate("leaf", namespace, "ca", dnsNames=["leaf.example.test"])
            )
            leaf = await issued(client, namespace, "leaf", controller)
            leaf_cert = x509.load_pem_x509_certificate(leaf["tls.crt"].encode())
            assert leaf_cert.issuer == root_cert.subject, "the CA Issuer's leaf is not signed by its CA"
            leaf_cert.verify_directly_issued_by(root_cert)
            assert leaf["ca.crt"] == root["tls.crt"], "the leaf's ca.crt is not its CA"

            # CA ClusterIssuer: its Secret is read from --cluster-resource-namespace (the test's)
            await client.create(CLUSTER_ISSUERS, issuer(cluster_issuer, None, {"ca": {"secretName": "root"}}))
            await client.create(
                CERTIFICATES,
                certificate(
                    "cluster-leaf", namespace, cluster_issuer, "ClusterIssuer", dnsNames=["c.example.test"]
                ),
            )
            cluster_leaf = await issued(client, namespace, "cluster-leaf", controller)
            x509.load_pem_x509_certificate(cluster_leaf["tls.crt"].encode()).verify_directly_issued_by(
                root_cert
            )

            # cainjector: the CA Certificate's ca.crt into the annotated webhook configuration (a rule
            # for a resource nobody creates: only the caBundle matters here)
            nothing = {"apiGroups": ["cert-manager-binaries.test"], "resources": ["nothings"]}
            configuration = webhook_configuration(
                vwc,
                annotation="inject-ca-from",
                source=f"{namespace}/root",
                url="https://127.0.0.1:9/",
                rule=nothing,
                namespace=namespace,
            )
            await client.create(VALIDATING, configuration)
            bundle = await injected_bundle(client, vwc, cainjector)
            assert bundle.decode() == root["ca.crt"], "the injected caBundle is not the Certificate's CA"

            # Leader election: the controller held upstream's Lease, and releases it on SIGTERM.
            lease = await client.get(LEASES, "cert-manager-controller", namespace)
            holder = lease["spec"].get("holderIdentity") or ""
            assert holder.endswith("-external-cert-manager-controller"), f"Lease held by {holder!r}"
            await controller.stop()
            lease = await client.get(LEASES, "cert-manager-controller", namespace)
            assert not lease["spec"].get("holderIdentity"), "the controller kept its Lease after SIGTERM"
            print(
                f"\n[cert-manager binaries] SelfSigned issued {self_signed_s:.1f} s after start, CA leaf "
                f"and injection done {time.monotonic() - started:.1f} s after start"
            )
        finally:
            await cainjector.stop()
            await controller.stop()
            for resource, name in ((VALIDATING, vwc), (CLUSTER_ISSUERS, cluster_issuer)):
                with contextlib.suppress(ApiError):  # absent if the test failed before creating it
                    await client.delete(resource, name)


def webhook_argv(bin_dir: Path, plane: ControlPlane, namespace: str, port: int, health: int) -> list[str]:
    """The release manifest's arguments (the Service's DNS names plus localhost, which the test calls)."""
    service = "cert-manager-webhook"
    return [
        str(bin_dir / "webhook"),
        "--v=2",
        f"--secure-port={port}",
        f"--dynamic-serving-ca-secret-namespace={namespace}",
        f"--dynamic-serving-ca-secret-name={service}-ca",
        f"--dynamic-serving-dns-names={service},{service}.{namespace},{service}.{namespace}.svc,localhost",
        f"--healthz-port={health}",
        "--metrics-listen-address=0",
        f"--kubeconfig={plane.kubeconfig_path}",
    ]


@pytest.mark.timeout(BUILD_TIMEOUT + 120)
async def test_webhook_validates_with_injected_ca(
    control_plane: ControlPlane, namespace: str, tmp_path: Path
) -> None:
    started = time.monotonic()
    bin_dir = await binaries()
    await control_plane.install_crds(await cert_manager_crds())
    async with KubeClient.from_kubeconfig(control_plane.kubeconfig_path) as client:
        port, health = free_port(), free_port()
        webhook = ManagedProcess(
            "cert-manager-webhook",
            webhook_argv(bin_dir, control_plane, namespace, port, health),
            tmp_path / "webhook.log",
        )
        cainjector = ManagedProcess(
            "cert-manager-cainjector",
            cainjector_argv(bin_dir, control_plane, namespace),
            tmp_path / "cainjector.log",
        )
        vwc = f"cm-webhook-{namespace}"
        try:
            await webhook.start()
            await cainjector.start()
            await wait_healthy(webhook, health, "/livez")
            await wait_healthy(webhook, health, "/healthz")

            certificates = {"apiGroups": ["cert-manager.io"], "resources": ["certificates"]}
            configuration = webhook_configuration(
                vwc,
                annotation="inject-ca-from-secret",
                source=f"{namespace}/cert-manager-webhook-ca",
                url=f"https://localhost:{port}/validate",
                rule=certificates,
                namespace=namespace,
            )
            await client.create(VALIDATING, configuration)
            bundle = await injected_bundle(client, vwc, webhook)
            secret = await client.get(SECRETS, "cert-manager-webhook-ca", namespace)
            assert bundle == base64.b64decode(secret["data"]["ca.crt"]), "caBundle is not the webhook's CA"

            # A Certificate with neither a common name nor a SAN: the webhook must refuse it.
            invalid = certificate("invalid", namespace, "none")

            async def refused() -> str | None:
                webhook.check_alive()
                try:
                    await client.create(CERTIFICATES, invalid, dry_run=True)
                except ApiError as error:
                    return str(error) if "denied the request" in str(error) else None
                return None

            message = await eventually(refused, 30, "the webhook to refuse an invalid Certificate")
            assert "probe.cert-manager-binaries.test" in message, message
            elapsed = time.monotonic() - started
            print(f"\n[cert-manager binaries] webhook refused a bad Certificate {elapsed:.1f} s after start")
            print(f"[cert-manager binaries] {message[:300]}")
        finally:
            await cainjector.stop()
            await webhook.stop()
            with contextlib.suppress(ApiError):
                await client.delete(VALIDATING, vwc)
