"""The poller's scheduling arithmetic, driven on a simulated clock."""

from __future__ import annotations

import itertools
import math
from collections import defaultdict

import pytest

from bot.services.poll_schedule import Pacer, PollPolicy, PollSchedule
from bot.services.rates import SlidingWindow


def test_policy_defaults_match_the_upstream_budget() -> None:
    p = PollPolicy()
    assert p.poller_budget == 58
    assert p.hard_reserve == 1
    assert p.pace == pytest.approx(60 / 58)
    assert p.batches(0) == 0
    assert p.batches(1) == 1
    assert p.batches(20) == 1
    assert p.batches(21) == 2
    # One batch: the min interval rules.
    assert p.cycle_seconds(1) == 2.0
    assert p.cycle_seconds(20) == 2.0
    # 15 batches at 58 a minute.
    assert p.cycle_seconds(300) == pytest.approx(15 * 60 / 58)
    assert p.capacity_per_cycle() == 14 * 20


def test_policy_scales_with_the_upstream_clock() -> None:
    p = PollPolicy.scaled(check_limit=60, check_window=6.0, poll_min_interval=2.0, time_scale=10)
    assert p.min_interval == pytest.approx(0.2)
    assert p.cycle == pytest.approx(1.5)
    assert p.pace == pytest.approx(6.0 / 58)
    assert p.cycle_seconds(300) == pytest.approx(15 * 6.0 / 58)
    # A tiny budget still leaves the poller a slot.
    tiny = PollPolicy.scaled(check_limit=2, check_window=1.0, poll_min_interval=1, time_scale=1)
    assert tiny.reserve == 1
    assert tiny.poller_budget == 1


def test_policy_validates() -> None:
    with pytest.raises(ValueError):
        PollPolicy(reserve=60)
    with pytest.raises(ValueError):
        PollPolicy(check_window=0)
    with pytest.raises(ValueError):
        PollPolicy(min_interval=0)
    with pytest.raises(ValueError):
        PollPolicy.scaled(check_limit=60, check_window=60, poll_min_interval=2, time_scale=0)


def test_pacer_spreads_batches_at_the_budget_rate() -> None:
    p = PollPolicy()
    pacer = Pacer(p, now=0.0, capacity=2)
    assert pacer.take(0.0)
    assert not pacer.take(0.0)
    assert pacer.wait_time(0.0) == pytest.approx(p.pace)
    assert pacer.take(p.pace)
    # A long quiet spell saves at most `capacity` batches.
    assert pacer.available(1000.0) == 2


def test_batches_fill_with_the_ids_looked_at_longest_ago() -> None:
    s = PollSchedule(PollPolicy(batch_size=3, min_interval=2.0))
    s.sync(["a", "b", "c", "d"], now=0.0)
    first = s.take_batch(0.0)
    assert len(first) == 3
    s.polled(first, 0.1)
    (rest,) = {"a", "b", "c", "d"} - set(first)
    # Only `rest` is due, but the batch is topped up with ids polled longest ago.
    second = s.take_batch(0.2)
    assert second[0] == rest
    assert len(second) == 3
    s.polled(second, 0.3)
    assert s.next_due_in(0.3) == pytest.approx(1.8)
    assert s.take_batch(0.5) == []


def test_sync_adds_new_ids_due_at_once_and_forgets_gone_ones() -> None:
    s = PollSchedule(PollPolicy())
    assert sorted(s.sync(["1", "2"], now=0.0)) == ["1", "2"]
    s.polled(s.take_batch(0.0), 0.0)
    assert s.sync(["2", "3"], now=1.0) == ["3"]
    assert "1" not in s
    assert s.take_batch(1.0)[0] == "3"


def test_failed_batch_is_retried_after_the_delay() -> None:
    s = PollSchedule(PollPolicy())
    s.sync(["1"], now=0.0)
    batch = s.take_batch(0.0)
    assert s.take_batch(0.0) == []  # in flight
    s.retry_later(batch, 0.0, 5.0)
    assert s.take_batch(4.9) == []
    assert s.take_batch(5.0) == ["1"]


