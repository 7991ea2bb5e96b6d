"""Webhook outage: with the server down, failurePolicy Fail refuses pool writes (nothing is stored) and
v1alpha1 reads fail; once the server is back on the same port, everything works again."""

from __future__ import annotations

from tests.integration.webhooks.conftest import Answer, Webhooks, eventually, pool_body, pool_kind

KIND = pool_kind("InClusterIPPool")
SPEC = {"addresses": ["10.80.0.10-10.80.0.20"], "prefix": 24}


def failed_calling(answer: Answer, webhook: str) -> bool:
    return answer.status == 500 and f'failed calling webhook "{webhook}"' in answer.message


async def test_pool_writes_fail_closed_while_the_server_is_down(hooks: Webhooks, namespace: str) -> None:
    existing = await hooks.api.create(pool_body(KIND, "existing", SPEC, namespace=namespace))
    assert existing.status == 201, existing.body
    port = hooks.server.port

    await hooks.server.stop()
    try:
        # mutation comes first on create, so its webhook is the one that cannot be called
        answer = await hooks.api.create(pool_body(KIND, "during-outage", SPEC, namespace=namespace))
        assert failed_calling(answer, "default.inclusterippool.ipam.cluster.x-k8s.io"), answer.body
        assert (await hooks.api.get(KIND, "during-outage", namespace)).status == 404

        # delete only has the validating webhook; it fails closed too, and the pool stays
        answer = await hooks.api.delete(KIND, "existing", namespace)
        assert failed_calling(answer, "validation.inclusterippool.ipam.cluster.x-k8s.io"), answer.body
        assert (await hooks.api.get(KIND, "existing", namespace)).status == 200

        # the deprecated version needs the conversion webhook
        answer = await hooks.api.get(KIND, "existing", namespace, version="v1alpha1")
        assert answer.status == 500, answer.body
        assert (
            "conversion webhook for ipam.cluster.x-k8s.io/v1alpha2, Kind=InClusterIPPool failed"
            in answer.message
        )
    finally:
        await hooks.server.start()
    assert hooks.server.port == port

    async def created() -> Answer | None:
        answer = await hooks.api.create(pool_body(KIND, "after-outage", SPEC, namespace=namespace))
        return answer if answer.status == 201 else None

    await eventually(created, 10.0, "a pool create after the server came back")
    answer = await hooks.api.get(KIND, "existing", namespace, version="v1alpha1")
    assert (answer.status, answer.body["spec"]) == (200, SPEC)
