"""`KubeClient`: the only code that talks HTTP to the apiserver.

Raw JSON dicts in and out over one pooled aiohttp session. No reconnecting watches and two bounded retries
only, both for answers that mean the apiserver did nothing: a 401 is retried once when fresh credentials
differ from the rejected ones (exec plugin run again, rotated token or certificate file), and a 429 with a
Retry-After of at most `MAX_RETRY_AFTER` seconds is retried after that wait while the request's timeout
allows. Everything else is for callers (the informer, the controllers) to judge. Every failure is a
`KubeError`: `ApiError` (the server said no), `WatchExpired` (410, relist) or `TransportError` (no answer).
Traffic goes through the kubeconfig's proxy-url or the environment's proxy (`proxy`).
"""

from __future__ import annotations

import asyncio
import builtins
import copy
import email.utils
import os
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import aiohttp
from yarl import URL

from . import codec
from . import requests as rq
from .config import (
    FILE_CHECK_SECONDS,
    ClusterConfig,
    ConfigError,
    in_cluster_config,
    load_config,
    load_kubeconfig,
)
from .credentials import Auth, Credentials
from .errors import ApiError, KubeError, TransportError, WatchExpired, error_from_response
from .proxy import ProxyError, proxy_for
from .resources import Obj, Resource
from .watch import WatchDecoder, WatchEvent, raise_for_event

DEFAULT_TIMEOUT = 30.0
#: The longest silence a watch may keep before its connection counts as dead (a half-open TCP flow, a
#: load-balancer backend gone without a RST). kube-apiserver ends every watch at its `timeoutSeconds`, and
#: its watch cache sends a BOOKMARK about two minutes into a quiet watch and every minute after that
#: (measured against our 1.37 apiserver); the server-side timeout is therefore capped below this idle
#: timeout, so a healthy watch always sends something, or ends, before it.
WATCH_IDLE_TIMEOUT = 120.0
#: Objects per list page. Reading 100,000 claims (bench/listcost.py) cost kube-apiserver and etcd 31.3 s of
#: CPU in pages of 500 (client-go's default), 7.6 s in pages of 2,000 and 19.7 s in pages of 5,000; two
#: pages of 2,000 decoded claims are a few MB, the most a reader holds at once.
LIST_PAGE_SIZE = 2000
#: The server-side timeout of a watch, as a share of the idle timeout (96 s of 120).
_WATCH_SHARE = 0.8
_TRANSPORT_ERRORS = (aiohttp.ClientError, OSError, TimeoutError)
#: The longest Retry-After a 429 is waited out for (API Priority and Fairness asks for a second or so);
#: a longer one, or one beyond the request's timeout, is the caller's to handle (ApiError.retry_after).
MAX_RETRY_AFTER = 10.0
MAX_THROTTLED_RETRIES = 5


def retry_after_seconds(header: str | None, now: float | None = None) -> float | None:
    """A Retry-After header as seconds to wait: delta-seconds or an HTTP date; None when absent or bad."""
    if not header:
        return None
    value = header.strip()
    if value.isdigit():
        return float(value)
    try:
        moment = email.utils.parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, OverflowError):
        return None
    return max(0.0, moment - (time.time() if now is None else now))


@dataclass(frozen=True, slots=True)
class ObjectList:
    """A list result: the items and the collection's resourceVersion (where a watch resumes). In a
    `snapshot`, `restarted` says: drop the pages before this one, the snapshot starts again here."""

    items: list[Obj]
    resource_version: str
    continue_token: str | None = None
    restarted: bool = False


