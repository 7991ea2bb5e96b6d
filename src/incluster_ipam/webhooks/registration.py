"""Registering the webhooks with an API server: the (Validating|Mutating)WebhookConfiguration objects
(spec §3), and `install_webhooks` for local runs and tests.

The builders are pure and take an endpoint: `UrlEndpoint` (``https://127.0.0.1:<port>`` plus the CA that
signed the server's certificate, for a webhook server outside the cluster) or `ServiceEndpoint` (an in-cluster
Service, for the manifests; cert-manager injects the CA there). Paths and webhook names come from
`incluster_ipam.webhooks.admission.ROUTES`, so the server and its registration cannot disagree.

`install_webhooks` needs cluster-admin rights (it writes CRDs and webhook configurations): it is for a
provider run against a development cluster and for the integration tests, never for an in-cluster deployment,
which gets all of this from its manifests.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final

from incluster_ipam.api.constants import (
    API_VERSION_V1ALPHA1,
    API_VERSION_V1ALPHA2,
    GLOBAL_IN_CLUSTER_IP_POOL,
    GLOBAL_IN_CLUSTER_PREFIX_POOL,
    GROUP,
    V1ALPHA1,
    V1ALPHA2,
    PoolKind,
)
from incluster_ipam.api.crds import crds
from incluster_ipam.kube import ApiError, KubeClient, KubeError, Resource
from incluster_ipam.kube.resources import CRDS
from incluster_ipam.webhooks.admission import ROUTES, Route

log = logging.getLogger(__name__)

ADMISSION_GROUP: Final = "admissionregistration.k8s.io"
ADMISSION_API_VERSION: Final = f"{ADMISSION_GROUP}/v1"
VALIDATING_CONFIGURATIONS: Final = Resource(
    ADMISSION_GROUP, "v1", "validatingwebhookconfigurations", "ValidatingWebhookConfiguration", False
)
MUTATING_CONFIGURATIONS: Final = Resource(
    ADMISSION_GROUP, "v1", "mutatingwebhookconfigurations", "MutatingWebhookConfiguration", False
)

#: Names in the kustomize base (kubebuilder's); a kustomize ``namePrefix`` is put in front of them.
VALIDATING_NAME: Final = "validating-webhook-configuration"
MUTATING_NAME: Final = "mutating-webhook-configuration"
#: The prefix `install_webhooks` uses, so a local registration never collides with an installed provider's.
LOCAL_NAME_PREFIX: Final = "incluster-ipam-"
#: Seconds the API server waits for an answer. The server gives up on a lookup after 5 s (and denies), so
#: this leaves room for that answer to arrive.
DEFAULT_TIMEOUT_SECONDS: Final = 10

VALIDATING_OPERATIONS: Final = ("CREATE", "UPDATE", "DELETE")
MUTATING_OPERATIONS: Final = ("CREATE", "UPDATE")

#: Name of the dry-run objects `install_webhooks` probes with (never stored).
PROBE_NAME: Final = "incluster-ipam-webhook-probe"


def _b64(pem: bytes) -> str:
    return base64.b64encode(pem).decode("ascii")


@dataclass(frozen=True)
class UrlEndpoint:
    """A webhook server the API server reaches by URL, e.g. ``https://127.0.0.1:9443`` (local runs, tests).

    ``ca_bundle`` is the PEM of the CA that signed the server's certificate (None: the API server's trust
    store)."""

    base_url: str
    ca_bundle: bytes | None = None

    def client_config(self, path: str) -> dict[str, Any]:
        config: dict[str, Any] = {"url": self.base_url.rstrip("/") + path}
        if self.ca_bundle is not None:
            config["caBundle"] = _b64(self.ca_bundle)
        return config


@dataclass(frozen=True)
class ServiceEndpoint:
    """A webhook server behind an in-cluster Service (the manifests). The defaults are the kustomize base's
    names (as for the CRDs' conversion webhook); ``port`` None means the API server's default, 443."""

    name: str = "webhook-service"
    namespace: str = "system"
    port: int | None = None
    ca_bundle: bytes | None = None

    def client_config(self, path: str) -> dict[str, Any]:
        service: dict[str, Any] = {"name": self.name, "namespace": self.namespace, "path": path}
        if self.port is not None:
            service["port"] = self.port
        config: dict[str, Any] = {"service": service}
        if self.ca_bundle is not None:
            config["caBundle"] = _b64(self.ca_bundle)
        return config


Endpoint = UrlEndpoint | ServiceEndpoint


def webhook(
    route: Route, endpoint: Endpoint, *, timeout_seconds: int = DEFAULT_TIMEOUT_SECONDS
) -> dict[str, Any]:
    """One entry of a webhook configuration: upstream's kubebuilder markers (spec §3)."""
    operations = MUTATING_OPERATIONS if route.mutating else VALIDATING_OPERATIONS
    entry: dict[str, Any] = {
        "name": route.name,
        "admissionReviewVersions": ["v1", "v1beta1"],
        "clientConfig": endpoint.client_config(route.path),
        "failurePolicy": "Fail",
        "matchPolicy": "Equivalent",
        "rules": [
            {
                "apiGroups": [GROUP],
                "apiVersions": [V1ALPHA2],
                "operations": list(operations),
                "resources": [route.kind.plural],
            }
        ],
        "sideEffects": "None",
        "timeoutSeconds": timeout_seconds,
    }
    if route.mutating:
        entry["reinvocationPolicy"] = "Never"
    return entry


def _configuration(
    kind: str, name: str, mutating: bool, endpoint: Endpoint, timeout_seconds: int
) -> dict[str, Any]:
    return {
        "apiVersion": ADMISSION_API_VERSION,
        "kind": kind,
        "metadata": {"name": name},
        "webhooks": [
            webhook(route, endpoint, timeout_seconds=timeout_seconds)
            for route in ROUTES
            if route.mutating is mutating
        ],
    }


def validating_webhook_configuration(
    endpoint: Endpoint, *, name: str = VALIDATING_NAME, timeout_seconds: int = DEFAULT_TIMEOUT_SECONDS
) -> dict[str, Any]:
    """The ValidatingWebhookConfiguration: CREATE, UPDATE and DELETE of the four kinds' v1alpha2."""
    return _configuration(VALIDATING_CONFIGURATIONS.kind, name, False, endpoint, timeout_seconds)


def mutating_webhook_configuration(
    endpoint: Endpoint, *, name: str = MUTATING_NAME, timeout_seconds: int = DEFAULT_TIMEOUT_SECONDS
) -> dict[str, Any]:
    """The MutatingWebhookConfiguration: CREATE and UPDATE of the four kinds' v1alpha2."""
    return _configuration(MUTATING_CONFIGURATIONS.kind, name, True, endpoint, timeout_seconds)


def webhook_configurations(
    endpoint: Endpoint, *, name_prefix: str = "", timeout_seconds: int = DEFAULT_TIMEOUT_SECONDS
) -> list[dict[str, Any]]:
    """Both configurations, validating first, named ``<name_prefix><base name>``."""
    return [
        validating_webhook_configuration(
            endpoint, name=name_prefix + VALIDATING_NAME, timeout_seconds=timeout_seconds
        ),
        mutating_webhook_configuration(
            endpoint, name=name_prefix + MUTATING_NAME, timeout_seconds=timeout_seconds
        ),
    ]


# ---- installing against a live API server --------------------------------------------------------------


async def create_or_replace(client: KubeClient, resource: Resource, obj: dict[str, Any]) -> dict[str, Any]:
    """Create ``obj``, or replace the existing object of that name (retrying on write conflicts)."""
    try:
        return await client.create(resource, obj)
    except ApiError as exc:
        if not exc.is_already_exists:
            raise
    name = obj["metadata"]["name"]
    attempts = 5
    while True:
        current = await client.get(resource, name)
        version = current["metadata"]["resourceVersion"]
        try:
            return await client.replace(
                resource, {**obj, "metadata": {**obj["metadata"], "resourceVersion": version}}
            )
        except ApiError as exc:
            attempts -= 1
            if not exc.is_conflict or attempts == 0:
                raise


def _pool_resource(kind: PoolKind, version: str) -> Resource:
    return Resource(GROUP, version, kind.plural, kind.kind, kind.namespaced)


async def _probe_validation_and_conversion(client: KubeClient) -> str | None:
    """None once an invalid v1alpha1 pool is refused by our validating webhook with only the gateway error:
    the API server converted it through /convert (the subnet became addresses; matchPolicy Equivalent hands
    the webhook a v1alpha2 object) and called the validating webhook."""
    kind = GLOBAL_IN_CLUSTER_IP_POOL
    probe = {
        "apiVersion": API_VERSION_V1ALPHA1,
        "kind": kind.kind,
        "metadata": {"name": PROBE_NAME},
        "spec": {"subnet": "192.0.2.0/24", "gateway": "probe"},
    }
    expected = (
        f'admission webhook "validation.{kind.singular}.{GROUP}" denied the request: '
        f'{kind.qualified} "{PROBE_NAME}" is invalid: '
        'spec.gateway: Invalid value: "probe": ParseAddr("probe"): unable to parse IP'
    )
    try:
        await client.create(_pool_resource(kind, V1ALPHA1), probe, dry_run=True)
    except ApiError as exc:
        return None if exc.message == expected else f"{exc.status} {exc.message}"
    except KubeError as exc:
        return str(exc)
    return "an invalid pool was accepted"


async def _probe_mutation(client: KubeClient) -> str | None:
    """None once the mutating webhook defaults ``allocationPrefixLength: 0`` to 64 (without it, the CRD
    schema refuses 0)."""
    kind = GLOBAL_IN_CLUSTER_PREFIX_POOL
    probe = {
        "apiVersion": API_VERSION_V1ALPHA2,
        "kind": kind.kind,
        "metadata": {"name": PROBE_NAME},
        "spec": {"prefixes": ["2001:db8::/64"], "allocationPrefixLength": 0},
    }
    try:
        created = await client.create(_pool_resource(kind, V1ALPHA2), probe, dry_run=True)
    except KubeError as exc:
        return str(exc)
    length = (created.get("spec") or {}).get("allocationPrefixLength")
    return None if length == 64 else f"allocationPrefixLength came back as {length!r}"


async def _probe_no_validation(client: KubeClient) -> str | None:
    """None once an invalid pool is accepted: no webhook is called any more."""
    kind = GLOBAL_IN_CLUSTER_IP_POOL
    probe = {
        "apiVersion": API_VERSION_V1ALPHA2,
        "kind": kind.kind,
        "metadata": {"name": PROBE_NAME},
        "spec": {"addresses": [], "prefix": 24},
    }
    try:
        await client.create(_pool_resource(kind, V1ALPHA2), probe, dry_run=True)
    except KubeError as exc:
        return str(exc)
    return None


async def _probe_no_mutation(client: KubeClient) -> str | None:
    """None once ``allocationPrefixLength: 0`` reaches the CRD schema unchanged: no mutating webhook."""
    kind = GLOBAL_IN_CLUSTER_PREFIX_POOL
    probe = {
        "apiVersion": API_VERSION_V1ALPHA2,
        "kind": kind.kind,
        "metadata": {"name": PROBE_NAME},
        "spec": {"prefixes": ["2001:db8::/64"], "allocationPrefixLength": 0},
    }
    try:
        await client.create(_pool_resource(kind, V1ALPHA2), probe, dry_run=True)
    except ApiError as exc:
        schema = "spec.allocationPrefixLength in body should be greater than or equal to 1"
        return None if exc.status == 422 and schema in exc.message else f"{exc.status} {exc.message}"
    except KubeError as exc:
        return str(exc)
    return "allocationPrefixLength 0 was accepted"


async def _wait(
    what: str,
    probes: list[Callable[[KubeClient], Awaitable[str | None]]],
    client: KubeClient,
    wait_seconds: float,
) -> None:
    deadline = time.monotonic() + wait_seconds
    pending = list(probes)
    last: str | None = None
    while pending:
        answer = await pending[0](client)
        if answer is None:
            pending.pop(0)
            continue
        last = answer
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not within {wait_seconds:g} s; last answer: {last}")
        await asyncio.sleep(0.1)


async def install_webhooks(
    client: KubeClient,
    base_url: str,
    ca_pem: bytes,
    *,
    name_prefix: str = LOCAL_NAME_PREFIX,
    timeout_seconds: int = DEFAULT_TIMEOUT_SECONDS,
    wait_seconds: float = 60.0,
) -> None:
    """Point the API server at a running webhook server at ``base_url`` (its certificate signed by
    ``ca_pem``): create or replace the four pool CRDs with conversion at ``<base_url>/convert`` and both
    webhook configurations, then wait (up to ``wait_seconds``, else `TimeoutError`) until the API server
    really calls conversion, validation and mutation, as configuration changes reach it asynchronously.

    The server must already be serving, with lookups that see the pools (dry-run probes go through it)."""
    # The API server applies CRD changes in order, so once the probe sees GlobalInClusterIPPool convert
    # through this server, InClusterIPPool (replaced before it) does too; prefix pools never convert.
    for crd in crds(base_url, ca_pem):
        await create_or_replace(client, CRDS, crd)
    endpoint = UrlEndpoint(base_url, ca_pem)
    configurations = webhook_configurations(
        endpoint, name_prefix=name_prefix, timeout_seconds=timeout_seconds
    )
    for configuration, resource in zip(
        configurations, (VALIDATING_CONFIGURATIONS, MUTATING_CONFIGURATIONS), strict=True
    ):
        await create_or_replace(client, resource, configuration)
    await _wait(
        f"webhooks at {base_url}",
        [_probe_validation_and_conversion, _probe_mutation],
        client,
        wait_seconds,
    )
    log.info("webhooks and pool CRDs installed, served at %s", base_url)


async def uninstall_webhooks(
    client: KubeClient, *, name_prefix: str = LOCAL_NAME_PREFIX, wait_seconds: float = 60.0
) -> None:
    """Undo `install_webhooks`, keeping the CRDs and every pool: delete both webhook configurations, switch
    the pool CRDs' conversion to None (a stopped server must not break reads), and wait until the API
    server no longer calls the webhooks."""
    for resource, name in (
        (VALIDATING_CONFIGURATIONS, name_prefix + VALIDATING_NAME),
        (MUTATING_CONFIGURATIONS, name_prefix + MUTATING_NAME),
    ):
        try:
            await client.delete(resource, name)
        except ApiError as exc:
            if not exc.is_not_found:
                raise
    for crd in crds(""):
        try:
            await client.get(CRDS, crd["metadata"]["name"])
        except ApiError as exc:
            if exc.is_not_found:
                continue
            raise
        await create_or_replace(client, CRDS, crd)
    await _wait("webhooks gone", [_probe_no_validation, _probe_no_mutation], client, wait_seconds)
