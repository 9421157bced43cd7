"""Client-side rate limiting that keeps one DaisySim account under its per-endpoint budgets.

Each endpoint group is a sliding-window log. A slot is taken when a request starts and stays
taken until `window` seconds after its response came back (not after it left): the server
counts the request somewhere between those two instants, so measuring from the later one
means network latency or clock skew can never fit one request too many into a server window.

A request whose outcome is unknown (it timed out, its connection dropped, its task was
cancelled) has no such upper instant: the server may still be working on it and count it
after we stopped waiting, as a purchase answered 16 s after our 15 s timeout did. Its slot
stays taken for `late_count` more seconds, the longest the server is assumed to go on with a
request we gave up on, and only then for the window. Should the server be slower still, its
429 pauses the group for the seconds it names.

Callers beyond the budget wait in a first-come queue instead of collecting 429s.
"""

from __future__ import annotations

import asyncio
import bisect
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, replace
from typing import Literal, get_args

logger = logging.getLogger(__name__)

Group = Literal["purchase", "check", "cancel"]
GROUPS: tuple[Group, ...] = get_args(Group)

# How a request ended, as far as the server's count goes: "answered" (a response came back, so
# the server counted it before then), "unknown" (it may count it later) or "never_sent" (no
# connection was ever made, so it cannot count it at all).
Outcome = Literal["answered", "unknown", "never_sent"]


@dataclass(frozen=True, slots=True)
class RateLimits:
    """Budgets as (requests, window seconds) per endpoint group."""

    purchase: tuple[int, float] = (10, 60.0)
    check: tuple[int, float] = (60, 60.0)
    cancel: tuple[int, float] = (10, 60.0)

    def __post_init__(self) -> None:
        for group in GROUPS:
            count, window = getattr(self, group)
            if count < 1 or window <= 0:
                raise ValueError(f"{group}: need at least 1 request in a positive window")

    def scaled(self, time_scale: float) -> RateLimits:
        """The same budgets for an upstream whose clock runs `time_scale` times faster (the
        sandbox's `time_scale=60` makes a minute last a second). Seconds a server prints in
        its messages are real seconds already and are never scaled."""
        if time_scale <= 0:
            raise ValueError("time_scale must be positive")
        return replace(
            self,
            purchase=(self.purchase[0], self.purchase[1] / time_scale),
            check=(self.check[0], self.check[1] / time_scale),
            cancel=(self.cancel[0], self.cancel[1] / time_scale),
        )

    def for_group(self, group: Group) -> tuple[int, float]:
        budget: tuple[int, float] = getattr(self, group)
        return budget


