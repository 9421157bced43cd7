"""How often to poll check-all, and which ids go into the next batch.

Pure arithmetic on a clock the caller passes in, so it is tested without the network.

The upstream allows 60 check requests per 60 s, and one `POST /check-all` of up to 20 ids
costs one of them whatever the number of ids. A code is returned at once (it bypasses the
upstream's 15 s cache), so the cadence that matters is how soon each id is looked at again:

* few activations (one batch): a batch every `min_interval`, so a code reaches the user
  within seconds;
* many: batches go out evenly at the budget's rate less a reserve left for users' own
  "Refresh" presses, round-robin over the ids polled longest ago, so every id is looked at
  once per `batches × pace` seconds (15.5 s for 300 ids with the defaults).

The reserve is kept two ways: the pacer spends `limit - reserve` slots per window on average
(58 a minute), and the poller never takes the last `hard_reserve` free slots of the client's
limiter, so a user's press always finds one at once. The two differ by one slot so that the
pacer, not the hard floor, sets the rhythm: a request's slot stays taken until a window after
its answer, so a pacer spending exactly the hard limit would keep running into it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

# The upstream's cache and its advice: "poll again in 15 seconds".
UPSTREAM_CYCLE_SECONDS = 15.0
# A sandbox running 60× faster would otherwise make a busy loop of the poller.
MIN_REAL_INTERVAL = 0.05


@dataclass(frozen=True, slots=True)
class PollPolicy:
    """All durations are real seconds (already divided by the upstream's time scale)."""

    check_limit: int = 60
    check_window: float = 60.0
    # Slots of the check budget per window the poller leaves for users' explicit checks.
    reserve: int = 2
    batch_size: int = 20
    min_interval: float = 2.0
    cycle: float = UPSTREAM_CYCLE_SECONDS
    # Batches the pacer lets go back to back after a quiet spell.
    burst: int = 2

    def __post_init__(self) -> None:
        if self.check_limit < 1 or self.check_window <= 0:
            raise ValueError("the check budget needs at least one request in a positive window")
        if not 0 <= self.reserve < self.check_limit:
            raise ValueError("the reserve must leave the poller at least one slot")
        if self.batch_size < 1 or self.burst < 1:
            raise ValueError("batch_size and burst must be at least 1")
        if self.min_interval <= 0 or self.cycle <= 0:
            raise ValueError("intervals must be positive")

    @classmethod
    def scaled(
        cls,
        *,
        check_limit: int,
        check_window: float,
        poll_min_interval: float,
        time_scale: float,
        reserve: int = 2,
        batch_size: int = 20,
    ) -> PollPolicy:
        """A policy for an upstream whose clock runs `time_scale` times faster than ours.

        `check_window` comes from the client's limiter and is already real seconds;
        `poll_min_interval` and the 15 s cycle are upstream seconds and are divided here.
        """
        if time_scale <= 0:
            raise ValueError("time_scale must be positive")
        reserve = min(reserve, max(0, check_limit - 1))
        return cls(
            check_limit=check_limit,
            check_window=check_window,
            reserve=reserve,
            batch_size=batch_size,
            min_interval=max(MIN_REAL_INTERVAL, poll_min_interval / time_scale),
            cycle=max(MIN_REAL_INTERVAL, UPSTREAM_CYCLE_SECONDS / time_scale),
        )

    @property
    def hard_reserve(self) -> int:
        """Free slots of the limiter the poller never takes."""
        return max(0, self.reserve - 1)

    @property
    def poller_budget(self) -> int:
        return self.check_limit - self.reserve

    @property
    def pace(self) -> float:
        """Seconds between batches when the poller uses its whole share of the budget."""
        return self.check_window / self.poller_budget

    def batches(self, count: int) -> int:
        return math.ceil(count / self.batch_size) if count > 0 else 0

    def cycle_seconds(self, count: int) -> float:
        """How long until every one of `count` waiting ids has been looked at once."""
        if count <= 0:
            return 0.0
        return max(self.min_interval, self.batches(count) * self.pace)

    def capacity_per_cycle(self) -> int:
        """How many ids the budget can look at once per `cycle`."""
        return max(1, math.floor(self.cycle / self.pace)) * self.batch_size

    def tick_seconds(self) -> float:
        """How often the poll job should wake: fine enough not to add noticeable latency."""
        return max(MIN_REAL_INTERVAL, min(0.25, self.min_interval / 4, self.pace))


class Pacer:
    """A token bucket of batches: `poller_budget` per `check_window`, at most `capacity` saved."""

    def __init__(self, policy: PollPolicy, now: float, *, capacity: int | None = None) -> None:
        self.policy = policy
        self.rate = 1.0 / policy.pace
        # Enough capacity that a job tick longer than a pace step does not lose batches.
        needed = math.ceil(policy.tick_seconds() * self.rate) + 1
        self.capacity = float(capacity if capacity is not None else max(policy.burst, needed))
        self._tokens = 1.0
        self._at = now

    def share_with(self, others: int, now: float) -> None:
        """Other callers (users' Refresh presses) took `others` slots in the last window:
        slow down by as much, so batches stay evenly spread instead of running into the
        limit and leaving holes that the sliding window repeats a window later."""
        self._refill(now)
        left = max(1, self.policy.poller_budget - max(0, others))
        self.rate = left / self.policy.check_window

    def available(self, now: float) -> int:
        self._refill(now)
        return int(self._tokens)

    def take(self, now: float) -> bool:
        self._refill(now)
        if self._tokens < 1.0:
            return False
        self._tokens -= 1.0
        return True

    def wait_time(self, now: float) -> float:
        self._refill(now)
        return 0.0 if self._tokens >= 1.0 else (1.0 - self._tokens) / self.rate

    def _refill(self, now: float) -> None:
        if now > self._at:
            self._tokens = min(self.capacity, self._tokens + (now - self._at) * self.rate)
        self._at = max(self._at, now)


@dataclass(slots=True)
class _Entry:
    last_polled: float
    due_at: float
    in_flight: bool = False


class PollSchedule:
    """The set of upstream ids being polled, and when each was last looked at."""

    def __init__(self, policy: PollPolicy) -> None:
        self.policy = policy
        self._entries: dict[str, _Entry] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, upstream_id: object) -> bool:
        return upstream_id in self._entries

    def ids(self) -> list[str]:
        return list(self._entries)

    def sync(self, upstream_ids: Iterable[str], now: float) -> list[str]:
        """Make the schedule hold exactly these ids; new ones are due at once. Returns the
        ids that were added."""
        wanted = set(upstream_ids)
        for gone in [i for i in self._entries if i not in wanted]:
            del self._entries[gone]
        added = [i for i in wanted if i not in self._entries]
        for upstream_id in added:
            # Never polled: sorts before every polled id, and is due now.
            self._entries[upstream_id] = _Entry(last_polled=-math.inf, due_at=now)
        return added

    def add(self, upstream_id: str, now: float) -> None:
        self._entries.setdefault(upstream_id, _Entry(last_polled=-math.inf, due_at=now))

    def drop(self, upstream_id: str) -> None:
        self._entries.pop(upstream_id, None)

    def due(self, now: float) -> bool:
        return any(not e.in_flight and e.due_at <= now for e in self._entries.values())

    def next_due_in(self, now: float) -> float | None:
        waits = [e.due_at - now for e in self._entries.values() if not e.in_flight]
        return max(0.0, min(waits)) if waits else None

    def take_batch(self, now: float) -> list[str]:
        """The next batch, or [] if nothing is due.

        A batch costs one request whatever its size, so once one id is due the batch is
        filled with the ids looked at longest ago, due or not: free extra looks.
        """
        if not self.due(now):
            return []
        idle = [(e.last_polled, e.due_at, i) for i, e in self._entries.items() if not e.in_flight]
        idle.sort()
        batch = [i for _, _, i in idle[: self.policy.batch_size]]
        for upstream_id in batch:
            self._entries[upstream_id].in_flight = True
        return batch

    def polled(self, upstream_ids: Iterable[str], now: float) -> None:
        """The batch came back: look at these again after `min_interval`."""
        for upstream_id in upstream_ids:
            entry = self._entries.get(upstream_id)
            if entry is not None:
                entry.in_flight = False
                entry.last_polled = now
                entry.due_at = now + self.policy.min_interval

    def retry_later(self, upstream_ids: Iterable[str], now: float, delay: float) -> None:
        """The batch failed: try these again after `delay`, ahead of ids already looked at."""
        for upstream_id in upstream_ids:
            entry = self._entries.get(upstream_id)
            if entry is not None:
                entry.in_flight = False
                entry.due_at = now + delay
