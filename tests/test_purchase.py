"""Purchases, their failures and their reconciliation, against the sandbox over loopback HTTP,
with a real temporary SQLite file. Every test ends by comparing our books with what the
sandbox's control API says it sold."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from bot.daisysim import DaisySimClient
from bot.ledger_check import check_ledger
from bot.sandbox import Sandbox
from bot.services import activation as activations
from bot.services import money, wallet
from bot.services.errors import (
    ActivationNotActive,
    CancelTooEarly,
    DailyLimitExceeded,
    InsufficientFunds,
    NotYourActivation,
    PurchasePending,
    PurchaseRejected,
    UpstreamBalanceExhausted,
    UpstreamBusy,
)
from bot.services.purchase import reconciliation_tag, token_of
from bot.services.purchase_queue import PurchaseQueue, Queued
from bot.services.reconcile import reconcile_unknown
from storage.db import Database, Transaction
from storage.models import Activation
from storage.repo import Repo
from tests.fixtures.money import (
    PRICE,
    activation_entries,
    assert_settled_consistently,
    buy,
    buy_request,
    make_client,
    new_user,
    orders_of,
    purchase_queue,
    wallet_balance,
)
from tests.fixtures.waiting import wait_until

# 60 upstream seconds per real second: the 180 s cancel lock is 3 s, rate windows 1 s; tests
# that need the lock over jump the sandbox clock instead of waiting.
SCALE = 60.0
UPSTREAM_START = 500_000
SIGNAL = PRICE["Signal"]
LOCK = 180.0 / SCALE

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def shared_sandbox() -> AsyncIterator[Sandbox]:
    async with Sandbox(time_scale=SCALE, start_balance_units=UPSTREAM_START, seed=7) as sb:
        yield sb


@pytest_asyncio.fixture(loop_scope="module")
async def sb(shared_sandbox: Sandbox) -> Sandbox:
    await shared_sandbox.control.reset()
    return shared_sandbox


@pytest_asyncio.fixture(loop_scope="module")
async def client(sb: Sandbox) -> AsyncIterator[DaisySimClient]:
    async with make_client(sb, "acct") as c:
        yield c


@pytest_asyncio.fixture(loop_scope="module")
async def queue(db: Database, client: DaisySimClient) -> AsyncIterator[PurchaseQueue]:
    """Every purchase goes through the purchase queue, as every tap does in the app."""
    async with purchase_queue(db, client, cancel_lock_seconds=LOCK) as q:
        yield q


async def _purchase_requests(sb: Sandbox) -> int:
    """Purchase requests the sandbox received (counted on arrival, answered or not)."""
    return (await sb.control.stats()).requests.get("purchase", 0)


# --- the happy path and its concurrency ---------------------------------------------------


async def test_a_purchase_holds_buys_and_links(
    sb: Sandbox, db: Database, queue: PurchaseQueue
) -> None:
    w = await new_user(db, 1, 100_000)
    bought = await buy(queue, buy_request(1, w.id, "tap-1"))

    assert bought.state == "waiting"
    account = await sb.control.account("acct")
    [order] = account.orders
    assert bought.upstream_id == order.activation_id
    assert bought.phone_number == order.phone_number
    assert bought.upstream_amount == order.amount_units == SIGNAL
    # The tag the upstream stored is how reconciliation finds the order again.
    assert order.service == reconciliation_tag("Signal", bought.recon_token)
    assert token_of(order.service) == bought.recon_token
    assert bought.purchased_at is not None
    assert bought.cancel_after == pytest.approx(bought.purchased_at + LOCK)
    assert await wallet_balance(db, w.id) == 100_000 - SIGNAL
    entries = await activation_entries(db, bought.id)
    assert [(e.kind, e.amount, e.wallet_id) for e in entries] == [("purchase", -SIGNAL, w.id)]
    assert await check_ledger(Repo(db)) == []


async def test_fifty_taps_with_money_for_three_buy_three(sb: Sandbox, db: Database) -> None:
    w = await new_user(db, 1, 3 * SIGNAL)
    async with make_client(sb, "acct") as client, purchase_queue(db, client) as queue:
        results = await asyncio.gather(
            *(buy(queue, buy_request(1, w.id, f"tap-{i}")) for i in range(50)),
            return_exceptions=True,
        )
    bought = [r for r in results if isinstance(r, Activation)]
    refused = [r for r in results if isinstance(r, InsufficientFunds)]
    assert len(bought) == 3, [r for r in results if not isinstance(r, Activation)][:3]
    assert len(refused) == 47
    assert all(r.needed == SIGNAL and r.balance < SIGNAL for r in refused)
    assert all(a.state == "waiting" for a in bought)

    account = await sb.control.account("acct")
    assert len(account.orders) == 3
    assert sorted(o.activation_id for o in account.orders) == sorted(
        a.upstream_id for a in bought if a.upstream_id
    )
    assert account.debits_units == 3 * SIGNAL
    assert await _purchase_requests(sb) == 3
    assert await wallet_balance(db, w.id) == 0
    totals = await Repo(db).ledger.totals_by_kind(wallet_id=w.id)
    assert totals == {"topup": 3 * SIGNAL, "purchase": -3 * SIGNAL}
    assert await check_ledger(Repo(db)) == []


async def test_a_double_tap_buys_once(sb: Sandbox, db: Database, queue: PurchaseQueue) -> None:
    w = await new_user(db, 1, 100_000)
    taps = await asyncio.gather(*(buy(queue, buy_request(1, w.id, "same")) for _ in range(5)))
    assert len({a.id for a in taps}) == 1
    assert all(a.state == "waiting" for a in taps)  # every tap sees the settled purchase
    again = await buy(queue, buy_request(1, w.id, "same"))
    assert again.id == taps[0].id
    assert await _purchase_requests(sb) == 1
    assert len((await sb.control.account("acct")).orders) == 1
    assert await wallet_balance(db, w.id) == 100_000 - SIGNAL
    assert await check_ledger(Repo(db)) == []


async def test_a_group_member_daily_limit(sb: Sandbox, db: Database, queue: PurchaseQueue) -> None:
    await new_user(db, 1)
    group = await wallet.get_or_create_group_wallet(Repo(db), -100)
    await money.credit(Repo(db), group.id, 100_000, actor_id=1)
    first = await buy(
        queue, buy_request(1, group.id, "g1", chat_id=-100, member_daily_limit=10_000)
    )
    assert first.wallet_id == group.id
    with pytest.raises(DailyLimitExceeded) as info:
        await buy(queue, buy_request(1, group.id, "g2", chat_id=-100, member_daily_limit=10_000))
    assert (info.value.spent, info.value.remaining) == (SIGNAL, 10_000 - SIGNAL)
    assert await wallet_balance(db, group.id) == 100_000 - SIGNAL
    assert await Repo(db).activations.get_by_key("g2") is None


# --- every upstream failure ends balanced: holding the number or refunded --------------------

FAULTS: list[tuple[str, dict[str, Any], type[Exception] | None, str]] = [
    # (fault kind, its arguments, what the tap's purchase raises, how it ends after
    # reconciliation)
    ("delay_after", {"delay": 1.0}, PurchasePending, "holding"),
    ("drop_before", {}, PurchasePending, "refunded"),
    ("drop_after", {}, PurchasePending, "holding"),
    ("malformed", {"variant": "truncated"}, PurchasePending, "holding"),
    ("error", {"code": "PROVIDER_ERROR"}, PurchasePending, "refunded"),  # 502
    ("error", {"code": "SERVER_ERROR"}, PurchasePending, "refunded"),  # 500
    ("error", {"code": "CONCURRENT_ERROR"}, None, "holding"),  # 409 once: retried
    ("error", {"code": "CONCURRENT_ERROR", "times": 10}, PurchaseRejected, "refunded"),
    ("error", {"code": "OUT_OF_STOCK"}, PurchaseRejected, "refunded"),
    ("error", {"code": "INSUFFICIENT_BALANCE"}, UpstreamBalanceExhausted, "refunded"),
    ("error", {"code": "PRICE_VERIFICATION_FAILED"}, PurchaseRejected, "refunded"),
    # A 429 puts the buyer in the purchase queue, served once the upstream's wait is over.
    ("error", {"code": "RATE_LIMITED", "seconds": 1}, None, "holding"),
    ("error", {"code": "INVALID_COUNTRY"}, PurchaseRejected, "refunded"),
]


@pytest.mark.parametrize(
    ("kind", "args", "raised", "outcome"),
    FAULTS,
    ids=[f"{k}-{a.get('code', a.get('variant', ''))}-{a.get('times', 1)}" for k, a, _, _ in FAULTS],
)
async def test_every_upstream_failure_ends_balanced(
    sb: Sandbox,
    db: Database,
    kind: str,
    args: dict[str, Any],
    raised: type[Exception] | None,
    outcome: str,
) -> None:
    w = await new_user(db, 1, 100_000)
    await sb.control.set_account("acct", balance_units=UPSTREAM_START)
    await sb.control.add_fault("purchase", kind, key="acct", **args)  # type: ignore[arg-type]
    async with make_client(sb, "acct", timeout=0.5) as client, purchase_queue(db, client) as queue:
        if raised is None:
            result = await buy(queue, buy_request(1, w.id, "tap"))
            assert result.state == "waiting"
        else:
            with pytest.raises(raised) as info:
                await buy(queue, buy_request(1, w.id, "tap"))
            act = await Repo(db).activations.get_by_key("tap")
            assert act is not None
            if raised is PurchasePending:
                assert act.state == "unknown"
                # Held, not refunded, and never sent twice.
                assert await wallet_balance(db, w.id) == 100_000 - SIGNAL
                assert await _purchase_requests(sb) == 1
            else:
                assert isinstance(info.value, PurchaseRejected)
                assert act.state == "failed"
                assert info.value.upstream_code == args["code"]
                assert info.value.activation.id == act.id
                assert info.value.alert_admins == (raised is UpstreamBalanceExhausted)
                assert info.value.retryable == (
                    args["code"]
                    in {
                        "OUT_OF_STOCK",
                        "PRICE_VERIFICATION_FAILED",
                        "RATE_LIMITED",
                        "CONCURRENT_ERROR",
                    }
                )
        # What a restart (or the periodic job) does; twice, to show it is idempotent.
        first = await reconcile_unknown(Repo(db), client, grace_seconds=0)
        second = await reconcile_unknown(Repo(db), client, grace_seconds=0)
        assert second.settled == 0
        if raised is PurchasePending:
            assert first.settled == 1
    act = await Repo(db).activations.get_by_key("tap")
    assert act is not None
    result_kind = await assert_settled_consistently(
        db,
        sb,
        "acct",
        act.id,
        start_balance=100_000,
        wallet_id=w.id,
        upstream_start_units=UPSTREAM_START,
    )
    assert result_kind == outcome


async def test_an_empty_upstream_account_and_an_empty_pool(sb: Sandbox, db: Database) -> None:
    """The real conditions, not injected faults: no money upstream, no stock in a pool."""
    w = await new_user(db, 1, 100_000)
    await sb.control.set_account("poor", balance_units=SIGNAL - 1)
    async with make_client(sb, "poor") as client, purchase_queue(db, client) as queue:
        with pytest.raises(UpstreamBalanceExhausted):
            await buy(queue, buy_request(1, w.id, "a"))
    await sb.control.set_stock("sb_wa", "3109", 0)
    async with make_client(sb, "acct") as client, purchase_queue(db, client) as queue:
        with pytest.raises(PurchaseRejected) as info:
            await buy(
                queue, buy_request(1, w.id, "b", service="sb_wa", provider_id="3109", price=11_000)
            )
    assert info.value.upstream_code == "OUT_OF_STOCK"
    assert info.value.retryable
    assert await wallet_balance(db, w.id) == 100_000
    assert await check_ledger(Repo(db)) == []
    assert (await sb.control.account("poor")).orders == []


async def test_a_purchase_delayed_past_our_timeout_is_judged_after_the_upstream_answered(
    sb: Sandbox, db: Database
) -> None:
    """delay_before longer than our timeout: the upstream only acts AFTER we gave up. A
    reconciliation inside the grace period must leave it alone; once the upstream has dealt
    with the request, our books follow whatever it did (this sandbox fails to read the body
    of a request whose client left, so nothing is sold and the user is refunded)."""
    w = await new_user(db, 1, 100_000)
    await sb.control.add_fault("purchase", "delay_before", key="acct", delay=0.6)
    async with make_client(sb, "acct", timeout=0.2) as client, purchase_queue(db, client) as queue:
        with pytest.raises(PurchasePending):
            await buy(queue, buy_request(1, w.id, "slow"))
        early = await reconcile_unknown(Repo(db), client, grace_seconds=60)
        assert early.settled == 0

        async def answered() -> int | None:
            log = await sb.control.request_log()
            return next((e.status for e in log if e.endpoint == "purchase"), None)

        status = await wait_until(answered, timeout=10, what="the upstream to finish the request")
        report = await reconcile_unknown(Repo(db), client, grace_seconds=0)
    assert report.settled == 1
    act = await Repo(db).activations.get_by_key("slow")
    assert act is not None
    kind = await assert_settled_consistently(
        db,
        sb,
        "acct",
        act.id,
        start_balance=100_000,
        wallet_id=w.id,
        upstream_start_units=UPSTREAM_START,
    )
    assert kind == ("holding" if status == 200 else "refunded")


# --- reconciliation of orders that moved on upstream ------------------------------------------


async def _unknown_purchase(
    db: Database, sb: Sandbox, queue: PurchaseQueue, key: str
) -> Activation:
    """A purchase the upstream made but whose answer was lost (drop_after)."""
    await sb.control.add_fault("purchase", "drop_after", key="acct")
    user = await Repo(db).wallets.get_by_owner("user", 1)
    assert user is not None
    with pytest.raises(PurchasePending) as info:
        await buy(queue, buy_request(1, user.id, key))
    return info.value.activation


async def test_reconcile_links_completed_cancelled_and_expired_orders(
    sb: Sandbox, db: Database, client: DaisySimClient, queue: PurchaseQueue
) -> None:
    w = await new_user(db, 1, 100_000)
    completed = await _unknown_purchase(db, sb, queue, "c")
    cancelled = await _unknown_purchase(db, sb, queue, "x")
    expired = await _unknown_purchase(db, sb, queue, "e")
    account = await sb.control.account("acct")
    [c_order] = orders_of(account, completed)
    [x_order] = orders_of(account, cancelled)
    [e_order] = orders_of(account, expired)
    code = await sb.control.deliver_code(c_order.activation_id, "424242")
    await sb.control.advance_clock(200)
    await client.cancel(x_order.activation_id)  # e.g. cancelled in the upstream's dashboard
    await sb.control.advance_clock(1100)  # past the 1200 s lifetime of the last one

    report = await reconcile_unknown(Repo(db), client, grace_seconds=0)
    assert report.completed == [completed.id]
    assert sorted(report.refunded) == sorted([cancelled.id, expired.id])
    repo = Repo(db)
    c_now = await repo.activations.get(completed.id)
    x_now = await repo.activations.get(cancelled.id)
    e_now = await repo.activations.get(expired.id)
    assert c_now is not None
    assert x_now is not None
    assert e_now is not None
    assert (c_now.state, c_now.code, c_now.upstream_id) == (
        "completed",
        code,
        c_order.activation_id,
    )
    assert (x_now.state, x_now.upstream_id) == ("cancelled", x_order.activation_id)
    assert (e_now.state, e_now.upstream_id) == ("expired", e_order.activation_id)
    # Kept: only the completed one; the others were refunded here and upstream alike.
    assert await wallet_balance(db, w.id) == 100_000 - SIGNAL
    account = await sb.control.account("acct")
    assert account.debits_units - account.refunds_units == SIGNAL
    assert await check_ledger(Repo(db)) == []


async def test_concurrent_reconcilers_settle_each_activation_once(
    sb: Sandbox, db: Database, client: DaisySimClient, queue: PurchaseQueue
) -> None:
    w = await new_user(db, 1, 100_000)
    kept = await _unknown_purchase(db, sb, queue, "k")
    await sb.control.add_fault("purchase", "drop_before", key="acct")
    with pytest.raises(PurchasePending) as info:
        await buy(queue, buy_request(1, w.id, "never"))
    never = info.value.activation

    reports = await asyncio.gather(
        *(reconcile_unknown(Repo(db), client, grace_seconds=0) for _ in range(4))
    )
    assert sum(len(r.linked) for r in reports) == 1
    assert sum(len(r.refunded) for r in reports) == 1
    repo = Repo(db)
    assert (await repo.activations.get(kept.id)).state == "waiting"  # type: ignore[union-attr]
    assert (await repo.activations.get(never.id)).state == "failed"  # type: ignore[union-attr]
    assert [e.kind for e in await activation_entries(db, never.id)] == ["purchase", "refund"]
    assert await wallet_balance(db, w.id) == 100_000 - SIGNAL
    assert await check_ledger(Repo(db)) == []


async def test_reconcile_leaves_a_purchase_still_in_flight_alone(
    sb: Sandbox, db: Database, client: DaisySimClient, queue: PurchaseQueue
) -> None:
    w = await new_user(db, 1, 100_000)
    limiter = client.limiter["purchase"]
    # The line is empty, so the purchase holds the money and its call goes at once; the
    # pause, before the call's task first runs, keeps it waiting for a rate-limit slot.
    ticket = await queue.join(buy_request(1, w.id, "queued"))
    limiter.pause(0.3)

    async def queued() -> bool:
        return limiter.queued == 1

    await wait_until(queued, what="the purchase to wait in the limiter")
    held = await Repo(db).activations.get_by_key("queued")
    assert held is not None
    assert held.state == "purchasing"
    report = await reconcile_unknown(Repo(db), client, grace_seconds=0)
    assert report.settled == 0  # no order upstream yet, but the call is still to come
    bought = await queue.outcome(ticket)
    assert not isinstance(bought, Queued)
    assert bought.state == "waiting"
    assert await wallet_balance(db, w.id) == 100_000 - SIGNAL
    assert await check_ledger(Repo(db)) == []


async def test_a_failed_history_walk_settles_nothing(
    sb: Sandbox, db: Database, client: DaisySimClient, queue: PurchaseQueue
) -> None:
    await new_user(db, 1, 100_000)
    act = await _unknown_purchase(db, sb, queue, "h")
    await sb.control.add_fault("history", "error", code="SERVER_ERROR", times=10)
    report = await reconcile_unknown(Repo(db), client, grace_seconds=0)
    assert report.error is not None
    assert report.settled == 0
    assert (await Repo(db).activations.get(act.id)).state == "unknown"  # type: ignore[union-attr]
    await sb.control.clear_faults()
    report = await reconcile_unknown(Repo(db), client, grace_seconds=0)
    assert report.linked == [act.id]


async def test_what_reconciliation_tells_the_user_is_part_of_its_settlement(
    sb: Sandbox, db: Database, client: DaisySimClient, queue: PurchaseQueue
) -> None:
    """`on_settled` runs in the settling transaction: if queuing the message fails, the
    settlement is undone with it (the money stays held), and the next run does both."""
    w = await new_user(db, 1, 100_000)
    act = await _unknown_purchase(db, sb, queue, "told")
    told: list[tuple[int, str]] = []

    async def crash(tx: Transaction, activation: Activation) -> None:
        raise RuntimeError("the process died while queuing the message")

    async def tell(tx: Transaction, activation: Activation) -> None:
        # Inside the transaction: it already reads the settled state.
        row = await tx.fetch_one("SELECT state FROM activations WHERE id = ?", (activation.id,))
        assert row is not None
        told.append((activation.id, str(row[0])))

    with pytest.raises(RuntimeError):
        await reconcile_unknown(Repo(db), client, grace_seconds=0, on_settled=crash)
    assert (await Repo(db).activations.get(act.id)).state == "unknown"  # type: ignore[union-attr]
    assert await wallet_balance(db, w.id) == 100_000 - SIGNAL

    report = await reconcile_unknown(Repo(db), client, grace_seconds=0, on_settled=tell)
    assert report.linked == [act.id]
    assert told == [(act.id, "waiting")]
    assert await check_ledger(Repo(db)) == []


# --- after the purchase: code, cancel, expiry, gone ---------------------------------------


async def _bought(queue: PurchaseQueue, key: str, user_id: int = 1) -> Activation:
    w = await queue.repo.wallets.get_by_owner("user", user_id)
    assert w is not None
    return await buy(queue, buy_request(user_id, w.id, key))


async def test_a_code_keeps_the_charge(
    sb: Sandbox, db: Database, client: DaisySimClient, queue: PurchaseQueue
) -> None:
    w = await new_user(db, 1, 100_000)
    act = await _bought(queue, "code")
    assert act.upstream_id is not None
    code = await sb.control.deliver_code(act.upstream_id)
    [checked] = await client.check_all([act.upstream_id])
    assert checked.code == code
    assert await activations.complete(Repo(db), act.id, code)
    assert not await activations.complete(Repo(db), act.id, code)  # told once
    done = await Repo(db).activations.get(act.id)
    assert done is not None
    assert (done.state, done.code) == ("completed", code)
    assert not await activations.resolve_gone(Repo(db), act.id)  # a code means no refund, ever
    with pytest.raises(ActivationNotActive):
        await activations.cancel(Repo(db), client, act.id, actor_id=1)
    assert await wallet_balance(db, w.id) == 100_000 - SIGNAL
    assert await check_ledger(Repo(db)) == []


async def test_cancel_waits_for_the_lock_then_refunds_once(
    sb: Sandbox, db: Database, client: DaisySimClient, queue: PurchaseQueue
) -> None:
    w = await new_user(db, 1, 100_000)
    await new_user(db, 2, 100_000)
    act = await _bought(queue, "cancel")
    with pytest.raises(NotYourActivation):
        await activations.cancel(Repo(db), client, act.id, actor_id=2)
    with pytest.raises(CancelTooEarly) as info:
        await activations.cancel(Repo(db), client, act.id, actor_id=1)
    assert 1 <= info.value.seconds_left <= LOCK
    assert (await Repo(db).activations.get(act.id)).state == "waiting"  # type: ignore[union-attr]
    await sb.control.advance_clock(181)
    # Two taps (and a group admin's) at once: one refund.
    results = await asyncio.gather(
        activations.cancel(Repo(db), client, act.id, actor_id=1),
        activations.cancel(Repo(db), client, act.id, actor_id=1),
        activations.cancel(Repo(db), client, act.id, actor_id=99, actor_is_admin=True),
        return_exceptions=True,
    )
    assert any(isinstance(r, Activation) and r.state == "cancelled" for r in results)
    assert all(isinstance(r, Activation | ActivationNotActive) for r in results), results
    assert await wallet_balance(db, w.id) == 100_000
    kind = await assert_settled_consistently(
        db,
        sb,
        "acct",
        act.id,
        start_balance=100_000,
        wallet_id=w.id,
        upstream_start_units=UPSTREAM_START,
    )
    assert kind == "refunded"


async def test_cancel_after_the_code_arrived_completes(
    sb: Sandbox, db: Database, client: DaisySimClient, queue: PurchaseQueue
) -> None:
    w = await new_user(db, 1, 100_000)
    act = await _bought(queue, "race")
    assert act.upstream_id is not None
    await sb.control.advance_clock(181)
    code = await sb.control.deliver_code(act.upstream_id)
    after = await activations.cancel(Repo(db), client, act.id, actor_id=1)
    assert (after.state, after.code) == ("completed", code)
    assert await wallet_balance(db, w.id) == 100_000 - SIGNAL
    assert await check_ledger(Repo(db)) == []


async def test_expire_retries_after_the_lock_then_refunds(
    sb: Sandbox, db: Database, client: DaisySimClient, queue: PurchaseQueue
) -> None:
    w = await new_user(db, 1, 100_000)
    act = await _bought(queue, "exp")
    retry = await activations.expire(Repo(db), client, act.id)
    assert retry is not None
    assert 1 <= retry <= LOCK
    await sb.control.advance_clock(181)
    results = await asyncio.gather(
        activations.expire(Repo(db), client, act.id),
        activations.cancel(Repo(db), client, act.id, actor_id=1),
        return_exceptions=True,
    )
    assert results[0] is None
    final = await Repo(db).activations.get(act.id)
    assert final is not None
    assert final.state in ("expired", "cancelled")
    assert await activations.expire(Repo(db), client, act.id) is None  # nothing left to do
    kind = await assert_settled_consistently(
        db,
        sb,
        "acct",
        act.id,
        start_balance=100_000,
        wallet_id=w.id,
        upstream_start_units=UPSTREAM_START,
    )
    assert kind == "refunded"


async def test_gone_upstream_and_busy_upstream(
    sb: Sandbox, db: Database, client: DaisySimClient, queue: PurchaseQueue
) -> None:
    w = await new_user(db, 1, 100_000)
    gone = await _bought(queue, "gone")
    busy = await _bought(queue, "busy")
    await sb.control.advance_clock(181)

    # A 429 pauses the client's cancel budget; fresh clients keep the test from waiting it out.
    await sb.control.add_fault("cancel", "error", code="RATE_LIMITED", seconds=1, times=2)
    async with make_client(sb, "acct") as paused:
        with pytest.raises(UpstreamBusy) as info:
            await activations.cancel(Repo(db), paused, busy.id, actor_id=1)
    assert info.value.retry_after == 1
    async with make_client(sb, "acct") as paused:
        assert await activations.expire(Repo(db), paused, busy.id) == 1
    assert (await Repo(db).activations.get(busy.id)).state == "waiting"  # type: ignore[union-attr]

    await sb.control.add_fault("cancel", "error", code="NOT_FOUND")
    after = await activations.cancel(Repo(db), client, gone.id, actor_id=1)
    assert after.state == "cancelled"
    assert [e.kind for e in await activation_entries(db, gone.id)] == ["purchase", "refund"]
    assert not await activations.resolve_gone(Repo(db), gone.id)  # already refunded: not again
    assert await wallet_balance(db, w.id) == 100_000 - SIGNAL
    assert await check_ledger(Repo(db)) == []
