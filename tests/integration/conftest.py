"""Fixtures backed by a real local control plane (etcd + kube-apiserver with the Cluster API CRDs).

If the control plane cannot start, every test that needs it errors with the failing process's log tail:
integration tests never skip.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from kubernetes_asyncio import client

from incluster_ipam.devcluster import ControlPlane


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/integration/" in item.nodeid.replace("\\", "/"):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
async def control_plane() -> AsyncIterator[ControlPlane]:
    async with ControlPlane() as plane:
        yield plane


def api_client_for(plane: ControlPlane) -> client.ApiClient:
    """A kubernetes_asyncio client authenticated as the control plane's admin."""
    configuration = client.Configuration(host=plane.server)
    configuration.ssl_ca_cert = str(plane.ca_file)
    configuration.cert_file = str(plane.admin_cert_file)
    configuration.key_file = str(plane.admin_key_file)
    return client.ApiClient(configuration)


@pytest.fixture(scope="session")
async def api_client(control_plane: ControlPlane) -> AsyncIterator[client.ApiClient]:
    api = api_client_for(control_plane)
    yield api
    await api.close()


@pytest.fixture
async def namespace(api_client: client.ApiClient) -> AsyncIterator[str]:
    """A fresh namespace per test (generated name), deleted afterwards."""
    name = f"t-{uuid.uuid4().hex[:10]}"
    core = client.CoreV1Api(api_client)
    await core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    yield name
    await core.delete_namespace(name)
