"""KubeClient transport against a small in-process HTTP server: auth headers, token rotation, chunked watch
streams, pagination, discovery and error mapping. (The real apiserver is in tests/integration/runtime.)"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from incluster_ipam.kube import (
    CONFIGMAPS,
    ApiError,
    ClusterConfig,
    KubeClient,
    TransportError,
    WatchDecodeError,
    WatchEvent,
    WatchExpired,
)
from incluster_ipam.kube.client import retry_after_seconds

Routes = Callable[[web.Application], None]


async def collect(stream: AsyncIterable[WatchEvent], into: list[WatchEvent]) -> None:
    async for event in stream:
        into.append(event)


def event_line(event_type: str, name: str, rv: str) -> bytes:
    obj = {"kind": "ConfigMap", "metadata": {"name": name, "namespace": "ns", "resourceVersion": rv}}
    return json.dumps({"type": event_type, "object": obj}).encode() + b"\n"


def reply(data: dict[str, Any]) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handler(request: web.Request) -> web.Response:
        return web.json_response(data)

    return handler


def status(code: int, reason: str, message: str) -> dict[str, Any]:
    return {"kind": "Status", "status": "Failure", "code": code, "reason": reason, "message": message}


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[Routes], Awaitable[KubeClient]]]:
    servers: list[TestServer] = []
    clients: list[KubeClient] = []

    async def start(routes: Routes, token_file: Path | None = None) -> KubeClient:
        app = web.Application()
        routes(app)
        server = TestServer(app, host="127.0.0.1")
        await server.start_server()
        servers.append(server)
        config = ClusterConfig(server=str(server.make_url("")), token="secret", token_file=token_file)
        client = KubeClient(config, timeout=5)
        clients.append(client)
        return client

    yield start
    for client in clients:
        await client.close()
    for server in servers:
        await server.close()


async def test_crud_sends_json_and_bearer_token(serve: Callable[[Routes], Awaitable[KubeClient]]) -> None:
    seen: list[tuple[str, str, str, str | None, Any]] = []

    async def handler(request: web.Request) -> web.Response:
        body = await request.json() if request.can_read_body else None
        seen.append(
            (request.method, request.path_qs, request.headers["Authorization"], request.content_type, body)
        )
        return web.json_response({"kind": "ConfigMap", "metadata": {"name": "a", "resourceVersion": "2"}})

    client = await serve(lambda app: app.router.add_route("*", "/{tail:.*}", handler))
    created = await client.create(CONFIGMAPS, {"metadata": {"name": "a", "namespace": "ns"}})
    assert created["metadata"]["resourceVersion"] == "2"
    await client.patch(CONFIGMAPS, "a", {"data": {"x": "1"}}, "ns")
    await client.delete(CONFIGMAPS, "a", "ns", resource_version="2")
    assert [(m, p, a, c) for m, p, a, c, _ in seen] == [
        ("POST", "/api/v1/namespaces/ns/configmaps", "Bearer secret", "application/json"),
        ("PATCH", "/api/v1/namespaces/ns/configmaps/a", "Bearer secret", "application/merge-patch+json"),
        ("DELETE", "/api/v1/namespaces/ns/configmaps/a", "Bearer secret", "application/json"),
    ]
    assert seen[2][4]["preconditions"] == {"resourceVersion": "2"}


async def test_status_errors_become_api_errors(serve: Callable[[Routes], Awaitable[KubeClient]]) -> None:
    async def handler(request: web.Request) -> web.Response:
        return web.json_response(status(404, "NotFound", 'configmaps "a" not found'), status=404)

    client = await serve(lambda app: app.router.add_get("/{tail:.*}", handler))
    with pytest.raises(ApiError) as info:
        await client.get(CONFIGMAPS, "a", "ns")
    assert info.value.is_not_found
    assert info.value.message == 'configmaps "a" not found'


async def test_rotated_token_is_picked_up_after_a_401(
    serve: Callable[..., Awaitable[KubeClient]], tmp_path: Path
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("old")

    async def handler(request: web.Request) -> web.Response:
        if request.headers["Authorization"] != "Bearer new":
            return web.json_response(status(401, "Unauthorized", "Unauthorized"), status=401)
        return web.json_response({"metadata": {}})

    client = await serve(lambda app: app.router.add_get("/{tail:.*}", handler), token_file)
    with pytest.raises(ApiError) as info:
        await client.get(CONFIGMAPS, "a", "ns")  # the file still holds the rejected token: no retry
    assert info.value.is_unauthorized
    token_file.write_text("new")
    # Within the file check interval the old token goes out once more; its 401 makes the client look at
    # the file, which now holds a different token, and the request is sent again with it.
    assert await client.get(CONFIGMAPS, "a", "ns") == {"metadata": {}}


async def test_a_static_token_is_not_retried_after_a_401(
    serve: Callable[[Routes], Awaitable[KubeClient]],
) -> None:
    calls: list[str] = []

    async def handler(request: web.Request) -> web.Response:
        calls.append(request.headers["Authorization"])
        return web.json_response(status(401, "Unauthorized", "Unauthorized"), status=401)

    client = await serve(lambda app: app.router.add_get("/{tail:.*}", handler))
    with pytest.raises(ApiError):
        await client.get(CONFIGMAPS, "a", "ns")
    assert calls == ["Bearer secret"]


def too_many(retry_after: str | None, seconds: int | None = 1) -> web.Response:
    body = status(429, "TooManyRequests", "too many requests, please try again later")
    if seconds is not None:
        body["details"] = {"retryAfterSeconds": seconds}
    headers = {"Retry-After": retry_after} if retry_after is not None else {}
    return web.json_response(body, status=429, headers=headers)


async def test_429_with_a_short_retry_after_is_waited_out(
    serve: Callable[[Routes], Awaitable[KubeClient]],
) -> None:
    calls: list[str] = []

    async def handler(request: web.Request) -> web.Response:
        calls.append(request.method)
        if len(calls) < 3:
            return too_many("0")
        return web.json_response({"metadata": {"name": "a"}})

    client = await serve(lambda app: app.router.add_route("*", "/{tail:.*}", handler))
    assert await client.create(CONFIGMAPS, {"metadata": {"name": "a", "namespace": "ns"}}) == {
        "metadata": {"name": "a"}
    }
    assert calls == ["POST", "POST", "POST"]


async def test_429_beyond_the_cap_or_the_timeout_or_without_retry_after_is_the_callers(
    serve: Callable[[Routes], Awaitable[KubeClient]],
) -> None:
    answers = iter([too_many("60", 60), too_many("3"), too_many(None, None)])
    calls: list[str] = []

    async def handler(request: web.Request) -> web.Response:
        calls.append(request.method)
        return next(answers)

    client = await serve(lambda app: app.router.add_get("/{tail:.*}", handler))
    with pytest.raises(ApiError) as info:
        await client.get(CONFIGMAPS, "a", "ns")  # 60 s is more than MAX_RETRY_AFTER
    assert (info.value.is_too_many_requests, info.value.retry_after) == (True, 60.0)
    with pytest.raises(ApiError):
        await client.get(CONFIGMAPS, "a", "ns", request_timeout=2)  # 3 s does not fit into 2 s
    with pytest.raises(ApiError):
        await client.get(CONFIGMAPS, "a", "ns")  # nothing says when to come back
    assert calls == ["GET", "GET", "GET"]


def test_retry_after_header_forms() -> None:
    assert retry_after_seconds("3") == 3.0
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:05 GMT", now=1445412480.0) == 5.0
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:05 GMT", now=1445412490.0) == 0.0
    assert retry_after_seconds("soon") is None
    assert retry_after_seconds(None) is None


async def test_list_follows_continue_tokens(serve: Callable[[Routes], Awaitable[KubeClient]]) -> None:
    queries: list[dict[str, str]] = []

    async def handler(request: web.Request) -> web.Response:
        queries.append(dict(request.query))
        page = int(request.query.get("continue", "0"))
        meta: dict[str, Any] = {"resourceVersion": "100"}
        if page < 2:
            meta["continue"] = str(page + 1)
        items = [{"metadata": {"name": f"cm{page}-{i}"}} for i in range(2)]
        return web.json_response({"metadata": meta, "items": items})

    client = await serve(lambda app: app.router.add_get("/{tail:.*}", handler))
    result = await client.list(CONFIGMAPS, "ns", label_selector="a=b", page_size=2)
    assert [i["metadata"]["name"] for i in result.items] == [
        "cm0-0",
        "cm0-1",
        "cm1-0",
        "cm1-1",
        "cm2-0",
        "cm2-1",
    ]
    assert result.resource_version == "100"
    assert queries[0] == {"labelSelector": "a=b", "limit": "2"}
    assert queries[1] == {"labelSelector": "a=b", "limit": "2", "continue": "1"}


async def test_list_falls_back_to_a_full_list_when_the_continue_token_expires(
    serve: Callable[[Routes], Awaitable[KubeClient]],
) -> None:
    async def handler(request: web.Request) -> web.Response:
        if "continue" in request.query:
            return web.json_response(status(410, "Expired", "continue token expired"), status=410)
        if "limit" in request.query:
            return web.json_response(
                {"metadata": {"resourceVersion": "5", "continue": "x"}, "items": [{"n": 1}]}
            )
        return web.json_response({"metadata": {"resourceVersion": "7"}, "items": [{"n": 1}, {"n": 2}]})

    client = await serve(lambda app: app.router.add_get("/{tail:.*}", handler))
    result = await client.list(CONFIGMAPS, "ns", page_size=1)
    assert (len(result.items), result.resource_version) == (2, "7")
    with pytest.raises(WatchExpired):
        async for _ in client.list_pages(CONFIGMAPS, "ns", page_size=1):
            pass


async def test_watch_decodes_a_chunked_stream_and_raises_on_error_410(
    serve: Callable[[Routes], Awaitable[KubeClient]],
) -> None:
    error = json.dumps(
        {"type": "ERROR", "object": status(410, "Expired", "too old resource version")}
    ).encode()
    payload = event_line("ADDED", "a", "1") + event_line("MODIFIED", "a", "2") + error + b"\n"

    async def handler(request: web.Request) -> web.StreamResponse:
        assert request.query["watch"] == "true"
        assert request.query["resourceVersion"] == "0"
        resp = web.StreamResponse()
        await resp.prepare(request)
        for i in range(0, len(payload), 7):  # lines split across many chunks
            await resp.write(payload[i : i + 7])
            await asyncio.sleep(0)
        return resp

    client = await serve(lambda app: app.router.add_get("/{tail:.*}", handler))
    seen: list[WatchEvent] = []
    with pytest.raises(WatchExpired) as info:
        await collect(client.watch(CONFIGMAPS, "ns", resource_version="0", timeout_seconds=5), seen)
    assert [(e.type, e.resource_version) for e in seen] == [("ADDED", "1"), ("MODIFIED", "2")]
    assert "too old" in info.value.message


async def test_watch_ends_when_the_server_closes_and_rejects_garbage(
    serve: Callable[[Routes], Awaitable[KubeClient]],
) -> None:
    async def handler(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        await resp.prepare(request)
        await resp.write(event_line("BOOKMARK", "", "9"))
        if request.query.get("labelSelector") == "garbage":
            await resp.write(b"<html>oops</html>\n")
        return resp

    client = await serve(lambda app: app.router.add_get("/{tail:.*}", handler))
    events = [e async for e in client.watch(CONFIGMAPS, "ns")]
    assert [(e.type, e.resource_version) for e in events] == [("BOOKMARK", "9")]
    with pytest.raises(WatchDecodeError):
        await collect(client.watch(CONFIGMAPS, "ns", label_selector="garbage"), [])


async def test_watch_refused_with_http_410(serve: Callable[[Routes], Awaitable[KubeClient]]) -> None:
    async def handler(request: web.Request) -> web.Response:
        return web.json_response(status(410, "Gone", "gone"), status=410)

    client = await serve(lambda app: app.router.add_get("/{tail:.*}", handler))
    with pytest.raises(WatchExpired):
        await collect(client.watch(CONFIGMAPS, "ns", resource_version="3"), [])


async def test_closing_a_watch_early_frees_it(serve: Callable[[Routes], Awaitable[KubeClient]]) -> None:
    finished = asyncio.Event()

    async def handler(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        await resp.prepare(request)
        try:
            for i in range(1000):
                await resp.write(event_line("ADDED", f"cm{i}", str(i)))
                await asyncio.sleep(0.01)
        except (ConnectionResetError, asyncio.CancelledError):
            finished.set()
            raise
        return resp

    client = await serve(lambda app: app.router.add_get("/{tail:.*}", handler))
    async with client.watch(CONFIGMAPS, "ns") as stream:
        async for event in stream:
            assert event.type == "ADDED"
            break
    await asyncio.wait_for(finished.wait(), 5)


async def test_transport_failures(serve: Callable[[Routes], Awaitable[KubeClient]]) -> None:
    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(5)
        return web.json_response({})

    client = await serve(lambda app: app.router.add_get("/{tail:.*}", slow))
    with pytest.raises(TransportError):
        await client.get(CONFIGMAPS, "a", "ns", request_timeout=0.2)
    refused = KubeClient(ClusterConfig(server="http://127.0.0.1:1"))
    try:
        with pytest.raises(TransportError):
            await refused.get(CONFIGMAPS, "a", "ns")
        with pytest.raises(TransportError):
            await collect(refused.watch(CONFIGMAPS, "ns"), [])
    finally:
        await refused.close()


async def test_server_versions(serve: Callable[[Routes], Awaitable[KubeClient]]) -> None:
    group = {
        "kind": "APIGroup",
        "name": "ipam.cluster.x-k8s.io",
        "versions": [{"version": "v1beta1"}, {"version": "v1beta2"}, {"version": "v1alpha1"}],
        "preferredVersion": {"version": "v1beta2"},
    }

    def resources(*plurals: str) -> dict[str, Any]:
        return {"kind": "APIResourceList", "resources": [{"name": p} for p in plurals]}

    def routes(app: web.Application) -> None:
        app.router.add_get("/apis/ipam.cluster.x-k8s.io", reply(group))
        app.router.add_get("/apis/ipam.cluster.x-k8s.io/v1beta2", reply(resources("ipaddressclaims")))
        app.router.add_get(
            "/apis/ipam.cluster.x-k8s.io/v1beta1",
            reply(resources("ipaddressclaims", "ipaddresses")),
        )
        app.router.add_get("/apis/ipam.cluster.x-k8s.io/v1alpha1", reply(resources("inclusterippools")))
        app.router.add_get("/api", reply({"kind": "APIVersions", "versions": ["v1"]}))

    client = await serve(routes)
    assert await client.server_versions("ipam.cluster.x-k8s.io") == ["v1beta2", "v1beta1", "v1alpha1"]
    assert await client.server_versions("ipam.cluster.x-k8s.io", "ipaddressclaims") == ["v1beta2", "v1beta1"]
    assert await client.server_versions("ipam.cluster.x-k8s.io", "ipaddresses") == ["v1beta1"]
    assert await client.server_versions("") == ["v1"]
    assert await client.server_versions("unknown.example.com") == []


async def test_the_next_page_is_asked_for_while_the_caller_works_on_this_one(
    serve: Callable[[Routes], Awaitable[KubeClient]],
) -> None:
    # A start-up over 100,000 objects is 200 pages per resource: the apiserver makes the next page while
    # the informer projects and stores this one, instead of the two taking turns.
    second_asked = asyncio.Event()

    async def handler(request: web.Request) -> web.Response:
        token = request.query.get("continue")
        if token is None:
            return web.json_response(
                {"metadata": {"resourceVersion": "5", "continue": "p2"}, "items": [{"n": 1}]}
            )
        assert token == "p2"
        second_asked.set()
        return web.json_response({"metadata": {"resourceVersion": "5"}, "items": [{"n": 2}]})

    client = await serve(lambda app: app.router.add_get("/{tail:.*}", handler))
    pages = client.list_pages(CONFIGMAPS, "ns", page_size=1)
    first = await anext(pages)
    assert first.items == [{"n": 1}]
    await asyncio.wait_for(second_asked.wait(), 5)  # asked for before the caller came back for it
    assert [p.items async for p in pages] == [[{"n": 2}]]


async def test_a_caller_that_stops_early_leaves_no_request_behind(
    serve: Callable[[Routes], Awaitable[KubeClient]],
) -> None:
    answered = asyncio.Event()
    release = asyncio.Event()

    async def handler(request: web.Request) -> web.Response:
        if "continue" in request.query:
            answered.set()
            await release.wait()
        return web.json_response({"metadata": {"resourceVersion": "5", "continue": "more"}, "items": []})

    client = await serve(lambda app: app.router.add_get("/{tail:.*}", handler))
    pages = client.list_pages(CONFIGMAPS, "ns", page_size=1)
    await anext(pages)
    await asyncio.wait_for(answered.wait(), 5)
    await pages.aclose()  # type: ignore[attr-defined]
    others = [
        t for t in asyncio.all_tasks() if t is not asyncio.current_task() and "list-page" in t.get_name()
    ]
    release.set()
    assert others == [] or all(t.cancelling() or t.done() for t in others)
