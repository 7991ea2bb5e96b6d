"""Fuzzing the admission handler: any object, any operation, on any route, gives a clean verdict."""

import asyncio
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from incluster_ipam.api.constants import API_VERSION_V1ALPHA2
from incluster_ipam.webhooks.admission import ROUTES, AdmissionRequest, PoolAdmission
from tests.unit.api.test_fuzz import ip_spec_dict, json_value, prefix_spec_dict


class _NoCluster:
    async def __call__(self, *args: Any) -> list[Any]:
        return []


@settings(max_examples=150, deadline=None)
@given(
    st.sampled_from(ROUTES),
    st.sampled_from(["CREATE", "UPDATE", "DELETE", "CONNECT", "?"]),
    ip_spec_dict | prefix_spec_dict | json_value,
    ip_spec_dict | prefix_spec_dict | json_value,
)
def test_admission_never_raises(route: Any, operation: str, new: Any, old: Any) -> None:
    def wrap(spec: Any) -> Any:
        return {
            "apiVersion": API_VERSION_V1ALPHA2,
            "kind": route.kind.kind,
            "metadata": {"name": "p", "namespace": "n"},
            "spec": spec,
        }

    request = AdmissionRequest(
        "admission.k8s.io/v1", "u", operation, route.kind.kind, "p", "n", wrap(new), wrap(old)
    )
    admission = PoolAdmission(_NoCluster(), _NoCluster())
    verdict = asyncio.run(admission.review(route, request))
    if verdict.status is not None:
        assert verdict.status.code in (400, 422)
        assert verdict.status.to_dict()["message"]
