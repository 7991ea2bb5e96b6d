"""Finding 1 of the December review: the webhook port took 64 MiB bodies on every path, from anyone, and
parsed them whole with stdlib json on the event loop; one 36 MB POST took the provider from about 60 MB to
about 950 MB and blocked its loop for seconds. Now admission bodies over 7 MiB are refused before they are
read (by Content-Length, and by a streaming cap for chunked bodies), and a ConversionReview is parsed one
object at a time, so a large legitimate list still converts and a hostile body never materializes.

The process-level figures (peak RSS under a 256 MiB memory limit, a claim bound right after) are in
tests/integration/review/test_finding_01_hostile_bodies.py."""

from __future__ import annotations

import asyncio
import json
import sys
import tracemalloc
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from incluster_ipam.api.constants import API_VERSION_V1ALPHA1, API_VERSION_V1ALPHA2
from incluster_ipam.webhooks import build_app
from tests.unit.webhooks.fakes import FakeCluster, path, pool_object, review

MIB = 1 << 20
HOSTILE = b"[" + b",".join([b"[]"] * 12_000_000) + b"]"  # 36 MB of empty lists


@pytest.fixture
async def client() -> AsyncIterator[TestClient[Any, Any]]:
    cluster = FakeCluster()
    async with TestClient(TestServer(build_app(cluster.addresses_of, cluster.pools_from))) as test_client:
        yield test_client


def conversion(objects: list[Any], desired: str = API_VERSION_V1ALPHA2) -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "ConversionReview",
        "request": {"uid": "c-1", "desiredAPIVersion": desired, "objects": objects},
    }


async def test_finding_01_an_admission_body_over_7_mib_is_refused_by_its_length(
    client: TestClient[Any, Any],
) -> None:
    body = b" " * (7 * MIB + 1)
    async with client.post(path("InClusterIPPool"), data=body) as resp:
        assert resp.status == 413


async def test_finding_01_a_chunked_admission_body_over_7_mib_is_cut_off(
    client: TestClient[Any, Any],
) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(8):
            yield b" " * MIB

    async with client.post(path("GlobalInClusterIPPool"), data=chunks()) as resp:
        assert resp.status == 413


async def test_finding_01_a_legitimate_review_near_the_limit_is_answered(
    client: TestClient[Any, Any],
) -> None:
    spec = {"addresses": ["10.0.0.1"], "prefix": 24}
    body = json.dumps(review("CREATE", pool_object("InClusterIPPool", spec))).encode()
    padded = body[:-1] + b" " * (6 * MIB) + body[-1:]
    async with client.post(path("InClusterIPPool"), data=padded) as resp:
        assert resp.status == 200
        assert (await resp.json())["response"]["allowed"] is True


_SENDER = """
import http.client, sys
body = open(sys.argv[2], "rb").read()
connection = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]), timeout=120)
try:
    connection.request("POST", "/convert", body, {"Content-Type": "application/json"})
    response = connection.getresponse()
    sys.stdout.write(f"{response.status} {response.read()[:300].decode(errors='replace')}")
except (ConnectionError, OSError) as exc:
    sys.stdout.write(f"000 {exc!r}")
"""


async def post_from_elsewhere(
    client: TestClient[Any, Any], body: bytes, tmp_path: Path
) -> tuple[int, str, int]:
    """POST `body` from another process (so this process holds only the server's side of it); the status,
    the start of the answer and the peak of this process's Python allocations meanwhile."""
    path = tmp_path / "body.json"
    path.write_bytes(body)
    port = client.server.port
    assert port is not None
    tracemalloc.start()
    try:
        sender = await asyncio.create_subprocess_exec(
            sys.executable, "-c", _SENDER, str(port), str(path), stdout=asyncio.subprocess.PIPE
        )
        out, _ = await asyncio.wait_for(sender.communicate(), 120)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    status, _, text = out.decode().partition(" ")
    return int(status), text, peak


async def test_finding_01_a_hostile_conversion_body_is_never_materialized(
    client: TestClient[Any, Any], tmp_path: Path
) -> None:
    status, text, peak = await post_from_elsewhere(client, HOSTILE, tmp_path)
    assert status in (400, 413), text
    # Parsing the 36 MB whole would allocate over 700 MB of Python lists.
    assert peak < 32 * MIB, f"peak {peak / MIB:.0f} MiB of Python allocations"


async def test_finding_01_hostile_objects_inside_a_valid_review_fail_fast(
    client: TestClient[Any, Any], tmp_path: Path
) -> None:
    prefix = json.dumps(conversion([]))[: -len("]}}")].encode()
    one_object = b"[" + b",".join([b"[[]]"] * 1_500_000) + b"]"  # 7.5 MB of nested lists, one object
    for body in (prefix + b",".join([b"[[[[]]]]"] * 4_000_000) + b"]}}", prefix + one_object + b"]}}"):
        status, text, peak = await post_from_elsewhere(client, body, tmp_path)
        print(f"peak {peak / MIB:.0f} MiB, answer {status}")
        assert peak < 100 * MIB, f"peak {peak / MIB:.0f} MiB of Python allocations"
        if status == 200:
            assert '"status":"Failure"' in text.replace(" ", ""), text
        else:
            assert status in (400, 413), text


async def test_finding_01_a_large_legitimate_list_still_converts(client: TestClient[Any, Any]) -> None:
    objects = [
        pool_object(
            "InClusterIPPool",
            {"start": f"10.{i // 250}.{i % 250}.1", "end": f"10.{i // 250}.{i % 250}.200", "prefix": 24},
            name=f"pool-{i}",
            api_version=API_VERSION_V1ALPHA1,
        )
        for i in range(5000)
    ]
    async with client.post("/convert", json=conversion(objects)) as resp:
        assert resp.status == 200
        answer = await resp.json()
    response = answer["response"]
    assert (response["uid"], response["result"]["status"]) == ("c-1", "Success")
    converted = response["convertedObjects"]
    assert [o["metadata"]["name"] for o in converted] == [f"pool-{i}" for i in range(5000)]
    assert converted[7]["spec"]["addresses"] == ["10.0.7.1-10.0.7.200"]
    assert all(o["apiVersion"] == API_VERSION_V1ALPHA2 for o in converted)
