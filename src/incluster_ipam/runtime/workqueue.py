"""`WorkQueue`: client-go's work queue semantics on asyncio.

- De-duplicating: a key waiting in the queue is queued once however often it is added.
- Never concurrent per key: a key being processed is not handed out again; adds during processing are
  remembered and the key is queued once more when `done` is called.
- Delays: `add_after` (the earliest pending time wins) and `add_rate_limited` (per-key exponential back-off,
  reset by `forget`).
- `shutdown`: stop accepting keys; with drain, hand out what is queued and wait for in-flight work.
- A background lane (`add_background`): handed out only when nothing else waits, and an `add` of a key
  waiting there moves it to the front lane (a takeover's re-check of every bound claim must not delay a
  claim created meanwhile).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

from .backoff import ItemBackoff

log = logging.getLogger(__name__)

K = TypeVar("K", bound=Hashable)

_YIELD_EVERY = 64


class QueueShutDown(Exception):
    """`get` on a queue that is shut down and empty."""


@dataclass(frozen=True, slots=True)
class Result:
    """What a handler wants next for its key: nothing (done), `requeue` with back-off, or `requeue_after`
    seconds (no back-off bookkeeping)."""

    requeue: bool = False
    requeue_after: float | None = None


Handler = Callable[[K], Awaitable[Result | None]]


class WorkQueue(Generic[K]):
    """A de-duplicating, per-key serialized, rate-limited queue of hashable keys."""

    def __init__(self, backoff: ItemBackoff | None = None, name: str = "queue") -> None:
        self.name = name
        self._backoff = backoff or ItemBackoff()
        self._queue: deque[K] = deque()
        self._background: deque[K] = deque()  # may hold stale entries: a key counts only while in `_later`
        self._later: set[K] = set()  # keys waiting in the background lane
        self._dirty: set[K] = set()
        self._processing: set[K] = set()
        self._timers: dict[K, asyncio.TimerHandle] = {}
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._idle: asyncio.Event | None = None
        self._shutting_down = False

    # ---- adding ----------------------------------------------------------------------------------

    def add(self, key: K) -> None:
        """Queue `key` unless it is already waiting (a key waiting in the background lane moves to the
        front one); ignored once the queue is shutting down."""
        if self._shutting_down:
            return
        if key in self._dirty:
            if key in self._later:
                self._later.discard(key)
                if key not in self._processing:
                    self._queue.append(key)
                    self._wake_one()
            return
        self._dirty.add(key)
        if key in self._processing:
            return  # queued again by `done`
        self._queue.append(key)
        self._wake_one()

    def add_background(self, key: K) -> None:
        """Queue `key` behind every key of the front lane, unless it is already waiting."""
        if self._shutting_down or key in self._dirty:
            return
        self._dirty.add(key)
        self._later.add(key)
        if key in self._processing:
            return  # queued again by `done`
        self._background.append(key)
        self._wake_one()

    def add_after(self, key: K, delay: float) -> None:
        """Queue `key` after `delay` seconds; if it is already scheduled earlier, the earlier time stands."""
        if self._shutting_down:
            return
        if delay <= 0:
            self.add(key)
            return
        loop = asyncio.get_running_loop()
        when = loop.time() + delay
        timer = self._timers.get(key)
        if timer is not None:
            if timer.when() <= when:
                return
            timer.cancel()
        self._timers[key] = loop.call_at(when, self._fire, key)

    def _fire(self, key: K) -> None:
        self._timers.pop(key, None)
        self.add(key)

    def add_rate_limited(self, key: K) -> None:
        """Queue `key` after its back-off delay (5 ms, 10 ms, ... up to the cap) and count a failure."""
        self.add_after(key, self._backoff.when(key))

    def forget(self, key: K) -> None:
        """Reset the back-off of `key` (call after it was processed successfully)."""
        self._backoff.forget(key)

    def num_requeues(self, key: K) -> int:
        return self._backoff.retries(key)

    # ---- processing ------------------------------------------------------------------------------

    async def get(self) -> K:
        """The next key, marked as processing until `done(key)`; raises QueueShutDown when shut down and
        empty."""
        while True:
            while not self._queue and not self._background:
                if self._shutting_down:
                    raise QueueShutDown(self.name)
                waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
                self._waiters.append(waiter)
                try:
                    await waiter
                except asyncio.CancelledError:
                    if waiter.done() and not waiter.cancelled():
                        self._wake_one()  # pass the wake-up on
                    raise
            if self._queue:
                key = self._queue.popleft()
                break
            key = self._background.popleft()
            if key in self._later and key not in self._processing:
                self._later.discard(key)
                break
            # stale: moved to the front lane since, or handed out already
        self._processing.add(key)
        self._dirty.discard(key)
        return key

    def done(self, key: K) -> None:
        """Finish processing `key`; if it was added meanwhile, queue it again now."""
        self._processing.discard(key)
        if key in self._dirty:
            (self._background if key in self._later else self._queue).append(key)
            self._wake_one()
        elif self._idle is not None and not self._queue and not self._background and not self._processing:
            self._idle.set()

    def _wake_one(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def _wake_all(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)

    # ---- introspection ---------------------------------------------------------------------------

    def __len__(self) -> int:
        """Keys waiting to be handed out, in both lanes (not counting delayed ones)."""
        return len(self._queue) + len(self._later)

    @property
    def processing(self) -> int:
        return len(self._processing)

    @property
    def delayed(self) -> int:
        return len(self._timers)

    @property
    def shutting_down(self) -> bool:
        return self._shutting_down

    # ---- shutdown --------------------------------------------------------------------------------

    async def shutdown(self, drain: bool = True) -> None:
        """Stop accepting keys and drop delayed ones. With `drain`, queued keys are still handed out; without,
        they are dropped at once. Either way this waits until every key handed out is done (bound it with
        `asyncio.timeout`): a handler half-way through its writes is let finish."""
        self._shutting_down = True
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        if not drain:
            self._queue.clear()
            self._background.clear()
            self._later.clear()
            self._dirty.clear()
        self._wake_all()
        if self._queue or self._background or self._processing:
            self._idle = asyncio.Event()
            await self._idle.wait()

    # ---- workers ---------------------------------------------------------------------------------

    async def run_workers(self, count: int, handler: Handler[K]) -> None:
        """Run `count` workers until the queue shuts down. Each key goes to `handler`; an exception is
        logged and the key requeued with back-off; a `Result` asks for a requeue; None means done."""
        if count < 1:
            raise ValueError("need at least one worker")
        await asyncio.gather(*(self._worker(handler) for _ in range(count)))

    async def _worker(self, handler: Handler[K]) -> None:
        handled = 0
        while True:
            handled += 1
            if handled % _YIELD_EVERY == 0:
                # Handlers that never suspend (cache hits) would otherwise keep the loop to themselves.
                await asyncio.sleep(0)
            try:
                key = await self.get()
            except QueueShutDown:
                return
            try:
                result = await handler(key)
            except asyncio.CancelledError:
                self.done(key)
                raise
            except Exception:
                log.exception("%s: handling %r failed; requeued with back-off", self.name, key)
                self.add_rate_limited(key)
            else:
                self._settle(key, result)
            self.done(key)

    def _settle(self, key: K, result: Result | None) -> None:
        if result is not None and result.requeue_after is not None and result.requeue_after > 0:
            self.forget(key)
            self.add_after(key, result.requeue_after)
        elif result is not None and result.requeue:
            self.add_rate_limited(key)
        else:
            self.forget(key)
