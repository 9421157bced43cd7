"""The purchase queue as a service: real SQLite files, the sandbox over loopback HTTP, nothing
of ours replaced. Time is scaled: at 40 upstream seconds per real second the upstream's
"10 purchases a minute" is 10 per 1.5 s, so a line of 15 clears in about three seconds. (At
120 the half-second window sometimes slid by before ten purchases were through on a loaded
two-core CI machine, and a test's buyers went straight through instead of taking a place.)

Every test ends with the books: the ledger balances, everyone was charged once and only the
ones who left (or were rejected) got their money back.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from bot.daisysim import DaisySimClient
from bot.ledger_check import check_ledger
from bot.sandbox import Sandbox
from bot.services import money, wallet
from bot.services.errors import InsufficientFunds, NotYourActivation, PurchaseRejected
from bot.services.money import PurchaseRequest
from bot.services.purchase_queue import (
    LEFT_QUEUE,
    NotQueued,
    PurchaseQueue,
    Queued,
    QueueFull,
)
from bot.services.reconcile import reconcile_unknown
from storage.db import Database, Transaction
from storage.models import Activation
from storage.repo import Repo
from tests.fixtures.money import (
    PRICE,
    activation_entries,
    buy_request,
    make_client,
    new_user,
    orders_of,
    wallet_balance,
)
from tests.fixtures.waiting import wait_until

SCALE = 40.0
WINDOW = 60.0 / SCALE  # the purchase window in real seconds
LOCK = 180.0 / SCALE
KEY = "acct"
SIGNAL = PRICE["Signal"]
FILLER = 999  # a user whose ten purchases use up the window before a test's own buyers


@dataclass
class Listener:
    """A QueueListener that remembers what it was told."""

    settled: list[tuple[int, str]] = field(default_factory=list)
    moves: int = 0
    rejections: list[str] = field(default_factory=list)

    async def served(self, tx: Transaction, activation: Activation) -> None:
        # Told inside the settling transaction: the new state is what the transaction reads.
        row = await tx.fetch_one("SELECT state FROM activations WHERE id = ?", (activation.id,))
        assert row is not None
        assert row[0] == activation.state
        self.settled.append((activation.id, activation.state))

    def line_moved(self) -> None:
        self.moves += 1

    async def rejected(self, exc: PurchaseRejected) -> None:
        self.rejections.append(exc.upstream_code)


@contextlib.asynccontextmanager
async def world(
    tmp_path: Path, *, scale: float = SCALE, **sandbox_kwargs: object
) -> AsyncIterator[tuple[Sandbox, Database, DaisySimClient]]:
    async with Sandbox(time_scale=scale, start_balance_units=10**9, seed=3, **sandbox_kwargs) as sb:  # type: ignore[arg-type]
        db = await Database.open(tmp_path / "bot.sqlite3")
        try:
            async with make_client(sb, KEY) as client:
                yield sb, db, client
        finally:
            await db.close()


@contextlib.asynccontextmanager
async def running(
    db: Database, client: DaisySimClient, *, scale: float = SCALE, **kwargs: object
) -> AsyncIterator[PurchaseQueue]:
    queue = PurchaseQueue(
        Repo(db),
        client,
        cancel_lock_seconds=LOCK,
        time_scale=scale,
        **kwargs,  # type: ignore[arg-type]
    )
    await queue.start()
    try:
        yield queue
    finally:
        await queue.stop()


async def fill_the_window(db: Database, queue: PurchaseQueue) -> list[Activation]:
    """Ten purchases at once: they go straight through and use the whole window."""
    w = await new_user(db, FILLER, 100 * SIGNAL)
    results = await asyncio.gather(
        *(queue.buy(buy_request(FILLER, w.id, f"fill-{i}")) for i in range(10))
    )
    assert all(isinstance(r, Activation) and r.state == "waiting" for r in results), results
    assert queue.free_slots() <= 0
    return [r for r in results if isinstance(r, Activation)]


async def all_bought(db: Database, ids: list[int], *, timeout: float = 10.0) -> list[Activation]:
    repo = Repo(db)

    async def probe() -> list[Activation]:
        current = [await repo.activations.get(i) for i in ids]
        if all(a is not None and a.state == "waiting" for a in current):
            return [a for a in current if a is not None]
        return []

    return await wait_until(probe, timeout=timeout, what=f"{len(ids)} purchases bought")


async def assert_books(db: Database, sb: Sandbox) -> None:
    assert await check_ledger(Repo(db)) == []
    # Exactly one upstream order per activation that holds a number, none for the rest.
    account = await sb.control.account(KEY)
    repo = Repo(db)
    for state, count in (await repo.activations.count_by_state()).items():
        assert state in ("waiting", "cancelled", "failed"), (state, count)
    for order in account.orders:
        assert account.orders.count(order) == 1
    waiting = [a for a in await repo.activations.list_waiting()]
    assert len(account.orders) == len(waiting)
    for activation in waiting:
        assert len(orders_of(account, activation)) == 1


async def upstream_order(sb: Sandbox, activations: list[Activation]) -> list[int]:
    """Our activation ids in the order the upstream sold them."""
    account = await sb.control.account(KEY)
    by_upstream = {a.upstream_id: a.id for a in activations}
    return [by_upstream[o.activation_id] for o in account.orders if o.activation_id in by_upstream]


# --- the common case ----------------------------------------------------------------------


async def test_with_nobody_waiting_a_purchase_goes_straight_through(tmp_path: Path) -> None:
    async with world(tmp_path) as (sb, db, client), running(db, client) as queue:
        w = await new_user(db, 1, 100_000)
        bought = await queue.buy(buy_request(1, w.id, "tap-1"))

        assert isinstance(bought, Activation)
        assert bought.state == "waiting"
        assert bought.upstream_id is not None
        assert queue.stats.direct == 1
        assert queue.stats.joined == 0
        assert await Repo(db).queue.count() == 0
        assert await wallet_balance(db, w.id) == 100_000 - SIGNAL
        await assert_books(db, sb)


# --- the line -----------------------------------------------------------------------------


async def test_a_burst_is_served_first_come_first_served_with_no_429(tmp_path: Path) -> None:
    listener = Listener()
    async with world(tmp_path) as (sb, db, client), running(db, client, listener=listener) as q:
        wallets = [await new_user(db, uid, 100_000) for uid in range(1, 26)]
        started = time.monotonic()
        results = await asyncio.gather(
            *(q.buy(buy_request(w.owner_id, w.id, f"tap-{w.owner_id}")) for w in wallets)
        )

        direct = [r for r in results if isinstance(r, Activation)]
        queued = [r for r in results if isinstance(r, Queued)]
        assert len(direct) == 10
        assert len(queued) == 15
        # Places are handed out in the order the holds committed: 1, 2, 3, ...
        assert sorted(r.place for r in queued) == list(range(1, 16))
        assert [r.place for r in sorted(queued, key=lambda r: r.activation.id)] == list(
            range(1, 16)
        )
        # The estimate grows with the place: the 11th in line waits a window longer.
        by_place = {r.place: r.wait for r in queued}
        assert by_place[1] <= by_place[10] < by_place[11]
        # Each estimate was taken when its hold committed, so under load they drift apart by
        # the time between commits; taken at one moment, the 11th is one window later.
        assert q.estimate(11) == pytest.approx(q.estimate(1) + WINDOW, abs=0.1)
        # Everyone's money is held from the tap on.
        for w in wallets:
            assert await wallet_balance(db, w.id) == 100_000 - SIGNAL

        ids = [r.activation.id for r in queued]
        bought = await all_bought(db, ids)
        elapsed = time.monotonic() - started

        stats = await sb.control.stats()
        assert stats.rate_limited_total == 0
        assert stats.requests.get("purchase", 0) == 25
        # The line went to the upstream in its own order...
        assert await upstream_order(sb, bought) == ids
        # ...at the pace of the upstream's window: the 15th of the line is in the second
        # window after the first ten, and nobody waits much longer than that.
        assert 2 * WINDOW * 0.95 <= elapsed < 2 * WINDOW + 1.5
        purchased = {a.id: a.purchased_at or 0.0 for a in bought}
        first_direct = min(a.purchased_at or 0.0 for a in direct)
        for r in queued:
            windows = (r.place - 1) // 10 + 1
            assert purchased[r.activation.id] - first_direct >= windows * WINDOW * 0.95
        assert sorted(listener.settled) == sorted((i, "waiting") for i in ids)
        assert listener.moves >= 15
        assert q.stats.bought == 15
        assert q.stats.deferred == 0
        await assert_books(db, sb)


async def test_a_double_tap_joins_the_line_once(tmp_path: Path) -> None:
    async with world(tmp_path) as (sb, db, client), running(db, client) as queue:
        await fill_the_window(db, queue)
        w = await new_user(db, 1, 100_000)
        first, second = await asyncio.gather(
            queue.buy(buy_request(1, w.id, "tap-x")), queue.buy(buy_request(1, w.id, "tap-x"))
        )
        assert isinstance(first, Queued)
        assert isinstance(second, Queued)
        assert first.activation.id == second.activation.id
        assert first.place == second.place == 1
        assert await wallet_balance(db, w.id) == 100_000 - SIGNAL
        [bought] = await all_bought(db, [first.activation.id])
        # A tap after it was served returns the number it bought, and buys nothing more.
        again = await queue.buy(buy_request(1, w.id, "tap-x"))
        assert isinstance(again, Activation)
        assert again.upstream_id == bought.upstream_id
        assert await wallet_balance(db, w.id) == 100_000 - SIGNAL
        await assert_books(db, sb)


async def test_nobody_can_use_another_users_key(tmp_path: Path) -> None:
    async with world(tmp_path) as (_sb, db, client), running(db, client) as queue:
        await fill_the_window(db, queue)
        a = await new_user(db, 1, 100_000)
        b = await new_user(db, 2, 100_000)
        await queue.buy(buy_request(1, a.id, "k"))
        with pytest.raises(NotYourActivation):
            await queue.buy(buy_request(2, b.id, "k"))
        assert await wallet_balance(db, b.id) == 100_000


async def test_money_is_checked_before_a_place_is_taken(tmp_path: Path) -> None:
    async with world(tmp_path) as (_sb, db, client), running(db, client) as queue:
        await fill_the_window(db, queue)
        w = await new_user(db, 1, SIGNAL - 1)
        with pytest.raises(InsufficientFunds):
            await queue.buy(buy_request(1, w.id, "poor"))
        assert await Repo(db).queue.count() == 0
        assert await wallet_balance(db, w.id) == SIGNAL - 1


async def test_a_wallet_holds_at_most_its_cap_of_places(tmp_path: Path) -> None:
    async with world(tmp_path) as (sb, db, client), running(db, client) as queue:
        await fill_the_window(db, queue)
        w = await new_user(db, 1, 100_000)
        places = [await queue.buy(buy_request(1, w.id, f"tap-{i}")) for i in range(3)]
        assert [p.place for p in places if isinstance(p, Queued)] == [1, 2, 3]
        with pytest.raises(QueueFull) as refused:
            await queue.buy(buy_request(1, w.id, "tap-4"))
        assert refused.value.limit == 3
        # Refused means untouched: no fourth hold, no activation.
        assert await wallet_balance(db, w.id) == 100_000 - 3 * SIGNAL
        assert await Repo(db).activations.get_by_key("tap-4") is None
        # Another wallet is not affected by this one's cap.
        other = await new_user(db, 2, 100_000)
        theirs = await queue.buy(buy_request(2, other.id, "o-1"))
        assert isinstance(theirs, Queued)
        # The books are read once every held purchase, the other wallet's too, was bought.
        held = [p.activation.id for p in places if isinstance(p, Queued)]
        await all_bought(db, [*held, theirs.activation.id])
        await assert_books(db, sb)


async def test_a_groups_members_share_the_groups_places(tmp_path: Path) -> None:
    async with (
        world(tmp_path) as (_sb, db, client),
        running(db, client, max_places_per_wallet=2) as queue,
    ):
        await fill_the_window(db, queue)
        await new_user(db, 1)
        await new_user(db, 2)
        group = await wallet.get_or_create_group_wallet(Repo(db), -100500)
        await money.credit(Repo(db), group.id, 100_000, actor_id=0)

        def member(user_id: int, key: str) -> PurchaseRequest:
            return buy_request(user_id, group.id, key, chat_id=-100500)

        assert isinstance(await queue.buy(member(1, "a-1")), Queued)
        assert isinstance(await queue.buy(member(2, "b-1")), Queued)
        with pytest.raises(QueueFull):
            await queue.buy(member(2, "b-2"))
        assert await wallet_balance(db, group.id) == 100_000 - 2 * SIGNAL


# --- leaving ------------------------------------------------------------------------------


async def test_leaving_the_line_gives_the_whole_hold_back_once(tmp_path: Path) -> None:
    listener = Listener()
    async with world(tmp_path) as (sb, db, client), running(db, client, listener=listener) as q:
        await fill_the_window(db, q)
        stayer = await new_user(db, 1, 100_000)
        leaver = await new_user(db, 2, 100_000)
        first = await q.buy(buy_request(1, stayer.id, "s"))
        second = await q.buy(buy_request(2, leaver.id, "l"))
        assert isinstance(first, Queued)
        assert isinstance(second, Queued)

        with pytest.raises(NotYourActivation):
            await q.leave(second.activation.id, user_id=1)
        moves = listener.moves
        left = await q.leave(second.activation.id, user_id=2)

        assert left.state == "cancelled"
        assert left.error_code == LEFT_QUEUE
        assert await wallet_balance(db, leaver.id) == 100_000
        entries = await activation_entries(db, left.id)
        assert [(e.kind, e.amount) for e in entries] == [("purchase", -SIGNAL), ("refund", SIGNAL)]
        assert listener.moves > moves
        # Twice, or after the purchase went out: nothing changes.
        with pytest.raises(NotQueued):
            await q.leave(second.activation.id, user_id=2)
        [bought] = await all_bought(db, [first.activation.id])
        with pytest.raises(NotQueued) as late:
            await q.leave(bought.id, user_id=1)
        assert late.value.activation.state == "waiting"
        assert await wallet_balance(db, stayer.id) == 100_000 - SIGNAL
        # The one who left never reached the upstream.
        account = await sb.control.account(KEY)
        assert orders_of(account, left) == []
        await assert_books(db, sb)


# --- failures -----------------------------------------------------------------------------


async def test_a_429_pauses_the_line_and_the_head_stays_the_head(tmp_path: Path) -> None:
    async with world(tmp_path) as (sb, db, client), running(db, client) as queue:
        await fill_the_window(db, queue)
        wallets = [await new_user(db, uid, 100_000) for uid in (1, 2, 3)]
        queued = [await queue.buy(buy_request(w.owner_id, w.id, f"t{w.owner_id}")) for w in wallets]
        ids = [q.activation.id for q in queued if isinstance(q, Queued)]
        await sb.control.add_fault("purchase", "error", code="RATE_LIMITED", seconds=1)

        async def deferred() -> bool:
            return queue.stats.deferred == 1

        await wait_until(deferred, what="the head put back after a 429")
        # Nobody was dropped or refunded; the head is still the head, the line is paused.
        assert queue.limiter.paused_for() > 0.5
        places = [await queue.place_of(i) for i in ids]
        assert [p.place if p is not None else None for p in places] == [1, 2, 3]
        assert places[0] is not None
        assert places[0].wait > 0.5
        for w in wallets:
            assert await wallet_balance(db, w.id) == 100_000 - SIGNAL

        bought = await all_bought(db, ids)
        # The pause was honoured (the upstream said 1 s) and the order kept.
        log = await sb.control.request_log()
        limited = [e for e in log if e.endpoint == "purchase" and e.code == "RATE_LIMITED"]
        after = [e for e in log if e.endpoint == "purchase" and e.seq > limited[0].seq]
        assert after
        assert after[0].time - limited[0].time >= 0.95
        assert await upstream_order(sb, bought) == ids
        assert queue.stats.deferred == 1
        assert queue.stats.rejected == 0
        assert await Repo(db).queue.count() == 0
        await assert_books(db, sb)


async def test_a_rejection_refunds_that_buyer_and_the_line_moves_on(tmp_path: Path) -> None:
    listener = Listener()
    async with world(tmp_path) as (sb, db, client), running(db, client, listener=listener) as q:
        await fill_the_window(db, q)
        unlucky = await new_user(db, 1, 100_000)
        next_one = await new_user(db, 2, 100_000)
        pinned = buy_request(1, unlucky.id, "pinned", service="sb_wa", provider_id="3109")
        first = await q.buy(pinned)
        second = await q.buy(buy_request(2, next_one.id, "next"))
        assert isinstance(first, Queued)
        assert isinstance(second, Queued)
        await sb.control.set_stock("sb_wa", "3109", 0)

        [bought] = await all_bought(db, [second.activation.id])
        failed = await Repo(db).activations.get(first.activation.id)
        assert failed is not None
        assert failed.state == "failed"
        assert failed.error_code == "OUT_OF_STOCK"
        assert await wallet_balance(db, unlucky.id) == 100_000
        assert (first.activation.id, "failed") in listener.settled
        assert (bought.id, "waiting") in listener.settled
        assert q.stats.rejected == 1
        await assert_books(db, sb)


async def test_an_unknown_outcome_is_left_to_reconciliation(tmp_path: Path) -> None:
    listener = Listener()
    async with world(tmp_path) as (sb, db, client), running(db, client, listener=listener) as q:
        await fill_the_window(db, q)
        w = await new_user(db, 1, 100_000)
        queued = await q.buy(buy_request(1, w.id, "lost"))
        assert isinstance(queued, Queued)
        # The upstream sells the number but the answer never arrives.
        await sb.control.add_fault("purchase", "drop_after")

        async def unknown() -> Activation | None:
            a = await Repo(db).activations.get(queued.activation.id)
            return a if a is not None and a.state == "unknown" else None

        await wait_until(unknown, what="the purchase marked unknown")
        assert (queued.activation.id, "unknown") in listener.settled
        report = await reconcile_unknown(
            Repo(db), client, grace_seconds=0, cancel_lock_seconds=LOCK
        )
        assert report.linked == [queued.activation.id]
        await assert_books(db, sb)


# --- reconciliation and restarts ----------------------------------------------------------


async def test_reconciliation_never_touches_a_queued_purchase(tmp_path: Path) -> None:
    async with world(tmp_path) as (_sb, db, client):
        queue = PurchaseQueue(Repo(db), client, cancel_lock_seconds=LOCK, time_scale=SCALE)
        await queue.start()
        await fill_the_window(db, queue)
        w = await new_user(db, 1, 100_000)
        queued = await queue.buy(buy_request(1, w.id, "q"))
        await queue.stop()  # nobody serves the line now
        assert isinstance(queued, Queued)

        report = await reconcile_unknown(
            Repo(db), client, grace_seconds=0, now=time.time() + 3600, cancel_lock_seconds=LOCK
        )
        assert queued.activation.id not in report.refunded + report.linked + report.skipped
        current = await Repo(db).activations.get(queued.activation.id)
        assert current is not None
        assert current.state == "purchasing"
        assert await Repo(db).queue.place_of(queued.activation.id) == 1
        # Even code that forgot to look cannot settle it while it has its place.
        repo = Repo(db)
        with pytest.raises(sqlite3.IntegrityError, match="leave the purchase queue"):
            async with db.transaction() as tx:
                await money.refund_activation(
                    repo, tx, current, state="failed", from_states=("purchasing",), now=0.0
                )
        assert await wallet_balance(db, w.id) == 100_000 - SIGNAL


async def test_a_restart_counts_a_call_by_when_it_left_not_when_the_money_was_held(
    tmp_path: Path,
) -> None:
    """Purchases that waited long in line and were sent just before a crash, their answers
    lost: the upstream's window still counts their calls, so the fresh limiter must too, or
    the next purchase draws a real 429 (the chaos soak found one). A slow clock: the window
    must not slide by while the test looks."""
    async with world(tmp_path, scale=4.0) as (_sb, db, client):
        repo = Repo(db)
        w = await new_user(db, 1, 100 * SIGNAL)
        held_long_ago = time.time() - 3600
        for i in range(3):
            async with db.transaction() as tx:
                request = buy_request(1, w.id, f"waited-{i}")
                held = await money.hold_purchase(repo, tx, request, now=held_long_ago)
                await repo.activations.mark_sent(tx, held.id, now=time.time())
                await repo.activations.mark_unknown(tx, held.id, error_code=None)
        async with running(db, client, scale=4.0) as queue:
            assert queue.free_slots() == queue.limiter.limit - 3
            # What is left of the window goes straight through, and no more: never a 429.
            results = await asyncio.gather(
                *(queue.buy(buy_request(1, w.id, f"now-{i}")) for i in range(8))
            )
            assert sum(isinstance(r, Activation) for r in results) == queue.limiter.limit - 3
            assert sum(isinstance(r, Queued) for r in results) == 1


async def test_a_restart_keeps_every_place_and_serves_each_once(tmp_path: Path) -> None:
    # 60 upstream seconds a second: the window is long enough to stop with the line intact.
    scale = 60.0
    async with Sandbox(time_scale=scale, start_balance_units=10**9, seed=5) as sb:
        path = tmp_path / "bot.sqlite3"
        db = await Database.open(path)
        client = make_client(sb, KEY)
        queue = PurchaseQueue(Repo(db), client, cancel_lock_seconds=LOCK, time_scale=scale)
        await queue.start()
        wallets = [await new_user(db, uid, 100_000) for uid in range(1, 26)]
        results = await asyncio.gather(
            *(queue.buy(buy_request(w.owner_id, w.id, f"tap-{w.owner_id}")) for w in wallets)
        )
        await queue.stop()
        await client.aclose()
        await db.close()
        queued = [r.activation.id for r in results if isinstance(r, Queued)]
        assert len(queued) == 15

        # A new process: a new connection, a new client with a fresh limiter, a new queue.
        db = await Database.open(path)
        client = make_client(sb, KEY)
        try:
            assert await Repo(db).queue.count() == 15
            queue = PurchaseQueue(Repo(db), client, cancel_lock_seconds=LOCK, time_scale=scale)
            await queue.start()
            try:
                # The upstream still counts the ten from before the restart in its window.
                assert queue.free_slots() <= 0
                bought = await all_bought(db, queued, timeout=15)
            finally:
                await queue.stop()
            assert await upstream_order(sb, bought) == queued
            stats = await sb.control.stats()
            assert stats.rate_limited_total == 0
            assert stats.requests.get("purchase", 0) == 25
            for w in wallets:
                assert await wallet_balance(db, w.id) == 100_000 - SIGNAL
            await assert_books(db, sb)
        finally:
            await client.aclose()
            await db.close()
