"""Telegram's flood limits for a bot's outgoing messages, as token buckets.

Telegram does not publish exact algorithms, only the numbers in its FAQ: about 30 messages a
second overall, about one a second to one chat (short bursts tolerated), 20 a minute to one
group. A bucket per limit reproduces exactly that behaviour: a burst up to the capacity, then
the refill rate; the ``retry_after`` answered is the whole seconds until the bucket that said
no has a token again, at least 1, as Telegram never answers 0.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["FloodControl", "FloodLimits"]


@dataclass(frozen=True)
class FloodLimits:
    enabled: bool = True
    global_per_second: float = 30
    chat_per_second: float = 1
    # Generous enough that a handler answering a tap (an answer plus an edit or two) never trips.
    chat_burst: int = 5
    group_per_minute: float = 20

    @classmethod
    def off(cls) -> FloodLimits:
        return cls(enabled=False)


@dataclass
class _Bucket:
    capacity: float
    rate: float  # tokens per second
    tokens: float
    updated: float

    def refill(self, now: float) -> None:
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
        self.updated = now

    def wait_time(self) -> float:
        """Seconds until one token is available (0 when it already is)."""
        if self.tokens >= 1:
            return 0.0
        if self.rate <= 0:
            return math.inf
        return (1 - self.tokens) / self.rate


@dataclass
class FloodControl:
    limits: FloodLimits
    clock: Callable[[], float]
    _global: _Bucket | None = field(default=None, init=False)
    _chats: dict[int, _Bucket] = field(default_factory=dict, init=False)

    def _bucket(self, chat_id: int, is_group: bool, now: float) -> _Bucket:
        bucket = self._chats.get(chat_id)
        if bucket is None:
            if is_group:
                capacity = max(1.0, self.limits.group_per_minute)
                rate = self.limits.group_per_minute / 60
            else:
                # A burst of 0 is a chat Telegram holds back for now: nothing passes.
                capacity = max(0.0, float(self.limits.chat_burst))
                rate = self.limits.chat_per_second
            bucket = _Bucket(capacity, rate, capacity, now)
            self._chats[chat_id] = bucket
        return bucket

    def _buckets(self, chat_id: int, is_group: bool) -> tuple[_Bucket, _Bucket]:
        now = self.clock()
        if self._global is None:
            capacity = max(1.0, self.limits.global_per_second)
            self._global = _Bucket(capacity, self.limits.global_per_second, capacity, now)
        buckets = (self._global, self._bucket(chat_id, is_group, now))
        for bucket in buckets:
            bucket.refill(now)
        return buckets

    def check(self, chat_id: int, *, is_group: bool) -> int | None:
        """None when a request to the chat may pass now, else the retry_after seconds."""
        if not self.limits.enabled:
            return None
        wait = max(bucket.wait_time() for bucket in self._buckets(chat_id, is_group))
        if wait > 0:
            # A zero rate means "never again"; a day stands in for infinity.
            return max(1, math.ceil(min(wait, 86_400.0)))
        return None

    def commit(self, chat_id: int, *, is_group: bool) -> None:
        """Spend a token for a request that went through (a refused or failed one costs
        nothing, as Telegram counts messages actually sent)."""
        if not self.limits.enabled:
            return
        for bucket in self._buckets(chat_id, is_group):
            bucket.tokens -= 1

    def acquire(self, chat_id: int, *, is_group: bool) -> int | None:
        """check() and, when it passes, commit() in one step."""
        retry_after = self.check(chat_id, is_group=is_group)
        if retry_after is None:
            self.commit(chat_id, is_group=is_group)
        return retry_after
