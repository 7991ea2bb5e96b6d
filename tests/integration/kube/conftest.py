"""The kube client's integration tests share the runtime suite's client fixture (one control plane)."""

from tests.integration.runtime.conftest import kube

__all__ = ["kube"]
