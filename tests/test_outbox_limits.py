"""The Telegram limiter's arithmetic, on a hand-driven clock."""

from __future__ import annotations

import pytest

from bot.services.rates import SlidingWindow
from bot.telegram.limits import TelegramLimiter, TelegramLimits, TokenBucket, is_group_chat


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


def send(limiter: TelegramLimiter, clock: Clock, chat_id: int, *, latency: float = 0.0) -> None:
    wait = limiter.wait_time(chat_id)
    assert wait == 0.0, f"chat {chat_id} not ready: {wait}"
    permit = limiter.take(chat_id)
    clock.advance(latency)
    limiter.release(permit)


def test_sliding_window_counts_in_flight_and_expires_after_release() -> None:
    w = SlidingWindow(2, 1.0)
    assert w.wait_time(0.0) == 0.0
    w.take()
    w.take()
    # Both in flight: only a release can make room, and nobody knows when.
    assert w.wait_time(0.0) is None
    w.release(0.5)
    assert w.wait_time(0.5) == pytest.approx(1.0)
    assert w.wait_time(1.4) == pytest.approx(0.1)
    # Expired at 1.5: one left in flight, so one more fits.
    assert w.wait_time(1.5) == 0.0
    w.take()
    assert w.wait_time(1.5) is None
    w.release(2.0)
    w.release(2.0)
    assert w.wait_time(2.0) == pytest.approx(1.0)
    assert w.used(3.0) == 0
    assert w.idle(3.0)


def test_sliding_window_lower_cap_waits_for_enough_expiries() -> None:
    w = SlidingWindow(4, 1.0)
    for t in (0.0, 0.1, 0.2):
        w.take()
        w.release(t)
    assert w.wait_time(0.3) == 0.0
    # Capped at 2, usage 3 must drop to 1: the second expiry (at 1.1) is the answer.
    assert w.wait_time(0.3, limit=2) == pytest.approx(0.8)


def test_release_without_take_is_an_error() -> None:
    with pytest.raises(RuntimeError):
        SlidingWindow(1, 1.0).release(0.0)


def test_limits_validate() -> None:
    with pytest.raises(ValueError):
        TelegramLimits(global_per_second=0)
    with pytest.raises(ValueError):
        TelegramLimits(chat_per_second=0)
    with pytest.raises(ValueError):
        TelegramLimits(background_share=0)
    assert TelegramLimits(chat_burst=3, chat_per_second=1).chat_window == 3.0
    assert TelegramLimits(global_per_second=30, background_share=0.5).background_limit == 15
    # By default card edits and broadcasts may fill 20 of the 30 a second, never the last 10.
    assert TelegramLimits().background_limit == 20


def test_group_ids_are_negative() -> None:
    assert is_group_chat(-100500)
    assert not is_group_chat(1001)


def test_global_limit_holds_thirty_per_second_measured_from_the_answers() -> None:
    clock = Clock()
    lim = TelegramLimiter(TelegramLimits(global_per_second=30), clock=clock)
    for chat in range(1, 31):
        send(lim, clock, chat, latency=0.01)
    # 30 slots are taken until one second after each answer came back.
    wait = lim.wait_time(31)
    assert wait == pytest.approx(1.0 - 0.29, abs=1e-9)
    clock.advance(wait)  # type: ignore[arg-type]
    assert lim.wait_time(31) == 0.0


def test_private_chat_allows_a_small_burst_then_one_per_second() -> None:
    clock = Clock()
    lim = TelegramLimiter(TelegramLimits(chat_burst=3, chat_per_second=1.0), clock=clock)
    for _ in range(3):
        send(lim, clock, 7)
    # The burst is spent; the next token comes a second later, as in Telegram's bucket.
    assert lim.wait_time(7) == pytest.approx(1.0)
    # Other chats are not held up by chat 7.
    assert lim.wait_time(8) == 0.0
    clock.advance(1.0)
    send(lim, clock, 7)
    # Over any long stretch the rate is one a second: 3 per 3 s.
    sent = 4
    for _ in range(30):
        wait = lim.wait_time(7)
        assert wait is not None
        clock.advance(wait)
        send(lim, clock, 7)
        sent += 1
    assert sent <= 3 + (clock.t - 1000.0) * 1.0 + 1e-9


