"""One control plane for the review findings' tests that leave it healthy (each works in namespaces of its
own); modules that reconfigure the pool CRDs or register webhooks bring a control plane of their own."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from incluster_ipam.api.crds import crds
from incluster_ipam.devcluster import ControlPlane
from incluster_ipam.kube import KubeClient

from ..faults.helpers import Cluster


@pytest.fixture(scope="package")
async def plane(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[ControlPlane]:
    workdir: Path = tmp_path_factory.mktemp("review-cp")
    async with ControlPlane(extra_crds=crds(""), workdir=workdir) as control_plane:
        yield control_plane


@pytest.fixture(scope="module")
async def cluster(plane: ControlPlane) -> AsyncIterator[Cluster]:
    async with KubeClient.from_kubeconfig(plane.kubeconfig_path) as client:
        yield Cluster(plane, client)
