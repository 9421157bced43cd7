"""Reconciliation as a service (issue 13, points 3, 6 and 7): real SQLite, the sandbox over
loopback HTTP with its faults, the purchase queue in front of it.

- the grace before a "never sold" refund runs from when the purchase call LEFT, not from the
  hold: time spent waiting in line is time the upstream never saw;
- an order whose answer was lost is linked as soon as /history shows it, long before the grace;
- a number refunded to the user while the upstream still counts it sold (found Expired) is
  cancelled upstream too, so the upstream's books (debits − refunds) match the bot's.

Every test ends with the ledger check and the sandbox's account.
"""

from __future__ import annotations

import time
from decimal import Decimal
from pathlib import Path

from bot.ledger_check import check_ledger
from bot.sandbox import Sandbox
from bot.services import referrals
from bot.services.purchase_queue import Queued
from bot.services.reconcile import cancel_owed, reconcile_unknown
from storage.db import Database
from storage.models import Activation
from storage.repo import Repo
from tests.fixtures.money import buy_request, new_user, wallet_balance
from tests.fixtures.waiting import wait_until
from tests.test_queue import KEY, LOCK, SIGNAL, assert_books, fill_the_window, running, world

# Purchases in these tests get no SMS: an order must still be waiting (or expire) upstream.
NO_CODES = {"auto_code_probability": 0.0}


async def _unknown(db: Database, activation_id: int) -> Activation:
    async def probe() -> Activation | bool:
        current = await Repo(db).activations.get(activation_id)
        return current if current is not None and current.state == "unknown" else False

    found = await wait_until(probe, what=f"activation {activation_id} marked unknown")
    assert isinstance(found, Activation)
    return found


async def _upstream_net(sb: Sandbox) -> int:
    account = await sb.control.account(KEY)
    return account.debits_units - account.refunds_units


async def test_a_purchase_that_waited_in_line_is_judged_from_when_its_call_left(
    tmp_path: Path,
) -> None:
    """The chaos soak's case: 83 s in line, sent, no answer. Its grace must not have run out
    while it waited, or the history walk refunds it before the upstream could apply it."""
    async with world(tmp_path, **NO_CODES) as (sb, db, client), running(db, client) as queue:
        repo = Repo(db)
        await fill_the_window(db, queue)
        w = await new_user(db, 1, 100_000)
        held = time.time()
        queued = await queue.buy(buy_request(1, w.id, "waited"))
        assert isinstance(queued, Queued)
        in_line = await repo.activations.get(queued.activation.id)
        assert in_line is not None
        assert in_line.sent_at is None
        # The call leaves when the window frees up, and its answer is lost on the way.
        await sb.control.add_fault("purchase", "drop_before", key=KEY)
        sent = await _unknown(db, queued.activation.id)
        assert sent.sent_at is not None
        assert sent.sent_at >= held
        # As if it had waited 83 s in line: the hold is long past a 60 s grace, the call not.
        await db.execute(
            "UPDATE activations SET created_at = created_at - 83 WHERE id = ?", (sent.id,)
        )

        report = await reconcile_unknown(
            repo, client, grace_seconds=60, link_after_seconds=0, cancel_lock_seconds=LOCK
        )
        assert report.error is None
        assert report.refunded == []
        assert report.pending == [sent.id]
        assert await wallet_balance(db, w.id) == 100_000 - SIGNAL

        # Once the grace has passed since the call left, a purchase never sold is refunded.
        later = await reconcile_unknown(
            repo, client, grace_seconds=60, cancel_lock_seconds=LOCK, now=time.time() + 61
        )
        assert later.refunded == [sent.id]
        assert await wallet_balance(db, w.id) == 100_000
        await assert_books(db, sb)


async def test_a_purchase_straight_through_is_stamped_sent_with_its_hold(tmp_path: Path) -> None:
    async with world(tmp_path, **NO_CODES) as (sb, db, client), running(db, client) as queue:
        w = await new_user(db, 1, 100_000)
        bought = await queue.buy(buy_request(1, w.id, "direct"))
        assert isinstance(bought, Activation)
        assert bought.state == "waiting"
        assert bought.sent_at is not None
        assert bought.created_at <= bought.sent_at <= time.time()
        await assert_books(db, sb)