def simulate(
    count: int,
    policy: PollPolicy,
    duration: float,
    *,
    user_checks_every: float = 0.0,
    latency: float = 0.0,
):
    """Run the poll loop the way the job does, against a model of the upstream's window.

    Returns the request times and, per id, the times it was looked at. With `latency`, an
    answer comes back that much later, and only then do the slot's window and the ids' next
    look start (like the client's limiter, which counts from the answer).
    """
    upstream = SlidingWindow(policy.check_limit, policy.check_window)
    schedule = PollSchedule(policy)
    schedule.sync([str(i) for i in range(count)], now=0.0)
    pacer = Pacer(policy, now=0.0)
    requests: list[float] = []
    user_requests = SlidingWindow(policy.check_limit, policy.check_window)
    seen: dict[str, list[float]] = defaultdict(list)
    tick = policy.tick_seconds()
    next_user = user_checks_every or math.inf
    steps = int(duration / tick)
    answers: list[tuple[float, list[str]]] = []
    for step in range(steps + 1):
        now = step * tick
        for answered in [a for a in answers if a[0] <= now]:
            answers.remove(answered)
            upstream.release(answered[0])
            schedule.polled(answered[1], answered[0])
        while now >= next_user:
            # A user's Refresh press takes a slot whenever there is one.
            if upstream.wait_time(next_user) == 0.0:
                upstream.take()
                upstream.release(next_user)
                user_requests.take()
                user_requests.release(next_user)
                requests.append(next_user)
            next_user += user_checks_every
        pacer.share_with(user_requests.used(now), now)
        while schedule.due(now):
            free = upstream.limit - upstream.used(now)
            if free <= policy.hard_reserve or not pacer.take(now):
                break
            batch = schedule.take_batch(now)
            upstream.take()
            requests.append(now)
            for upstream_id in batch:
                seen[upstream_id].append(now)
            if latency:
                answers.append((now + latency, batch))
            else:
                upstream.release(now)
                schedule.polled(batch, now)
    return requests, seen


def max_in_window(times: list[float], window: float) -> int:
    times = sorted(times)
    best, lo = 0, 0
    for hi, t in enumerate(times):
        while times[lo] <= t - window:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


@pytest.mark.parametrize("count", [1, 20, 100, 280, 300, 1000])
def test_the_budget_is_never_exceeded_and_every_id_is_looked_at_each_cycle(count: int) -> None:
    policy = PollPolicy()
    requests, seen = simulate(count, policy, 300.0)
    assert max_in_window(requests, policy.check_window) <= policy.poller_budget
    assert_cycle(seen, count, policy.cycle_seconds(count) + policy.tick_seconds())
    if count <= policy.batch_size:
        # A small set is looked at every min_interval, not every 15 s.
        assert policy.cycle_seconds(count) == policy.min_interval
    if count <= policy.capacity_per_cycle():
        assert policy.cycle_seconds(count) <= policy.cycle + 1e-9


@pytest.mark.parametrize("count", [20, 300])
def test_user_presses_come_first_and_the_poller_slows_down(count: int) -> None:
    policy = PollPolicy()
    # Users press Refresh 6 times a minute, more than the reserve of 2.
    requests, seen = simulate(count, policy, 300.0, user_checks_every=10.0)
    assert max_in_window(requests, policy.check_window) <= policy.check_limit
    # The poller keeps its share less what the users took, and still leaves the reserve.
    poller_rate = (policy.poller_budget - 6) / policy.check_window
    slowest = max(policy.min_interval, policy.batches(count) / poller_rate)
    # After the first window, once the pacer has seen how much the users take.
    settled = {k: [t for t in v if t >= policy.check_window] for k, v in seen.items()}
    assert_cycle(settled, count, slowest + 2 * policy.pace, start=policy.check_window)


def assert_cycle(
    seen: dict[str, list[float]], count: int, bound: float, *, start: float = 0.0
) -> None:
    for upstream_id in (str(i) for i in range(count)):
        looks = seen[upstream_id]
        assert looks, f"{upstream_id} never polled"
        assert looks[0] - start <= bound
        worst = max(b - a for a, b in itertools.pairwise(looks))
        assert worst <= bound + 1e-6, (upstream_id, worst, bound)


@pytest.mark.parametrize("latency", [0.05, 0.3])
def test_slow_answers_keep_the_cycle_and_the_budget(latency: float) -> None:
    policy = PollPolicy()
    requests, seen = simulate(300, policy, 300.0, latency=latency)
    # Counting slots from the answers, the upstream never sees more than the budget.
    assert max_in_window(requests, policy.check_window) <= policy.check_limit
    settled = {k: [t for t in v if t >= policy.check_window] for k, v in seen.items()}
    bound = policy.cycle_seconds(300) + latency + 2 * policy.tick_seconds()
    assert_cycle(settled, 300, bound, start=policy.check_window)


def test_few_ids_use_few_requests() -> None:
    policy = PollPolicy()
    requests, _ = simulate(5, policy, 60.0)
    # One batch every 2 s, not the whole budget.
    assert 29 <= len(requests) <= 32


def test_many_ids_spread_over_the_budget_not_in_bursts() -> None:
    policy = PollPolicy()
    requests, _ = simulate(1000, policy, 120.0)
    assert max_in_window(requests, policy.check_window) <= policy.poller_budget + policy.burst
    # Evenly spread: no second holds more than the pacer's burst.
    assert max_in_window(requests, 1.0) <= 2
