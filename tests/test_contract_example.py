"""The reference's "Complete Integration Example", step by step, against the sandbox.

The sandbox runs 180x: the 180 s cancel lock lasts one real second, the 15 s poll interval
1/12 s. Seconds the server prints (TOO_EARLY) are real seconds already.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from bot.daisysim import (
    COMPLETED,
    INVALID,
    NOT_FOUND,
    CodeReceived,
    DaisySimClient,
    RateLimits,
    TooEarly,
)
from bot.sandbox import Sandbox

KEY = "integration-example"
SCALE = 180.0
START_UNITS = 142_500  # the reference's $14.25
POLL_INTERVAL = 15.0 / SCALE
MAX_POLLS = 40


@pytest.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    async with Sandbox(time_scale=SCALE, start_balance_units=START_UNITS, seed=3) as sb:
        yield sb


@pytest.fixture
async def client(sandbox: Sandbox) -> AsyncIterator[DaisySimClient]:
    limits = RateLimits().scaled(SCALE)
    async with DaisySimClient(sandbox.base_url, KEY, limits=limits, timeout=5.0) as c:
        yield c


async def poll_for_code(
    client: DaisySimClient,
    activation_id: str,
    *,
    max_polls: int = MAX_POLLS,
    on_waiting: Callable[[], Awaitable[None]] | None = None,
) -> str | None:
    """Step 5: poll check-all every 15 (upstream) seconds until a code or a dead id."""
    for _ in range(max_polls):
        # The poll cadence itself is the behaviour under test, as in the reference.
        await asyncio.sleep(POLL_INTERVAL)
        results = await client.check_all([activation_id])
        item = next((r for r in results if r.activation_id == activation_id), None)
        # Unresolvable ids never change: stop polling them at once.
        if item is None or item.status in (NOT_FOUND, INVALID):
            return None
        if item.status == COMPLETED:
            return item.code
        if on_waiting is not None:
            await on_waiting()
    return None


async def buy_cheapest_sb_wa(client: DaisySimClient) -> tuple[str, int]:
    """Steps 1-4: fetch the apps, pick sb_wa, pin its cheapest pool, buy."""
    apps = await client.apps("USA")
    svc = next(a for a in apps if a.code == "sb_wa")
    assert svc.is_multi_pool
    cheapest = svc.providers[0]  # already sorted cheapest-first
    assert cheapest.price_units == min(p.price_units for p in svc.providers)
    bought = await client.purchase("USA", svc.code, cheapest.provider_id)
    # amount_charged always matches the price of the pool used.
    assert bought.amount_charged_units == cheapest.price_units == 10_830
    assert bought.balance_after_units == START_UNITS - 10_830
    return bought.activation_id, bought.amount_charged_units


async def test_purchase_poll_and_receive_the_code(sandbox: Sandbox, client: DaisySimClient) -> None:
    activation_id, _ = await buy_cheapest_sb_wa(client)
    delivered: list[str] = []

    async def sms_arrives() -> None:
        if not delivered:
            delivered.append(await sandbox.control.deliver_code(activation_id))

    code = await poll_for_code(client, activation_id, on_waiting=sms_arrives)
    assert delivered
    assert code == delivered[0]
    account = await sandbox.control.account(KEY)
    assert account.orders[0].status == COMPLETED
    # A code means no refund.
    assert account.balance_units == START_UNITS - 10_830
    assert (await sandbox.control.stats()).rate_limited_total == 0


async def test_no_code_cancel_waits_out_too_early_and_refunds_exactly(
    sandbox: Sandbox, client: DaisySimClient
) -> None:
    activation_id, charged = await buy_cheapest_sb_wa(client)
    assert await poll_for_code(client, activation_id, max_polls=3) is None

    # Step 6: cancel inside the 3-minute lock is refused with the seconds left ...
    with pytest.raises(TooEarly) as too_early:
        await client.cancel(activation_id)
    wait = too_early.value.seconds_left
    assert 1 <= wait <= 180 / SCALE
    # ... and after exactly that long it goes through (the message's seconds are the truth).
    await asyncio.sleep(wait)
    cancelled = await client.cancel(activation_id)
    assert cancelled.refund_units == charged
    assert cancelled.balance_after_units == START_UNITS
    assert (await client.balance()).balance_units == START_UNITS
    account = await sandbox.control.account(KEY)
    assert (account.balance_units, account.debits_units, account.refunds_units) == (
        START_UNITS,
        charged,
        charged,
    )
    # A cancelled id is dead: polling stops at the first answer.
    assert await poll_for_code(client, activation_id) is None
    assert (await client.check_all([activation_id]))[0].status == INVALID


async def test_code_arriving_in_the_race_window_is_taken_from_cancel(
    sandbox: Sandbox, client: DaisySimClient
) -> None:
    activation_id, _ = await buy_cheapest_sb_wa(client)
    assert await poll_for_code(client, activation_id, max_polls=2) is None
    await sandbox.control.advance_clock(180)
    delivered = await sandbox.control.deliver_code(activation_id, "031337")
    code: str | None = None
    try:
        await client.cancel(activation_id)
    except CodeReceived as exc:
        code = exc.sms_code
    assert code == delivered == "031337"
    account = await sandbox.control.account(KEY)
    assert (account.balance_units, account.refunds_units) == (START_UNITS - 10_830, 0)
