"""A small loopback TCP proxy for fault injection between the provider and kube-apiserver.

TLS passes through untouched (raw TCP), so a kubeconfig whose server is `https://127.0.0.1:<proxy port>`
still verifies the apiserver's certificate (its SAN is 127.0.0.1) and still presents the admin client cert.

Faults, all switchable at run time:
- `latency`: seconds (plus up to `jitter`) added before every chunk is forwarded, in both directions;
- `reset_all()`: abort every open connection with a TCP RST (SO_LINGER 0), as a flaky network or a
  load-balancer failover would; in-flight requests and watches see "connection reset";
- `reset_rate`: probability that a forwarded chunk makes the proxy reset that connection instead;
- `refuse`: accept and immediately reset new connections (the apiserver "is down" for this client);
- `blackhole_after`: seconds after which a connection silently stops carrying bytes in both directions,
  without being closed (a half-open flow: a dead load-balancer backend, a conntrack entry dropped);
  `blackhole_after = 0` swallows everything, new connections included.

Bounded: at most `max_connections` at once (extra ones are reset), and the proxy stops by itself after
`lifetime` seconds (closing everything), so a test that forgets it cannot leave it running. Listens on
127.0.0.1 only.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import struct
import time
from dataclasses import dataclass, field
from types import TracebackType

_CHUNK = 64 * 1024


@dataclass
class ProxyStats:
    connections: int = 0
    resets: int = 0
    refused: int = 0
    bytes_up: int = 0
    bytes_down: int = 0
    delayed_chunks: int = 0
    swallowed_chunks: int = 0


@dataclass(eq=False)
class _Pipe:
    client: asyncio.StreamWriter
    upstream: asyncio.StreamWriter
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    opened: float = field(default_factory=time.monotonic)


def _rst(writer: asyncio.StreamWriter) -> None:
    """Close with RST rather than FIN."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class FaultProxy:
    """`async with FaultProxy(port) as proxy:` forwards 127.0.0.1:proxy.port to 127.0.0.1:`target_port`."""

    def __init__(
        self,
        target_port: int,
        *,
        target_host: str = "127.0.0.1",
        lifetime: float = 300.0,
        max_connections: int = 200,
        seed: int = 0,
    ) -> None:
        if target_host not in ("127.0.0.1", "localhost"):
            raise ValueError("the fault proxy only forwards to loopback")
        self.target_host = target_host
        self.target_port = target_port
        self.lifetime = lifetime
        self.max_connections = max_connections
        self.latency = 0.0
        self.jitter = 0.0
        self.reset_rate = 0.0
        self.refuse = False
        self.blackhole_after: float | None = None
        self.stats = ProxyStats()
        self._random = random.Random(seed)
        self._pipes: set[_Pipe] = set()
        self._server: asyncio.Server | None = None
        self._expiry: asyncio.TimerHandle | None = None
        self.port = 0
        self.started_at = 0.0

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def open_connections(self) -> int:
        return len(self._pipes)

    async def __aenter__(self) -> FaultProxy:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        self.started_at = time.monotonic()
        loop = asyncio.get_running_loop()
        self._expiry = loop.call_later(self.lifetime, lambda: asyncio.ensure_future(self.stop()))

    async def stop(self) -> None:
        """Stop listening and reset every connection; idempotent."""
        if self._expiry is not None:
            self._expiry.cancel()
            self._expiry = None
        server, self._server = self._server, None
        if server is not None:
            server.close()
        self.reset_all(count=False)
        if server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 5)

    def clear_faults(self) -> None:
        self.latency = self.jitter = self.reset_rate = 0.0
        self.refuse = False
        self.blackhole_after = None

    def reset_all(self, *, count: bool = True) -> int:
        """Reset every open connection (both sides); returns how many."""
        pipes = list(self._pipes)
        for pipe in pipes:
            self._reset(pipe, count=count)
        return len(pipes)

    def _reset(self, pipe: _Pipe, *, count: bool = True) -> None:
        if pipe not in self._pipes:
            return
        self._pipes.discard(pipe)
        if count:
            self.stats.resets += 1
        _rst(pipe.client)
        _rst(pipe.upstream)
        for task in pipe.tasks:
            task.cancel()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._server is None or self.refuse or len(self._pipes) >= self.max_connections:
            self.stats.refused += 1
            _rst(writer)
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(self.target_host, self.target_port)
        except OSError:
            self.stats.refused += 1
            _rst(writer)
            return
        self.stats.connections += 1
        pipe = _Pipe(writer, up_writer)
        self._pipes.add(pipe)
        pipe.tasks = [
            asyncio.create_task(self._pump(pipe, reader, up_writer, up=True)),
            asyncio.create_task(self._pump(pipe, up_reader, writer, up=False)),
        ]

    async def _pump(
        self, pipe: _Pipe, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, up: bool
    ) -> None:
        try:
            while True:
                chunk = await reader.read(_CHUNK)
                if not chunk:
                    break
                if self.latency or self.jitter:
                    self.stats.delayed_chunks += 1
                    await asyncio.sleep(self.latency + self._random.uniform(0, self.jitter))
                if self.reset_rate and self._random.random() < self.reset_rate:
                    self._reset(pipe)
                    return
                if (
                    self.blackhole_after is not None
                    and time.monotonic() - pipe.opened >= self.blackhole_after
                ):
                    self.stats.swallowed_chunks += 1
                    continue  # read and dropped: the sender sees an open connection that never answers
                writer.write(chunk)
                if up:
                    self.stats.bytes_up += len(chunk)
                else:
                    self.stats.bytes_down += len(chunk)
                await writer.drain()
            # orderly end in one direction: pass the FIN on, keep the other direction going
            if writer.can_write_eof():
                with contextlib.suppress(OSError):
                    writer.write_eof()
        except (OSError, asyncio.IncompleteReadError):
            self._reset(pipe, count=False)
        finally:
            if pipe in self._pipes and all(t.done() or t is asyncio.current_task() for t in pipe.tasks):
                self._pipes.discard(pipe)
                for side in (pipe.client, pipe.upstream):
                    side.close()
