"""The client's rate limiter: budgets, FIFO waiting, pauses and estimates on its own, and the
slots of requests whose outcome is unknown against the real sandbox over loopback."""

from __future__ import annotations

import asyncio
import time

import pytest

from bot.daisysim import (
    DaisySimClient,
    EndpointLimiter,
    PurchaseOutcomeUnknown,
    RateLimiter,
    RateLimits,
)
from bot.sandbox import Sandbox


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_rate_limits_defaults_and_scaling() -> None:
    limits = RateLimits()
    assert (limits.purchase, limits.check, limits.cancel) == ((10, 60.0), (60, 60.0), (10, 60.0))
    fast = limits.scaled(60)
    assert (fast.purchase, fast.check, fast.cancel) == ((10, 1.0), (60, 1.0), (10, 1.0))
    assert fast.scaled(2).purchase == (10, 0.5)


@pytest.mark.parametrize(
    "kwargs",
    [{"purchase": (0, 60.0)}, {"check": (60, 0.0)}, {"cancel": (10, -1.0)}],
)
def test_rate_limits_reject_nonsense(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="positive window"):
        RateLimits(**kwargs)  # type: ignore[arg-type]


def test_scaling_by_nonsense_is_refused() -> None:
    with pytest.raises(ValueError, match="time_scale"):
        RateLimits().scaled(0)


def test_rate_limiter_has_one_limiter_per_group() -> None:
    limiter = RateLimiter(RateLimits(purchase=(3, 5.0)))
    assert limiter["purchase"] is limiter.purchase
    assert (limiter.purchase.limit, limiter.purchase.window) == (3, 5.0)
    assert (limiter.check.limit, limiter.cancel.limit) == (60, 10)


async def test_remaining_and_next_free_in_follow_the_window() -> None:
    clock = FakeClock()
    limiter = EndpointLimiter("purchase", 2, 60.0, clock=clock)
    assert (limiter.remaining(), limiter.next_free_in()) == (2, 0.0)
    await limiter.acquire()
    # In flight: it counts, and it frees no sooner than a window after it comes back.
    assert limiter.remaining() == 1
    clock.now += 5
    limiter.release()  # frees at 1065
    await limiter.acquire()
    clock.now += 5
    limiter.release()  # frees at 1070
    assert limiter.remaining() == 0
    assert limiter.next_free_in() == pytest.approx(55.0)
    clock.now += 54.9
    assert limiter.remaining() == 0
    clock.now += 0.1
    assert limiter.remaining() == 1
    assert limiter.next_free_in() == 0.0
    clock.now += 5
    assert limiter.remaining() == 2


async def test_next_free_in_while_everything_is_in_flight_is_a_window() -> None:
    limiter = EndpointLimiter("cancel", 1, 10.0, clock=FakeClock())
    await limiter.acquire()
    assert limiter.next_free_in() == pytest.approx(10.0)


async def test_pause_blocks_new_slots_and_never_shortens() -> None:
    clock = FakeClock()
    limiter = EndpointLimiter("purchase", 10, 60.0, clock=clock)
    limiter.pause(43)
    limiter.pause(5)
    assert limiter.remaining() == 0
    assert limiter.paused_for() == pytest.approx(43)
    assert limiter.next_free_in() == pytest.approx(43)
    clock.now += 43
    assert limiter.remaining() == 10


async def test_estimated_wait_for_a_queue_position() -> None:
    clock = FakeClock()
    limiter = EndpointLimiter("purchase", 2, 60.0, clock=clock)
    await limiter.acquire()
    limiter.release()  # frees at +60
    clock.now += 10  # frees at +50 from here
    assert limiter.estimated_wait(0) == 0.0  # one slot is free now
    assert limiter.estimated_wait(1) == pytest.approx(50.0)
    assert limiter.estimated_wait(2) == pytest.approx(60.0)  # the free slot, one round later
    assert limiter.estimated_wait(3) == pytest.approx(110.0)
    limiter.pause(70)
    assert limiter.estimated_wait(0) == pytest.approx(70.0)


async def test_waiters_beyond_the_budget_wait_in_arrival_order() -> None:
    window = 0.05
    limiter = EndpointLimiter("purchase", 2, window)
    order: list[int] = []
    taken: list[float] = []

    async def caller(i: int) -> None:
        async with limiter.slot():
            order.append(i)
            taken.append(time.monotonic())

    await asyncio.gather(*(caller(i) for i in range(7)))
    assert order == list(range(7))
    assert all(taken[i + 2] - taken[i] >= window for i in range(len(taken) - 2))
    assert limiter.queued == 0


