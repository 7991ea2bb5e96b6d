"""End-to-end tests: the workflows users run (a real infrastructure provider as the client, clusterctl,
the garbage collector, restores), against real processes on this machine.

They are part of `make test` and run alone with `make e2e`. Every e2e test also counts as an integration test:
if a component cannot start it fails with the component's log tail, and a skipped e2e test fails the run.
The control-plane fixtures are the integration suite's (one real kube-apiserver + etcd per session).
"""

from __future__ import annotations

import pytest

from tests.integration.conftest import api_client, control_plane, namespace

__all__ = ["api_client", "control_plane", "namespace"]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/e2e/" in item.nodeid.replace("\\", "/"):
            item.add_marker(pytest.mark.e2e)
            item.add_marker(pytest.mark.integration)
