"""Finding 10 of the December review: every unseen bearer token on `/metrics` sent a TokenReview, with no
limit on how many at once, over the connection pool and priority flow the lease renewals use. Random tokens
never hit the cache, so any pod could flood the apiserver on the provider's behalf and starve its lease.
Reviews are now bounded in flight, callers beyond a small queue are turned away at once, and the lease has a
connection pool of its own (see the provider tests)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from incluster_ipam.kube import Obj, Resource
from incluster_ipam.serving.diagnostics import KubeAuthorizer
from tests.unit.serving.test_diagnostics import ScriptedApi


class SlowApi(ScriptedApi):
    """Answers reviews after a pause and records how many were in flight at once."""

    def __init__(self) -> None:
        super().__init__()
        self.in_flight = 0
        self.peak = 0

    async def create(self, resource: Resource, obj: Obj, /) -> Obj:
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        try:
            await asyncio.sleep(0.01)
            return await super().create(resource, obj)
        finally:
            self.in_flight -= 1


async def test_finding_10_random_tokens_cannot_flood_the_apiserver_with_reviews() -> None:
    api = SlowApi()
    authorizer = KubeAuthorizer(api)
    decisions: list[Any] = await asyncio.gather(
        *(authorizer.authorize(f"Bearer {uuid.uuid4()}", "/metrics", "get") for _ in range(2000))
    )
    assert all(not d.allowed for d in decisions)
    assert api.peak <= 4, f"{api.peak} reviews in flight at once"
    assert len(api.requests) < 2000, "callers beyond the queue must be turned away without a review"
    assert {d.status for d in decisions} <= {401, 429}


async def test_finding_10_a_known_scraper_still_gets_through_a_flood() -> None:
    api = SlowApi()
    api.users["scraper-token"] = {"username": "system:serviceaccount:mon:prom"}
    api.readers.add("system:serviceaccount:mon:prom")
    authorizer = KubeAuthorizer(api)
    assert (await authorizer.authorize("Bearer scraper-token", "/metrics", "get")).allowed  # now cached
    flood = [authorizer.authorize(f"Bearer {uuid.uuid4()}", "/metrics", "get") for _ in range(500)]
    scraper = authorizer.authorize("Bearer scraper-token", "/metrics", "get")
    *_, answer = await asyncio.gather(*flood, scraper)
    assert answer.allowed