async def test_queued_counts_waiters() -> None:
    limiter = EndpointLimiter("cancel", 1, 60.0)
    await limiter.acquire()
    waiters = [asyncio.create_task(limiter.acquire()) for _ in range(3)]
    deadline = time.monotonic() + 2
    while limiter.queued < 3 and time.monotonic() < deadline:
        await asyncio.sleep(0)
    assert limiter.queued == 3
    for task in waiters:
        task.cancel()
    await asyncio.gather(*waiters, return_exceptions=True)
    assert limiter.queued == 0
    assert limiter.in_flight == 1


async def test_a_cancelled_waiter_takes_no_slot_and_blocks_nobody() -> None:
    limiter = EndpointLimiter("cancel", 1, 0.05)
    await limiter.acquire()
    head = asyncio.create_task(limiter.acquire())
    second = asyncio.create_task(limiter.acquire())
    deadline = time.monotonic() + 2
    while limiter.queued < 2 and time.monotonic() < deadline:
        await asyncio.sleep(0)
    head.cancel()
    limiter.release()
    await asyncio.wait_for(second, 2)
    assert head.cancelled()
    assert limiter.in_flight == 1


async def test_a_pause_wakes_and_holds_the_head_of_the_queue() -> None:
    limiter = EndpointLimiter("purchase", 1, 0.02)
    await limiter.acquire()
    waiter = asyncio.create_task(limiter.acquire())
    deadline = time.monotonic() + 2
    while limiter.queued < 1 and time.monotonic() < deadline:
        await asyncio.sleep(0)
    paused_at = time.monotonic()
    limiter.pause(0.2)
    limiter.release()
    await asyncio.wait_for(waiter, 2)
    assert time.monotonic() - paused_at >= 0.2


def test_release_without_acquire_is_a_bug() -> None:
    with pytest.raises(RuntimeError):
        EndpointLimiter("check", 1, 1.0).release()


async def test_an_uncounted_release_frees_the_slot_at_once() -> None:
    limiter = EndpointLimiter("purchase", 1, 60.0, clock=FakeClock())
    await limiter.acquire()
    limiter.release("never_sent")
    assert limiter.remaining() == 1
    await asyncio.wait_for(limiter.acquire(), 1)
    limiter.release()
    assert limiter.remaining() == 0


async def test_an_unknown_outcome_holds_its_slot_late_count_longer() -> None:
    clock = FakeClock()
    limiter = EndpointLimiter("purchase", 2, 60.0, late_count=15.0, clock=clock)
    await limiter.acquire()
    limiter.release("unknown")  # the server may count it up to 15 s from now: frees at 1075
    await limiter.acquire()
    clock.now += 1
    limiter.release()  # answered: frees at 1061, before the unknown one
    assert limiter.next_free_in() == pytest.approx(60.0)
    clock.now += 60
    assert limiter.remaining() == 1
    assert limiter.next_free_in() == 0.0
    await limiter.acquire()
    assert limiter.next_free_in() == pytest.approx(14.0)
    clock.now += 14
    assert limiter.remaining() == 1


async def test_a_block_that_raises_leaves_its_slot_unknown() -> None:
    clock = FakeClock()
    limiter = EndpointLimiter("cancel", 1, 10.0, late_count=5.0, clock=clock)
    with pytest.raises(TimeoutError):
        async with limiter.slot():
            raise TimeoutError
    assert limiter.next_free_in() == pytest.approx(15.0)


def test_late_count_must_not_be_negative() -> None:
    with pytest.raises(ValueError, match="late_count"):
        EndpointLimiter("check", 1, 1.0, late_count=-1.0)


async def test_a_purchase_counted_after_our_timeout_draws_no_429_from_the_next_burst() -> None:
    """The upstream applies (and counts) a purchase a little after the client gave up on it;
    a burst right after must still fit the upstream's window, not collect a real 429."""
    limit, window, timeout = 3, 1.0, 0.5
    async with Sandbox(rate_limits={"purchase": (limit, window)}) as sb:
        client = DaisySimClient(
            sb.base_url,
            "test-key",
            timeout=timeout,
            limits=RateLimits(purchase=(limit, window)),
            max_retries=0,
        )
        async with client:
            await sb.control.add_fault("purchase", "delay_before", delay=timeout + 0.2)
            with pytest.raises(PurchaseOutcomeUnknown):
                await client.purchase("USA", "WhatsApp")
            # Twice the budget: the second half goes out while the late one is still counted.
            burst = await asyncio.gather(
                *(client.purchase("USA", "WhatsApp") for _ in range(2 * limit)),
                return_exceptions=True,
            )
        assert [r for r in burst if isinstance(r, BaseException)] == []
        stats = await sb.control.stats()
    # The sandbox counts the late request when its delay ends (and then finds the client
    # gone); a limiter that freed its slot a window after our timeout drew a real 429 here.
    assert stats.rate_limited_total == 0
