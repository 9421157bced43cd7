"""Telegram's flood limits, kept on our side so the bot is never told to slow down.

Telegram answers 429 when a bot sends more than about 30 messages a second overall, more than
about one a second to one private chat (short bursts pass) or more than 20 a minute to one
group; edits count like messages. The limiter is a set of sliding-window logs, one global, one
per chat, and asks for nothing but a clock, so its arithmetic is tested without Telegram.

As in the DaisySim limiter, a slot is held from the moment a request leaves until `window`
seconds after its answer came back: Telegram counts the request somewhere in between, so
measuring from the later instant means latency jitter can never squeeze one request too many
into one of Telegram's windows.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from bot.services.rates import SlidingWindow


@dataclass(frozen=True, slots=True)
class TelegramLimits:
    """Budgets for outgoing messages and edits.

    `background_share` is how full low-priority traffic (card edits, broadcasts) may make the
    global window: beyond it only urgent messages (codes, notices) go, so a code that arrives
    always finds the rest of the second's budget free, and otherwise idle capacity is used.
    """

    global_per_second: int = 30
    chat_per_second: float = 1.0
    # A private chat may take this many messages at once, then one per 1/chat_per_second s.
    # Five, like a short burst Telegram lets through: with handler replies counted too, a
    # user who just tapped through the menu must still get their code at once.
    chat_burst: int = 5
    group_per_minute: int = 20
    background_share: float = 2 / 3

    def __post_init__(self) -> None:
        if self.global_per_second < 1 or self.group_per_minute < 1 or self.chat_burst < 1:
            raise ValueError("every budget needs at least one message")
        if self.chat_per_second <= 0:
            raise ValueError("chat_per_second must be positive")
        if not 0 < self.background_share <= 1:
            raise ValueError("background_share must be in (0, 1]")

    @property
    def chat_window(self) -> float:
        return self.chat_burst / self.chat_per_second

    @property
    def background_limit(self) -> int:
        # The epsilon keeps 30 × 2/3 = 19.999… from becoming 19.
        return max(1, math.floor(self.global_per_second * self.background_share + 1e-9))


def is_group_chat(chat_id: int) -> bool:
    """Groups, supergroups and channels have negative ids; users positive ones."""
    return chat_id < 0


class TokenBucket:
    """Telegram's per-chat limit as Telegram applies it: a burst, then a steady rate.

    A sliding window of `burst` per `burst / rate` seconds would be stricter than Telegram
    (eight answers 0.5 s apart fit Telegram's bucket but not that window), and the user would
    wait for answers Telegram would have let through. A token is spent when the answer comes
    back, not when the request leaves: Telegram counts it somewhere in between, so spending
    at the later instant never credits us refill that Telegram did not grant. Requests in
    flight hold a token each meanwhile.
    """

    __slots__ = ("_in_flight", "_tokens", "_updated", "capacity", "rate")

    def __init__(self, capacity: int, rate: float, now: float) -> None:
        if capacity < 1 or rate <= 0:
            raise ValueError("need a burst of at least 1 and a positive rate")
        self.capacity = capacity
        self.rate = rate
        self._tokens = float(capacity)
        self._updated = now
        self._in_flight = 0

    def _refill(self, now: float) -> None:
        if now > self._updated:
            self._tokens = min(self.capacity, self._tokens + (now - self._updated) * self.rate)
            self._updated = now

    def wait_time(self, now: float, *, limit: int | None = None) -> float:
        """Seconds until one more request may leave (0: now). `limit` is accepted for the
        SlidingWindow interface and ignored: background shares apply to the global budget."""
        del limit
        self._refill(now)
        free = self._tokens - self._in_flight
        return 0.0 if free >= 1 else (1 - free) / self.rate

    def take(self) -> None:
        self._in_flight += 1

    def release(self, now: float) -> None:
        if self._in_flight <= 0:
            raise RuntimeError("release() without take()")
        self._refill(now)
        self._in_flight -= 1
        self._tokens -= 1

    def cancel(self) -> None:
        if self._in_flight <= 0:
            raise RuntimeError("cancel() without take()")
        self._in_flight -= 1

    def idle(self, now: float) -> bool:
        self._refill(now)
        return self._in_flight == 0 and self._tokens >= self.capacity


@dataclass(frozen=True, slots=True)
class Permit:
    """One request's claim on the global and per-chat budgets; give it back with release()."""

    chat_id: int


class TelegramLimiter:
    """Decides when the next message or edit to a chat may go.

    Not a waiting primitive: the outbox sender asks `wait_time` for each candidate and picks
    what can go now, so a chat that must wait never holds up the others.
    """

    def __init__(
        self, limits: TelegramLimits | None = None, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.limits = limits or TelegramLimits()
        self._clock = clock
        self._global = SlidingWindow(self.limits.global_per_second, 1.0)
        self._chats: dict[int, SlidingWindow | TokenBucket] = {}
        self._paused_until = 0.0
        self._chat_paused_until: dict[int, float] = {}
        self._last_prune = 0.0

    def now(self) -> float:
        return self._clock()

    def _chat_window(self, chat_id: int) -> SlidingWindow | TokenBucket:
        window = self._chats.get(chat_id)
        if window is None:
            if is_group_chat(chat_id):
                window = SlidingWindow(self.limits.group_per_minute, 60.0)
            else:
                window = TokenBucket(
                    self.limits.chat_burst, self.limits.chat_per_second, self._clock()
                )
            self._chats[chat_id] = window
        return window

    def wait_time(self, chat_id: int, *, background: bool = False) -> float | None:
        """Seconds until a request to `chat_id` may go (0: now). None means it waits for a
        request in flight to come back, which the caller learns about through release()."""
        now = self._clock()
        pause = max(self._paused_until, self._chat_paused_until.get(chat_id, 0.0)) - now
        cap = self.limits.background_limit if background else None
        waits = [self._global.wait_time(now, limit=cap)]
        chat = self._chats.get(chat_id)
        if chat is not None:
            waits.append(chat.wait_time(now))
        if any(w is None for w in waits):
            return None
        return max(0.0, pause, *(w for w in waits if w is not None))

    def take(self, chat_id: int) -> Permit:
        """Record a request leaving now. Callers check wait_time() first; take() does not
        refuse, because the sender is the only caller and has just checked."""
        self._global.take()
        self._chat_window(chat_id).take()
        return Permit(chat_id)

    def global_wait(self, *, background: bool = False) -> float | None:
        """Like wait_time for a chat with nothing sent yet: the global budget and pauses only.
        When this is not 0 nothing can go, whatever the chat."""
        now = self._clock()
        cap = self.limits.background_limit if background else None
        wait = self._global.wait_time(now, limit=cap)
        return None if wait is None else max(0.0, wait, self._paused_until - now)

    def abandon(self, permit: Permit) -> None:
        """The request never left after all: give the slot back without counting it."""
        self._global.cancel()
        self._chat_window(permit.chat_id).cancel()

    def release(self, permit: Permit) -> None:
        now = self._clock()
        self._global.release(now)
        self._chat_window(permit.chat_id).release(now)
        self._prune(now)

    def pause_all(self, seconds: float) -> None:
        """Telegram said "retry after N": nothing goes for N seconds. The answer does not say
        which limit was hit, so the safe reading is all of them."""
        self._paused_until = max(self._paused_until, self._clock() + max(0.0, seconds))

    def pause_chat(self, chat_id: int, seconds: float) -> None:
        until = self._clock() + max(0.0, seconds)
        self._chat_paused_until[chat_id] = max(self._chat_paused_until.get(chat_id, 0.0), until)

    def paused_for(self) -> float:
        return max(0.0, self._paused_until - self._clock())

    def _prune(self, now: float) -> None:
        # Per-chat state would otherwise grow with every chat the bot ever wrote to.
        if now - self._last_prune < 10.0:
            return
        self._last_prune = now
        for chat_id in [c for c, w in self._chats.items() if w.idle(now)]:
            del self._chats[chat_id]
        for chat_id in [c for c, t in self._chat_paused_until.items() if t <= now]:
            del self._chat_paused_until[chat_id]