class EndpointLimiter:
    """At most `limit` requests per `window` seconds, with fair FIFO waiting.

    `late_count` is how long after we stop waiting for a request the server may still count
    it (see the module docstring). `clock` exists so tests can check the bookkeeping
    (remaining, estimates) without waiting; acquire() sleeps on the event loop, so any clock
    that waits must run at real speed.
    """

    def __init__(
        self,
        name: str,
        limit: int,
        window: float,
        *,
        late_count: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if limit < 1 or window <= 0:
            raise ValueError("need at least 1 request in a positive window")
        if late_count < 0:
            raise ValueError("late_count must not be negative")
        self.name = name
        self.limit = limit
        self.window = window
        self.late_count = late_count
        self._clock = clock
        self._in_flight = 0
        # When each finished request's slot frees up, kept sorted: an unknown outcome's slot
        # can free after a later answered one's.
        self._expiries: list[float] = []
        self._paused_until = 0.0
        self._waiting = 0
        # asyncio.Lock hands itself to waiters in arrival order and lets no newcomer barge
        # in, so only the head of the queue ever waits for capacity: that is the FIFO.
        self._queue = asyncio.Lock()
        self._changed = asyncio.Event()

    def __repr__(self) -> str:
        return (
            f"EndpointLimiter({self.name!r}, {self.limit}/{self.window:g}s, "
            f"in_flight={self._in_flight}, remaining={self.remaining()}, queued={self._waiting})"
        )

    def _expire(self, now: float) -> None:
        gone = bisect.bisect_right(self._expiries, now)
        if gone:
            del self._expiries[:gone]

    def _used(self, now: float) -> int:
        self._expire(now)
        return self._in_flight + len(self._expiries)

    def _wait_time(self, now: float) -> float | None:
        """Seconds until a slot can be taken; 0 if now; None if it depends on a release."""
        pause = max(0.0, self._paused_until - now)
        if self._used(now) < self.limit:
            return pause
        if self._expiries:
            return max(pause, self._expiries[0] - now)
        return None

    @property
    def queued(self) -> int:
        """Callers waiting for a slot right now."""
        return self._waiting

    @property
    def in_flight(self) -> int:
        return self._in_flight

    def paused_for(self) -> float:
        return max(0.0, self._paused_until - self._clock())

    def remaining(self) -> int:
        """Slots that could be taken this instant (0 while paused)."""
        now = self._clock()
        if self._paused_until > now:
            return 0
        return max(0, self.limit - self._used(now))

    def next_free_in(self) -> float:
        """Seconds until the next slot frees up (0 if one is free). While every slot belongs
        to a request still in flight the answer is a lower bound: `window`."""
        wait = self._wait_time(self._clock())
        return self.window + self.paused_for() if wait is None else wait

    def estimated_wait(self, ahead: int) -> float:
        """Roughly how long a caller with `ahead` callers before it waits for its slot,
        assuming requests come back at once (good enough for "your place: 3, ~40 s")."""
        if ahead < 0:
            raise ValueError("ahead must not be negative")
        now = self._clock()
        self._expire(now)
        free = self.limit - self._in_flight - len(self._expiries)
        frees_at = [now] * free + list(self._expiries) + [now + self.window] * self._in_flight
        rounds, index = divmod(ahead, self.limit)
        at = max(frees_at[index] + rounds * self.window, self._paused_until)
        return max(0.0, at - now)

    def pause(self, seconds: float) -> None:
        """Take no new slot for `seconds` (the server said so with a 429). Pauses never
        shorten one already in force."""
        until = self._clock() + max(0.0, seconds)
        if until > self._paused_until:
            self._paused_until = until
            logger.warning("DaisySim %s limiter paused for %.1fs", self.name, seconds)
            self._changed.set()

    async def acquire(self) -> None:
        """Wait (in arrival order) for a slot and take it; pair with `release()`."""
        self._waiting += 1
        try:
            async with self._queue:
                while True:
                    now = self._clock()
                    delay = self._wait_time(now)
                    if delay is not None and delay <= 0:
                        break
                    # No await between computing the delay and clearing: nothing can slip in.
                    self._changed.clear()
                    with suppress(TimeoutError):
                        await asyncio.wait_for(self._changed.wait(), delay)
                self._in_flight += 1
        finally:
            self._waiting -= 1

    def release(self, outcome: Outcome = "answered") -> None:
        """The attempt ended. "answered": the slot frees `window` from now; "unknown": the
        server may still count it, so `late_count` + `window` from now; "never_sent": at once,
        only for a request that provably never reached the server (no connection was made).
        """
        if self._in_flight <= 0:
            raise RuntimeError(f"{self.name}: release() without acquire()")
        if outcome not in ("answered", "unknown", "never_sent"):
            raise ValueError(f"unknown outcome {outcome!r}")
        self._in_flight -= 1
        if outcome != "never_sent":
            hold = self.window + (self.late_count if outcome == "unknown" else 0.0)
            bisect.insort(self._expiries, self._clock() + hold)
        self._changed.set()

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """acquire() and release() around a block; a block that raises (or is cancelled) left
        its request's outcome unknown, as far as this limiter can tell."""
        await self.acquire()
        outcome: Outcome = "unknown"
        try:
            yield
            outcome = "answered"
        finally:
            self.release(outcome)


class RateLimiter:
    """One EndpointLimiter per endpoint group, shared by every caller of one client."""

    def __init__(
        self,
        limits: RateLimits | None = None,
        *,
        late_count: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limits = limits or RateLimits()
        self._groups: dict[Group, EndpointLimiter] = {
            group: EndpointLimiter(
                group, *self.limits.for_group(group), late_count=late_count, clock=clock
            )
            for group in GROUPS
        }

    def __getitem__(self, group: Group) -> EndpointLimiter:
        return self._groups[group]

    def __repr__(self) -> str:
        return f"RateLimiter({', '.join(repr(g) for g in self._groups.values())})"

    @property
    def purchase(self) -> EndpointLimiter:
        return self._groups["purchase"]

    @property
    def check(self) -> EndpointLimiter:
        return self._groups["check"]

    @property
    def cancel(self) -> EndpointLimiter:
        return self._groups["cancel"]