def test_group_chat_is_held_to_twenty_a_minute() -> None:
    clock = Clock()
    lim = TelegramLimiter(TelegramLimits(group_per_minute=20, chat_burst=50), clock=clock)
    for _ in range(20):
        send(lim, clock, -100500)
        clock.advance(0.1)
    assert lim.wait_time(-100500) == pytest.approx(60.0 - 2.0)


def test_background_traffic_leaves_room_for_urgent_messages() -> None:
    clock = Clock()
    lim = TelegramLimiter(TelegramLimits(global_per_second=30, background_share=0.5), clock=clock)
    for chat in range(1, 16):
        assert lim.wait_time(chat, background=True) == 0.0
        send(lim, clock, chat)
    assert lim.wait_time(100, background=True) == pytest.approx(1.0)
    assert lim.wait_time(100) == 0.0


def test_pauses_hold_everything_or_one_chat() -> None:
    clock = Clock()
    lim = TelegramLimiter(clock=clock)
    lim.pause_chat(5, 4.0)
    assert lim.wait_time(5) == pytest.approx(4.0)
    assert lim.wait_time(6) == 0.0
    lim.pause_all(2.0)
    assert lim.wait_time(6) == pytest.approx(2.0)
    assert lim.paused_for() == pytest.approx(2.0)
    # A shorter pause never shortens a longer one.
    lim.pause_all(1.0)
    assert lim.paused_for() == pytest.approx(2.0)
    clock.advance(4.0)
    assert lim.wait_time(5) == 0.0


def test_in_flight_requests_block_until_released() -> None:
    clock = Clock()
    lim = TelegramLimiter(TelegramLimits(global_per_second=2), clock=clock)
    p1 = lim.take(1)
    lim.take(2)
    assert lim.wait_time(3) is None
    lim.release(p1)
    assert lim.wait_time(3) == pytest.approx(1.0)


def test_idle_chats_are_forgotten() -> None:
    clock = Clock()
    lim = TelegramLimiter(clock=clock)
    for chat in range(1, 50):
        send(lim, clock, chat)
        clock.advance(0.1)
    clock.advance(30.0)
    send(lim, clock, 1000)
    assert len(lim._chats) == 1


def test_private_chat_tokens_are_spent_when_the_answer_comes_back() -> None:
    clock = Clock()
    lim = TelegramLimiter(TelegramLimits(chat_burst=2, chat_per_second=1.0), clock=clock)
    first, second = lim.take(7), lim.take(7)
    # Both in flight: nothing more may leave, however long they take.
    assert lim.wait_time(7) == pytest.approx(1.0)
    clock.advance(5.0)
    assert lim.wait_time(7) == pytest.approx(1.0)
    lim.release(first)
    lim.release(second)
    # Refill during the flight is not credited: the bucket was full while they flew.
    assert lim.wait_time(7) == pytest.approx(1.0)
    clock.advance(0.5)
    assert lim.wait_time(7) == pytest.approx(0.5)
    clock.advance(0.5)
    assert lim.wait_time(7) == 0.0
    # A request that never left gives its token back.
    lim.abandon(lim.take(7))
    assert lim.wait_time(7) == 0.0


def test_token_bucket_needs_a_burst_and_a_rate() -> None:
    with pytest.raises(ValueError, match="burst"):
        TokenBucket(0, 1.0, 0.0)
    with pytest.raises(ValueError, match="rate"):
        TokenBucket(1, 0.0, 0.0)
    bucket = TokenBucket(1, 1.0, 0.0)
    with pytest.raises(RuntimeError):
        bucket.release(0.0)
    with pytest.raises(RuntimeError):
        bucket.cancel()
