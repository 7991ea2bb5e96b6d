"""cert-manager's controller and cainjector as built by hack/cert-manager/binaries/build.sh (our own mains
against the root module), run as processes against the session control plane with the arguments the release
manifest passes them (plus --kubeconfig and loopback listeners).

The controller must issue from a SelfSigned Issuer (a CA Certificate) and from a CA Issuer made of that
Secret (a leaf signed by it), with leader election on and /livez answering; the cainjector must copy the
CA Certificate's ca.crt into a ValidatingWebhookConfiguration annotated cert-manager.io/inject-ca-from.
A missing binary or a process that dies fails the test with its log tail.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import time
from pathlib import Path
from typing import Any

from cryptography import x509

from incluster_ipam.devcluster import ControlPlane
from incluster_ipam.devcluster.controlplane import free_port
from incluster_ipam.devcluster.process import ManagedProcess
from incluster_ipam.kube import ApiError, KubeClient, Resource
from incluster_ipam.kube.resources import SECRETS

from ..integration.support import eventually
from .clusterctl import cert_manager_crds
from .providers import build, wait_healthy

ISSUERS = Resource("cert-manager.io", "v1", "issuers", "Issuer", True)
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


def issuer(name: str, namespace: str, spec: dict[str, Any]) -> dict[str, Any]:
    meta = {"name": name, "namespace": namespace}
    return {"apiVersion": "cert-manager.io/v1", "kind": "Issuer", "metadata": meta, "spec": spec}


def certificate(name: str, namespace: str, issuer_name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "cert-manager.io/v1",
        "kind": "Certificate",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"secretName": name, "issuerRef": {"name": issuer_name, "kind": "Issuer"}, **spec},
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


def webhook_configuration(name: str, inject_from: str) -> dict[str, Any]:
    """A webhook configuration for nothing anyone creates (ignored on failure): only its caBundle matters."""
    hook = {
        "name": "probe.cert-manager-binaries.test",
        "clientConfig": {"url": "https://127.0.0.1:9/validate"},
        "rules": [
            {
                "apiGroups": ["cert-manager-binaries.test"],
                "apiVersions": ["v1"],
                "operations": ["CREATE"],
                "resources": ["nothings"],
            }
        ],
        "failurePolicy": "Ignore",
        "sideEffects": "None",
        "admissionReviewVersions": ["v1"],
    }
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": name, "annotations": {"cert-manager.io/inject-ca-from": inject_from}},
        "webhooks": [hook],
    }


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
        vwc = f"cm-binaries-{namespace}"
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

            # cainjector: the CA Certificate's ca.crt into the annotated webhook configuration
            await client.create(VALIDATING, webhook_configuration(vwc, f"{namespace}/root"))

            async def injected() -> bytes | None:
                cainjector.check_alive()
                hooks = (await client.get(VALIDATING, vwc))["webhooks"]
                bundle = hooks[0]["clientConfig"].get("caBundle")
                return base64.b64decode(bundle) if bundle else None

            bundle = await eventually(injected, 30, f"cainjector to inject {namespace}/root into {vwc}")
            assert bundle.decode() == root["ca.crt"], "the injected caBundle is not the Certificate's CA"
            print(
                f"\n[cert-manager binaries] SelfSigned issued {self_signed_s:.1f} s after start, CA leaf "
                f"and injection done {time.monotonic() - started:.1f} s after start"
            )
        finally:
            await cainjector.stop()
            await controller.stop()
            with contextlib.suppress(ApiError):  # absent if the test failed before creating it
                await client.delete(VALIDATING, vwc)