class KubeClient:
    """An async client for one apiserver. Create it inside the event loop; close it (or use `async with`)."""

    def __init__(
        self,
        config: ClusterConfig,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        max_connections: int = 100,
        user_agent: str = "incluster-ipam",
        watch_idle_timeout: float = WATCH_IDLE_TIMEOUT,
        file_check_seconds: float = FILE_CHECK_SECONDS,
        env: dict[str, str] | None = None,
    ) -> None:
        self.config = config
        self.timeout = timeout
        self.watch_idle_timeout = watch_idle_timeout
        self._clock_offset = 0.0
        self._date_seen, self._date_served = "", 0.0  # the last Date header and its POSIX time
        self._server = config.server.rstrip("/")
        self._credentials = Credentials(config, check_seconds=file_check_seconds)
        try:
            self._proxy = proxy_for(self._server, config.proxy_url, os.environ if env is None else env)
        except ProxyError as exc:
            raise ConfigError(str(exc)) from exc
        self._proxy_auth = aiohttp.BasicAuth.from_url(self._proxy) if self._proxy is not None else None
        if self._proxy is not None:
            self._proxy = self._proxy.with_user(None)
        self._max_connections = max_connections
        self._user_agent = user_agent
        self._session: aiohttp.ClientSession | None = None

    # ---- construction and lifecycle ---------------------------------------------------------------

    @classmethod
    def from_kubeconfig(cls, path: str | Path, context: str | None = None, **kwargs: Any) -> KubeClient:
        return cls(load_kubeconfig(path, context), **kwargs)

    @classmethod
    def in_cluster(cls, **kwargs: Any) -> KubeClient:
        return cls(in_cluster_config(), **kwargs)

    @classmethod
    def from_environment(
        cls, kubeconfig: str | Path | None = None, context: str | None = None, **kwargs: Any
    ) -> KubeClient:
        """Explicit kubeconfig, else $KUBECONFIG, else in-cluster, else ~/.kube/config."""
        return cls(load_config(kubeconfig, context), **kwargs)

    def fork(self, *, max_connections: int, user_agent: str | None = None) -> KubeClient:
        """The same client (same class, configuration and credentials) with a connection pool of its own:
        requests through one never wait for a connection of the other."""
        clone = copy.copy(self)
        clone._session = None
        clone._max_connections = max_connections
        if user_agent is not None:
            clone._user_agent = user_agent
        return clone

    @property
    def credentials(self) -> Credentials:
        """Where the token and client certificate come from (shared with forks)."""
        return self._credentials

    @property
    def proxy(self) -> URL | None:
        """The HTTP proxy requests go through, if any."""
        return self._proxy

    @property
    def default_namespace(self) -> str | None:
        """The kubeconfig context's namespace, or the pod's namespace in-cluster."""
        return self.config.namespace

    async def __aenter__(self) -> KubeClient:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit=self._max_connections)
            self._session = aiohttp.ClientSession(
                connector=connector, headers={"User-Agent": self._user_agent}, raise_for_status=False
            )
        return self._session

    async def _auth(self, request: rq.Request) -> Auth:
        try:
            return await self._credentials.current()
        except TransportError as exc:
            raise TransportError(f"{request.method} {request.path}: {exc}") from exc

    def _send_options(self, request: rq.Request, auth: Auth) -> dict[str, Any]:
        """Headers, TLS, proxy and server name of one attempt."""
        headers = {"Accept": rq.JSON}
        if request.content_type:
            headers["Content-Type"] = request.content_type
        if auth.token:
            headers["Authorization"] = f"Bearer {auth.token}"
        return {
            "headers": headers,
            "ssl": auth.ssl if auth.ssl is not None else False,
            "proxy": self._proxy,
            "proxy_auth": self._proxy_auth,
            "server_hostname": self.config.tls_server_name,
        }

    def _learn_clock(self, date: str | None) -> None:
        """Track the apiserver's clock from a response's Date header (one-second resolution)."""
        if not date:
            return
        if date == self._date_seen:  # the same second as the last answer: parsed once (a profile's 2%)
            served = self._date_served
        else:
            try:
                served = email.utils.parsedate_to_datetime(date).timestamp() + 0.5
            except (TypeError, ValueError, OverflowError):
                return
            self._date_seen, self._date_served = date, served
        offset = served - time.time()
        self._clock_offset = offset if abs(offset) > 1.5 else 0.0

    def server_time(self) -> float:
        """Now, by the apiserver's clock as its last answers told it (POSIX seconds). Timestamps the
        apiserver wrote (deletionTimestamp) are compared with this, not with the local clock."""
        return time.time() + self._clock_offset

    def _url(self, request: rq.Request) -> URL:
        return URL(self._server + request.target, encoded=True)

    def _check(self, request: rq.Request, status: int, body: bytes) -> None:
        if status >= 400:
            raise error_from_response(status, body)

    def _throttle_wait(self, status: int, retry_after: str | None, body: bytes) -> float | None:
        """How long to wait before trying a 429 again, or None when it is not to be retried here."""
        if status != 429:
            return None
        wait = retry_after_seconds(retry_after)
        if wait is None:
            wait = error_from_response(status, body).retry_after
        return wait if wait is not None and wait <= MAX_RETRY_AFTER else None

    # ---- raw requests -----------------------------------------------------------------------------

    async def request(
        self, request: rq.Request, *, request_timeout: float | None = None, send_within: float | None = None
    ) -> Obj:
        """Send one built request and return the decoded JSON body (raises KubeError). With `send_within`,
        the request is sent within that many seconds (a connection acquired, or a `TransportError`
        without anything sent), however long the answer may take afterwards."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (request_timeout or self.timeout)
        refreshed = False
        throttled = 0
        while True:
            auth = await self._auth(request)
            remaining = max(deadline - loop.time(), 0.001)
            client_timeout = aiohttp.ClientTimeout(total=remaining, connect=send_within)
            try:
                async with self._http().request(
                    request.method,
                    self._url(request),
                    data=request.body,
                    timeout=client_timeout,
                    **self._send_options(request, auth),
                ) as resp:
                    status = resp.status
                    self._learn_clock(resp.headers.get("Date"))
                    retry_after = resp.headers.get("Retry-After")
                    body = await resp.read()
            except _TRANSPORT_ERRORS as exc:
                raise TransportError(f"{request.method} {request.path}: {exc!r}") from exc
            if status == 401 and not refreshed and await self._credentials.rejected(auth):
                refreshed = True
                continue
            wait = self._throttle_wait(status, retry_after, body)
            if wait is not None and throttled < MAX_THROTTLED_RETRIES and loop.time() + wait < deadline:
                throttled += 1
                await asyncio.sleep(wait)
                continue
            break
        self._check(request, status, body)
        if not body:
            return {}
        decoded: Obj = codec.loads(body)
        return decoded

    # ---- CRUD ----------------------------------------------------------------------------------------

    async def get(
        self,
        resource: Resource,
        name: str,
        namespace: str | None = None,
        *,
        subresource: str | None = None,
        request_timeout: float | None = None,
    ) -> Obj:
        return await self.request(
            rq.get_request(resource, name, namespace, subresource), request_timeout=request_timeout
        )

    async def list(
        self,
        resource: Resource,
        namespace: str | None = None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
        resource_version: str | None = None,
        page_size: int | None = LIST_PAGE_SIZE,
        request_timeout: float | None = None,
    ) -> ObjectList:
        """All matching objects, fetched `page_size` at a time (one consistent snapshot, `snapshot`)."""
        items: builtins.list[Obj] = []
        version = ""
        async for page in self.snapshot(
            resource,
            namespace,
            label_selector=label_selector,
            field_selector=field_selector,
            resource_version=resource_version,
            page_size=page_size,
            request_timeout=request_timeout,
        ):
            if page.restarted:
                items = []
            items.extend(page.items)
            version = page.resource_version
        return ObjectList(items, version)

    async def snapshot(
        self,
        resource: Resource,
        namespace: str | None = None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
        resource_version: str | None = None,
        page_size: int | None = LIST_PAGE_SIZE,
        request_timeout: float | None = None,
    ) -> AsyncIterator[ObjectList]:
        """The pages of one consistent snapshot, for callers that process (and drop) items as they come.

        If the continue token expires mid-way (410), one unpaginated list follows, as client-go's pager
        does; its page has `restarted` set: whatever came before is to be dropped. (The one place this
        fallback lives: `list`, the informers and the takeover all read through here.)"""
        first = True
        try:
            async for page in self.list_pages(
                resource,
                namespace,
                label_selector=label_selector,
                field_selector=field_selector,
                resource_version=resource_version,
                page_size=page_size,
                request_timeout=request_timeout,
            ):
                first = False
                yield page
        except WatchExpired:
            if first or page_size is None:
                raise
            full = await self._list_page(
                resource,
                namespace,
                label_selector=label_selector,
                field_selector=field_selector,
                resource_version=resource_version,
                page_size=None,
                token=None,
                request_timeout=request_timeout,
            )
            yield ObjectList(full.items, full.resource_version, restarted=True)

    async def list_pages(
        self,
        resource: Resource,
        namespace: str | None = None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
        resource_version: str | None = None,
        page_size: int | None = LIST_PAGE_SIZE,
        request_timeout: float | None = None,
    ) -> AsyncIterator[ObjectList]:
        """Pages of a list, for callers that process (and drop) items as they come. Every page carries the
        snapshot's resourceVersion. An expired continue token raises WatchExpired.

        The next page is asked for as soon as a page arrives, before it is handed over: the apiserver makes
        it while the caller works on this one (at most two pages are held at once)."""

        def fetch(token: str | None) -> asyncio.Task[ObjectList]:
            page = self._list_page(
                resource,
                namespace,
                label_selector=label_selector,
                field_selector=field_selector,
                resource_version=resource_version,
                page_size=page_size,
                token=token,
                request_timeout=request_timeout,
            )
            return asyncio.create_task(page, name=f"list-page {resource.plural}")

        following: asyncio.Task[ObjectList] | None = fetch(None)
        try:
            while following is not None:
                page = await following
                following = fetch(page.continue_token) if page.continue_token else None
                yield page
        finally:
            if following is not None:  # the caller stopped early (or failed): nobody wants the next page
                following.cancel()
                following.add_done_callback(_retrieve)

    async def _list_page(
        self,
        resource: Resource,
        namespace: str | None,
        *,
        label_selector: str | None,
        field_selector: str | None,
        resource_version: str | None,
        page_size: int | None,
        token: str | None,
        request_timeout: float | None,
    ) -> ObjectList:
        request = rq.list_request(
            resource,
            namespace,
            label_selector=label_selector,
            field_selector=field_selector,
            # resourceVersion must not be combined with a continue token
            resource_version=None if token else resource_version,
            limit=page_size,
            continue_token=token,
        )
        body = await self.request(request, request_timeout=request_timeout)
        meta = body.get("metadata") or {}
        return ObjectList(body.get("items") or [], str(meta.get("resourceVersion", "")), meta.get("continue"))

    async def create(
        self,
        resource: Resource,
        obj: Obj,
        namespace: str | None = None,
        *,
        field_manager: str | None = None,
        dry_run: bool = False,
        request_timeout: float | None = None,
        send_within: float | None = None,
    ) -> Obj:
        """POST; the namespace defaults to obj.metadata.namespace."""
        request = rq.create_request(resource, obj, namespace, field_manager=field_manager, dry_run=dry_run)
        return await self.request(request, request_timeout=request_timeout, send_within=send_within)

    async def replace(
        self,
        resource: Resource,
        obj: Obj,
        namespace: str | None = None,
        *,
        subresource: str | None = None,
        field_manager: str | None = None,
        dry_run: bool = False,
        request_timeout: float | None = None,
        send_within: float | None = None,
    ) -> Obj:
        """PUT: optimistic concurrency on obj.metadata.resourceVersion (409 Conflict when stale)."""
        request = rq.replace_request(
            resource, obj, namespace, subresource=subresource, field_manager=field_manager, dry_run=dry_run
        )
        return await self.request(request, request_timeout=request_timeout, send_within=send_within)

    async def patch(
        self,
        resource: Resource,
        name: str,
        patch: Obj | builtins.list[Any],
        namespace: str | None = None,
        *,
        patch_type: rq.PatchType = rq.PatchType.MERGE,
        subresource: str | None = None,
        field_manager: str | None = None,
        force: bool = False,
        dry_run: bool = False,
        request_timeout: float | None = None,
        send_within: float | None = None,
    ) -> Obj:
        """Merge patch by default; JSON patch takes a list of operations; APPLY is server-side apply."""
        request = rq.patch_request(
            resource,
            name,
            patch,
            namespace,
            patch_type=patch_type,
            subresource=subresource,
            field_manager=field_manager,
            force=force,
            dry_run=dry_run,
        )
        return await self.request(request, request_timeout=request_timeout, send_within=send_within)

    async def apply(
        self,
        resource: Resource,
        obj: Obj,
        *,
        field_manager: str,
        force: bool = True,
        subresource: str | None = None,
        request_timeout: float | None = None,
    ) -> Obj:
        """Server-side apply of a full intent object (apiVersion, kind, metadata.name[/namespace])."""
        meta = obj["metadata"]
        return await self.patch(
            resource,
            meta["name"],
            obj,
            meta.get("namespace") if resource.namespaced else None,
            patch_type=rq.PatchType.APPLY,
            subresource=subresource,
            field_manager=field_manager,
            force=force,
            request_timeout=request_timeout,
        )

    async def delete(
        self,
        resource: Resource,
        name: str,
        namespace: str | None = None,
        *,
        uid: str | None = None,
        resource_version: str | None = None,
        propagation_policy: str | None = None,
        grace_period_seconds: int | None = None,
        dry_run: bool = False,
        request_timeout: float | None = None,
        send_within: float | None = None,
    ) -> Obj:
        """DELETE with optional preconditions (uid, resourceVersion: 409 when they do not match). Returns the
        object (still present if finalizers block it) or a Status."""
        request = rq.delete_request(
            resource,
            name,
            namespace,
            uid=uid,
            resource_version=resource_version,
            propagation_policy=propagation_policy,
            grace_period_seconds=grace_period_seconds,
            dry_run=dry_run,
        )
        return await self.request(request, request_timeout=request_timeout, send_within=send_within)

    # ---- watch ------------------------------------------------------------------------------------------

    def watch(
        self,
        resource: Resource,
        namespace: str | None = None,
        *,
        resource_version: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        timeout_seconds: int | None = None,
        allow_bookmarks: bool = True,
    ) -> WatchStream:
        """A watch as an async iterator of events (ADDED, MODIFIED, DELETED, BOOKMARK). ERROR events raise
        (WatchExpired for 410). The stream ends when the server closes it; it never reconnects.

        The server-side timeout is capped so that the server ends the watch before `watch_idle_timeout`;
        a stream silent for that long raises `TransportError` (its connection is presumed dead)."""
        longest = max(1, int(self.watch_idle_timeout * _WATCH_SHARE))
        server_timeout = min(timeout_seconds, longest) if timeout_seconds else longest
        request = rq.watch_request(
            resource,
            namespace,
            resource_version=resource_version,
            label_selector=label_selector,
            field_selector=field_selector,
            timeout_seconds=server_timeout,
            allow_bookmarks=allow_bookmarks,
        )
        return WatchStream(self, request, self.watch_idle_timeout)

    async def _open_stream(self, request: rq.Request, read_timeout: float | None) -> aiohttp.ClientResponse:
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=self.timeout, sock_read=read_timeout)
        refreshed = False
        while True:
            auth = await self._auth(request)
            try:
                resp = await self._http().request(
                    request.method, self._url(request), timeout=timeout, **self._send_options(request, auth)
                )
            except _TRANSPORT_ERRORS as exc:
                raise TransportError(f"watch {request.path}: {exc!r}") from exc
            if resp.status < 400:
                return resp
            try:
                body = await resp.read()
            except _TRANSPORT_ERRORS:
                body = b""
            finally:
                resp.release()
            if resp.status == 401 and not refreshed and await self._credentials.rejected(auth):
                refreshed = True
                continue
            self._check(request, resp.status, body)

    # ---- discovery ----------------------------------------------------------------------------------------

    async def server_versions(self, group: str, plural: str | None = None) -> builtins.list[str]:
        """Versions of `group` the server serves, preferred first; with `plural`, only versions that serve
        that resource. Empty when the group is unknown."""
        try:
            body = await self.request(rq.group_discovery_request(group))
        except ApiError as exc:
            if exc.is_not_found:
                return []
            raise
        if group:
            versions = [str(v["version"]) for v in body.get("versions") or []]
            preferred = (body.get("preferredVersion") or {}).get("version")
            if preferred in versions:
                versions.remove(preferred)
                versions.insert(0, preferred)
        else:
            versions = [str(v) for v in body.get("versions") or []]
        if plural is None:
            return versions
        served = []
        for version in versions:
            try:
                listing = await self.request(rq.resources_discovery_request(group, version))
            except ApiError as exc:
                if exc.is_not_found:
                    continue
                raise
            if any(r.get("name") == plural for r in listing.get("resources") or []):
                served.append(version)
        return served


class WatchStream:
    """An open watch. Iterate it; leave early with `async with` or `aclose()` so the connection is freed."""

    def __init__(self, client: KubeClient, request: rq.Request, read_timeout: float | None) -> None:
        self._client = client
        self._request = request
        self._read_timeout = read_timeout
        self._resp: aiohttp.ClientResponse | None = None
        self._decoder = WatchDecoder()
        self._pending: deque[WatchEvent] = deque()
        self._done = False

    async def __aenter__(self) -> WatchStream:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    def __aiter__(self) -> WatchStream:
        return self

    async def __anext__(self) -> WatchEvent:
        try:
            while not self._pending:
                if self._done:
                    raise StopAsyncIteration
                await self._fill()
            return raise_for_event(self._pending.popleft())
        except KubeError:
            await self.aclose()
            raise

    async def _fill(self) -> None:
        if self._resp is None:
            self._resp = await self._client._open_stream(self._request, self._read_timeout)
        try:
            chunk = await self._resp.content.readany()
        except _TRANSPORT_ERRORS as exc:
            raise TransportError(f"watch {self._request.path}: {exc!r}") from exc
        if chunk:
            self._pending.extend(self._decoder.feed(chunk))
        else:  # the server ended the watch: the connection can go back to the pool
            self._pending.extend(self._decoder.close())
            self._resp.release()
            self._resp = None
            self._done = True

    async def aclose(self) -> None:
        self._done = True
        if self._resp is not None:
            self._resp.close()
            self._resp = None


def _retrieve(task: asyncio.Task[Any]) -> None:
    """Collect the outcome of a task nobody awaits (so asyncio does not log it as never retrieved)."""
    if not task.cancelled():
        task.exception()
