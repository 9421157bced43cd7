"""A sliding-window request counter: at most `limit` requests in any `window` seconds.

Plain arithmetic on a clock the caller passes in, shared by the poller (its own share of the
upstream's check budget) and the Telegram edge (Telegram's flood limits).
"""

from __future__ import annotations

from collections import deque


class SlidingWindow:
    """At most `limit` requests in any `window` seconds, counting requests still in flight."""

    __slots__ = ("_expiries", "_in_flight", "limit", "window")

    def __init__(self, limit: int, window: float) -> None:
        if limit < 1 or window <= 0:
            raise ValueError("need at least 1 request in a positive window")
        self.limit = limit
        self.window = window
        self._in_flight = 0
        # Release order is time order, so the deque stays sorted.
        self._expiries: deque[float] = deque()

    def used(self, now: float) -> int:
        while self._expiries and self._expiries[0] <= now:
            self._expiries.popleft()
        return self._in_flight + len(self._expiries)

    def wait_time(self, now: float, *, limit: int | None = None) -> float | None:
        """Seconds until a request fits under `limit` (default: the full limit); 0 if it
        fits now; None if only a request in flight coming back can make room."""
        cap = self.limit if limit is None else min(limit, self.limit)
        used = self.used(now)
        if used < cap:
            return 0.0
        # The (used - cap + 1)-th expiry from now is when usage drops under the cap.
        index = used - cap
        if index < len(self._expiries):
            return self._expiries[index] - now
        return None

    def take(self) -> None:
        self._in_flight += 1

    def release(self, now: float) -> None:
        if self._in_flight <= 0:
            raise RuntimeError("release() without take()")
        self._in_flight -= 1
        self._expiries.append(now + self.window)

    def cancel(self) -> None:
        """Undo a take() whose request was never sent."""
        if self._in_flight <= 0:
            raise RuntimeError("cancel() without take()")
        self._in_flight -= 1

    def idle(self, now: float) -> bool:
        return self.used(now) == 0