async def test_an_order_whose_answer_was_lost_is_linked_long_before_the_grace(
    tmp_path: Path,
) -> None:
    async with world(tmp_path, **NO_CODES) as (sb, db, client), running(db, client) as queue:
        repo = Repo(db)
        w = await new_user(db, 1, 100_000)
        await sb.control.add_fault("purchase", "drop_after", key=KEY)
        ticket = await queue.join(buy_request(1, w.id, "dropped"))
        lost = await _unknown(db, ticket.activation.id)

        # Two minutes of grace left, but the order is in /history: linking is always safe.
        report = await reconcile_unknown(
            repo, client, grace_seconds=120, link_after_seconds=0, cancel_lock_seconds=LOCK
        )
        assert report.linked == [lost.id]
        linked = await repo.activations.get(lost.id)
        assert linked is not None
        assert linked.state == "waiting"
        account = await sb.control.account(KEY)
        assert [o.activation_id for o in account.orders] == [linked.upstream_id]
        assert await _upstream_net(sb) == linked.upstream_amount
        assert await wallet_balance(db, w.id) == 100_000 - SIGNAL
        await assert_books(db, sb)


async def test_an_order_found_expired_is_refunded_and_cancelled_upstream(tmp_path: Path) -> None:
    async with world(tmp_path, **NO_CODES) as (sb, db, client), running(db, client) as queue:
        repo = Repo(db)
        w = await new_user(db, 1, 100_000)
        await sb.control.add_fault("purchase", "drop_after", key=KEY)
        ticket = await queue.join(buy_request(1, w.id, "expired"))
        lost = await _unknown(db, ticket.activation.id)
        # The bot was down past the number's whole window.
        await sb.control.advance_clock(1300)

        report = await reconcile_unknown(repo, client, grace_seconds=0, cancel_lock_seconds=LOCK)
        assert report.refunded == [lost.id]
        expired = await repo.activations.get(lost.id)
        assert expired is not None
        assert expired.state == "expired"
        assert expired.upstream_id is not None
        assert expired.cancel_owed_at is not None
        assert await wallet_balance(db, w.id) == 100_000

        mark = (await sb.control.request_log())[-1].seq
        done = await cancel_owed(repo, client)
        assert done.refunded == [lost.id]
        cancels = [e for e in await sb.control.request_log(mark) if e.endpoint == "cancel"]
        assert [(e.path.rsplit("/", 1)[-1], e.status) for e in cancels] == [
            (expired.upstream_id, 200)
        ]
        assert await repo.activations.list_owed_cancels() == []
        # Owed once, cancelled once: a second run sends nothing.
        again = await cancel_owed(repo, client)
        assert again.refunded == again.nothing == again.postponed == []

        # The user paid nothing in the end, and neither did the operator upstream.
        assert await _upstream_net(sb) == 0
        assert await check_ledger(repo) == []


async def test_a_lost_order_found_completed_earns_the_referrer_once(tmp_path: Path) -> None:
    """The referral share is credited by whichever path stores the code: here reconciliation
    finding a lost purchase completed upstream, twice over, credits it once."""
    async with world(tmp_path, **NO_CODES) as (sb, db, client), running(db, client) as queue:
        repo = Repo(db)
        referrer = await new_user(db, 1)
        w = await new_user(db, 2, 100_000)
        await referrals.store_terms(repo, referrals.ReferralTerms(Decimal(10), 100_000))
        assert await referrals.tie(repo, referee_id=2, payload="ref_1", new_user=True) == "tied"
        await sb.control.add_fault("purchase", "drop_after", key=KEY)
        ticket = await queue.join(buy_request(2, w.id, "dropped"))
        lost = await _unknown(db, ticket.activation.id)
        order = (await sb.control.account(KEY)).orders[0]
        await sb.control.deliver_code(order.activation_id, "135790")

        for _ in range(2):
            await reconcile_unknown(
                repo, client, grace_seconds=0, link_after_seconds=0, cancel_lock_seconds=LOCK
            )
        done = await repo.activations.get(lost.id)
        assert done is not None
        assert done.state == "completed"
        entries = await repo.ledger.entries_page(limit=100)
        assert [(e.wallet_id, e.kind, e.amount, e.activation_id) for e in entries][-1] == (
            referrer.id,
            "referral",
            SIGNAL // 10,
            lost.id,
        )
        assert [e.kind for e in entries].count("referral") == 1
        assert await wallet_balance(db, referrer.id) == SIGNAL // 10
        assert await check_ledger(repo) == []
