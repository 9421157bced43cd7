"""The database layer and the repositories on a real temporary SQLite file."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from storage.db import Database
from storage.repo import Repo
from storage.repos.outbox import OutboxItem, SentMark
from tests.fixtures.money import new_user


@pytest.fixture
def repo(db: Database) -> Repo:
    return Repo(db)


async def _activation(
    repo: Repo, user_id: int, wallet_id: int, key: str, *, price: int = 6000, now: float = 1000.0
) -> int:
    async with repo.db.transaction() as tx:
        activation = await repo.activations.create(
            tx,
            user_id=user_id,
            wallet_id=wallet_id,
            chat_id=user_id,
            service_code="Signal",
            service_name="Signal",
            provider_id=None,
            country="USA",
            user_price=price,
            upstream_price=price,
            idempotency_key=key,
            recon_token=key.rjust(10, "0")[-10:],
            now=now,
        )
        await repo.ledger.append(
            tx, wallet_id, -price, "purchase", activation_id=activation.id, now=now
        )
    return activation.id


# --- the connection and its transactions -----------------------------------------------------


async def test_a_failed_transaction_leaves_nothing(db: Database, repo: Repo) -> None:
    w = await new_user(db, 1, 10_000)

    class Boom(Exception):
        pass

    async def half_done() -> None:
        async with db.transaction() as tx:
            await repo.ledger.append(tx, w.id, 5_000, "topup")
            await repo.settings.set("k", "v", tx=tx)
            raise Boom

    with pytest.raises(Boom):
        await half_done()
    assert (await repo.wallets.get(w.id)).balance == 10_000  # type: ignore[union-attr]
    assert await repo.settings.get("k") is None
    assert await repo.ledger.count() == 1


async def test_transactions_never_interleave(db: Database, repo: Repo) -> None:
    """Read-modify-write with awaits inside: a shared connection without the lock would lose
    updates (or share one SQLite transaction between coroutines)."""
    await repo.settings.set("counter", "0")

    async def bump() -> None:
        async with db.transaction() as tx:
            value = int(await repo.settings.get("counter", tx=tx) or "0")
            await tx.fetch_value("SELECT COUNT(*) FROM ledger")  # another await in between
            await repo.settings.set("counter", str(value + 1), tx=tx)

    await asyncio.gather(*(bump() for _ in range(40)))
    assert await repo.settings.get("counter") == "40"


async def test_nested_use_fails_loudly_instead_of_hanging(db: Database, repo: Repo) -> None:
    async with db.transaction() as tx:
        with pytest.raises(RuntimeError, match="nested"):
            await repo.settings.get("x")  # without tx= it would wait for our own lock
        await repo.settings.get("x", tx=tx)
    with pytest.raises(RuntimeError, match="after its block"):
        await tx.execute("SELECT 1")


async def test_a_cancelled_transaction_rolls_back_and_releases(db: Database, repo: Repo) -> None:
    entered = asyncio.Event()
    never = asyncio.Event()

    async def stuck() -> None:
        async with db.transaction() as tx:
            await repo.settings.set("half", "written", tx=tx)
            entered.set()
            await never.wait()

    task = asyncio.create_task(stuck())
    await entered.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await repo.settings.get("half") is None
    async with db.transaction() as tx:  # the lock was released and no transaction is open
        await repo.settings.set("after", "ok", tx=tx)
    assert await repo.settings.get("after") == "ok"


async def test_a_second_connection_waits_for_the_writer(tmp_path: Path) -> None:
    """Two processes on one file: BEGIN IMMEDIATE plus busy_timeout make the second writer
    wait for the first instead of failing with 'database is locked'."""
    path = tmp_path / "shared.sqlite3"
    first = await Database.open(path)
    second = await Database.open(path)
    try:
        holding = asyncio.Event()
        release = asyncio.Event()

        async def writer_one() -> None:
            async with first.transaction() as tx:
                await tx.execute(
                    "INSERT INTO settings (key, value, updated_at) VALUES ('a', '1', 0)"
                )
                holding.set()
                await release.wait()

        task = asyncio.create_task(writer_one())
        await holding.wait()
        second_write = asyncio.create_task(
            second.execute("INSERT INTO settings (key, value, updated_at) VALUES ('b', '2', 0)")
        )
        # While the first transaction is open the second writer is held back, not failed.
        done, _ = await asyncio.wait({second_write}, timeout=0.3)
        assert not done
        release.set()
        await task
        await second_write
        assert await second.fetch_value("SELECT COUNT(*) FROM settings") == 2
    finally:
        await first.close()
        await second.close()


# --- what the schema itself refuses ------------------------------------------------------


async def test_the_ledger_is_append_only(db: Database, repo: Repo) -> None:
    w = await new_user(db, 1, 10_000)
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        await db.execute("UPDATE ledger SET amount = 1 WHERE wallet_id = ?", (w.id,))
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        await db.execute("DELETE FROM ledger WHERE wallet_id = ?", (w.id,))
    assert [e.amount for e in await repo.ledger.last_entries(w.id)] == [10_000]


async def test_one_purchase_and_one_refund_per_activation(db: Database, repo: Repo) -> None:
    w = await new_user(db, 1, 50_000)
    activation_id = await _activation(repo, 1, w.id, "k1")
    with pytest.raises(sqlite3.IntegrityError, match="UNIQUE"):
        async with db.transaction() as tx:
            await repo.ledger.append(tx, w.id, -6000, "purchase", activation_id=activation_id)
    async with db.transaction() as tx:
        await repo.ledger.append(tx, w.id, 6000, "refund", activation_id=activation_id)
    with pytest.raises(sqlite3.IntegrityError, match="UNIQUE"):
        async with db.transaction() as tx:
            await repo.ledger.append(tx, w.id, 6000, "refund", activation_id=activation_id)
    assert (await repo.wallets.get(w.id)).balance == 50_000  # type: ignore[union-attr]


async def test_balances_never_go_below_zero(db: Database, repo: Repo) -> None:
    w = await new_user(db, 1, 1_000)
    with pytest.raises(sqlite3.IntegrityError, match="balance >= 0"):
        async with db.transaction() as tx:
            await repo.ledger.append(tx, w.id, -1_001, "adjustment")
    assert (await repo.wallets.get(w.id)).balance == 1_000  # type: ignore[union-attr]
    assert await repo.ledger.count() == 1


async def test_money_is_never_a_float(db: Database, repo: Repo) -> None:
    w = await new_user(db, 1, 1_000)
    with pytest.raises(sqlite3.IntegrityError, match="typeof"):
        await db.execute(
            "INSERT INTO ledger (wallet_id, amount, kind, created_at) VALUES (?, ?, 'topup', 0)",
            (w.id, 1.5),
        )
    with pytest.raises(TypeError):
        async with db.transaction() as tx:
            await repo.ledger.append(tx, w.id, 1.0, "topup")  # type: ignore[arg-type]
    with pytest.raises(sqlite3.IntegrityError, match="typeof"):
        await db.execute("UPDATE wallets SET balance = 10.25 WHERE id = ?", (w.id,))
    with pytest.raises(sqlite3.IntegrityError, match="typeof"):
        await _activation(repo, 1, w.id, "kf", price=600.5)  # type: ignore[arg-type]


async def test_entries_must_have_the_sign_and_links_of_their_kind(db: Database, repo: Repo) -> None:
    w = await new_user(db, 1, 1_000)
    cases: list[tuple[str, int]] = [
        ("topup", -5),
        ("purchase", 5),
        ("refund", -5),
        ("purchase", -5),  # no activation
        ("stars", 5),  # no payment
        ("transfer_in", 5),  # no counterparty
        ("no_such_kind", 5),
        ("topup", 0),
    ]
    for kind, amount in cases:
        with pytest.raises(sqlite3.IntegrityError):
            async with db.transaction() as tx:
                await repo.ledger.append(tx, w.id, amount, kind)
    with pytest.raises(sqlite3.IntegrityError, match="start at 0"):
        await db.execute(
            "INSERT INTO wallets (owner_kind, owner_id, balance, created_at) VALUES"
            " ('user', 99, 500, 0)"
        )
    assert await repo.ledger.count() == 1


# --- repositories ---------------------------------------------------------------------------


async def test_users(repo: Repo) -> None:
    user, created = await repo.users.upsert(7, username="a", first_name="A", language="ru")
    assert created
    assert user.language == "ru"
    assert not user.banned
    user, created = await repo.users.upsert(7, username="b", first_name="B", language="en")
    assert not created
    assert user.username == "b"
    assert user.first_name == "B"
    assert user.language == "ru"  # the user's own choice is kept
    await repo.users.upsert(8, username=None, first_name="C")
    await repo.users.upsert(9, username=None, first_name="D")
    assert await repo.users.set_banned(8, True)
    assert not await repo.users.set_banned(8, True)
    assert await repo.users.set_inactive(9, True)
    assert await repo.users.set_language(7, "en")
    assert (await repo.users.get(7)).language == "en"  # type: ignore[union-attr]
    assert await repo.users.broadcast_ids() == [7]
    assert await repo.users.count() == 3
    assert await repo.users.count(active_only=True) == 1
    assert await repo.users.get(404) is None


async def test_chats(repo: Repo) -> None:
    chat = await repo.chats.upsert(-100, type="group", title="A")
    assert chat.member_daily_limit_units is None
    chat = await repo.chats.upsert(-100, type="supergroup", title="B")
    assert (chat.type, chat.title) == ("supergroup", "B")
    assert await repo.chats.set_member_daily_limit(-100, 25_000)
    assert (await repo.chats.get(-100)).member_daily_limit_units == 25_000  # type: ignore[union-attr]


async def test_wallets_are_one_per_owner(db: Database, repo: Repo) -> None:
    async with db.transaction() as tx:
        a, created_a = await repo.wallets.get_or_create(tx, "user", 5)
        b, created_b = await repo.wallets.get_or_create(tx, "user", 5)
        g, _ = await repo.wallets.get_or_create(tx, "group", 5)
    assert created_a
    assert not created_b
    assert a.id == b.id != g.id
    assert (await repo.wallets.get_by_owner("group", 5)).id == g.id  # type: ignore[union-attr]
    assert await repo.wallets.count() == 2


async def test_ledger_queries(db: Database, repo: Repo) -> None:
    w = await new_user(db, 1)
    async with db.transaction() as tx:
        for i in range(1, 6):
            await repo.ledger.append(tx, w.id, i * 100, "topup", now=1000.0 + i)
        await repo.ledger.append(tx, w.id, -50, "adjustment", now=2000.0)
    page1 = await repo.ledger.last_entries(w.id, 4)
    assert [e.amount for e in page1] == [-50, 500, 400, 300]
    page2 = await repo.ledger.last_entries(w.id, 4, before_id=page1[-1].id)
    assert [e.amount for e in page2] == [200, 100]
    assert await repo.ledger.totals_by_kind() == {"topup": 1500, "adjustment": -50}
    assert await repo.ledger.totals_by_kind(since=1003.0, until=1999.0) == {"topup": 1200}
    assert await repo.ledger.totals_by_kind(wallet_id=w.id) == {"topup": 1500, "adjustment": -50}
    assert await repo.ledger.totals_by_kind(wallet_id=w.id + 1) == {}
    assert [e.amount for e in await repo.ledger.entries_page(after_id=page1[1].id)] == [-50]


async def test_changes_to_activations_are_numbered_for_the_poller(db: Database, repo: Repo) -> None:
    """Migration 0006: every insert, and every update of a column the poller keeps, gets the
    next change_seq; `changed_since` returns exactly those rows, oldest change first."""
    w = await new_user(db, 1, 100_000)
    start = await repo.activations.change_mark()
    first, second = [await _activation(repo, 1, w.id, f"c{i}") for i in range(2)]
    mark, changed = await repo.activations.changed_since(start)
    assert [a.id for a in changed] == [first, second]
    assert mark == await repo.activations.change_mark() == start + 2

    async with db.transaction() as tx:
        assert await repo.activations.mark_waiting(
            tx,
            first,
            upstream_id="901",
            phone_number="+19400000001",
            upstream_amount=6000,
            purchased_at=1100.0,
            cancel_after=1280.0,
        )
    # Poll bookkeeping is not a change the poller needs to see again.
    await db.execute(
        "UPDATE activations SET next_poll_at = 5000, poll_attempts = poll_attempts + 1"
        " WHERE id = ?",
        (first,),
    )
    mark, changed = await repo.activations.changed_since(mark)
    assert [(a.id, a.state) for a in changed] == [(first, "waiting")]

    await repo.activations.set_card(second, 1, 77)
    async with db.transaction() as tx:
        assert await repo.activations.mark_completed(
            tx, first, code="1234", completed_at=1200.0, from_states=("waiting",)
        )
    mark, changed = await repo.activations.changed_since(mark)
    # Rows leave the waiting set this way too: the poller drops them on the same read.
    assert [(a.id, a.state, a.card_message_id) for a in changed] == [
        (second, "purchasing", 77),
        (first, "completed", None),
    ]
    assert await repo.activations.changed_since(mark) == (mark, [])

    # Written by hand, outside the repositories, it is numbered all the same.
    async with db.transaction() as tx:
        await tx.execute("UPDATE activations SET card_message_id = 78 WHERE id = ?", (second,))
    assert [a.id for a in (await repo.activations.changed_since(mark))[1]] == [second]


async def test_activation_listing_and_transitions(db: Database, repo: Repo) -> None:
    w = await new_user(db, 1, 100_000)
    await new_user(db, 2, 100_000)
    ids = [await _activation(repo, 1, w.id, f"k{i}", now=1000.0 + i) for i in range(6)]
    async with db.transaction() as tx:
        # 0: completed, 1: waiting, 2: cancelled, 3: unknown, 4: purchasing, 5: waiting
        for i in (0, 1, 5):
            assert await repo.activations.mark_waiting(
                tx,
                ids[i],
                upstream_id=str(900 + i),
                phone_number=f"+1940000000{i}",
                upstream_amount=6000,
                purchased_at=1100.0 + i,
                cancel_after=1280.0,
            )
        assert await repo.activations.mark_completed(
            tx, ids[0], code="1234", completed_at=1200.0, from_states=("waiting",)
        )
        assert await repo.activations.mark_ended(
            tx, ids[2], state="cancelled", finished_at=1300.0, from_states=("purchasing",)
        )
        assert await repo.activations.mark_unknown(tx, ids[3], error_code="X")
        # A transition from a state the activation is not in changes nothing.
        assert not await repo.activations.mark_unknown(tx, ids[0], error_code="X")
    listed = await repo.activations.list_for_user(1, limit=10)
    assert [a.id for a in listed] == [ids[5], ids[4], ids[3], ids[1], ids[2], ids[0]]
    assert [a.id for a in await repo.activations.list_for_user(1, limit=2, offset=4)] == [
        ids[2],
        ids[0],
    ]
    assert [a.id for a in await repo.activations.list_for_user(1, states=["completed"])] == [ids[0]]
    assert await repo.activations.count_for_user(1) == 6
    assert await repo.activations.count_for_user(1, states=["waiting", "cancelled"]) == 3
    assert await repo.activations.count_for_user(2) == 0
    assert [a.id for a in await repo.activations.list_unsettled()] == [ids[3], ids[4]]
    assert [a.id for a in await repo.activations.list_unsettled(sent_before=1003.5)] == [ids[3]]
    assert {a.id for a in await repo.activations.list_waiting()} == {ids[1], ids[5]}
    assert await repo.activations.count_by_state() == {
        "completed": 1,
        "waiting": 2,
        "cancelled": 1,
        "unknown": 1,
        "purchasing": 1,
    }
    await repo.activations.set_card(ids[1], 1, 77)
    card = await repo.activations.get(ids[1])
    assert card is not None
    assert (card.card_chat_id, card.card_message_id) == (1, 77)
    assert (await repo.activations.get_by_key("k4")).id == ids[4]  # type: ignore[union-attr]
    # Kept charges: 0 (completed), 1 and 5 (waiting); the cancelled one is refunded.
    sales = await repo.activations.sales()
    assert (sales.count, sales.revenue_units, sales.cost_units) == (3, 18_000, 18_000)
    # member_spent counts everything but refunded ones.
    assert await repo.activations.member_spent(w.id, 1, 0.0) == 5 * 6000


async def test_payments_are_unique_per_charge(db: Database, repo: Repo) -> None:
    w = await new_user(db, 1)
    async with db.transaction() as tx:
        first = await repo.payments.create(
            tx,
            wallet_id=w.id,
            user_id=1,
            telegram_payment_charge_id="ch1",
            stars=80,
            amount_units=10_000,
            payload="p",
        )
        again = await repo.payments.create(
            tx,
            wallet_id=w.id,
            user_id=1,
            telegram_payment_charge_id="ch1",
            stars=80,
            amount_units=10_000,
            payload="p",
        )
    assert first is not None
    assert again is None
    async with db.transaction() as tx:
        assert await repo.payments.mark_refunded(tx, first.id)
        assert not await repo.payments.mark_refunded(tx, first.id)
    refunded = await repo.payments.get_by_charge_id("ch1")
    assert refunded is not None
    assert refunded.status == "refunded"
    assert [p.id for p in await repo.payments.list_for_user(1)] == [first.id]


async def test_settings(repo: Repo) -> None:
    await repo.settings.set("markup_percent", "10")
    await repo.settings.set("markup_percent", "12.5")
    await repo.settings.set("a", "b")
    assert await repo.settings.get("markup_percent") == "12.5"
    assert await repo.settings.get("a") == "b"
    assert await repo.settings.delete("a")
    assert await repo.settings.get("a") is None


# --- the outbox, as the sender drives it ----------------------------------------------------

# The sender passes bot.telegram.outbox's table; the storage layer knows no kinds itself.
PRIORITIES = {"code": 0, "alert": 1, "broadcast": 3}
DEFAULT_PRIORITY = 2


async def _due(repo: Repo, now: float, *, limit: int = 100, after_id: int = 0) -> list[OutboxItem]:
    return await repo.outbox.due(
        now,
        limit=limit,
        priorities=PRIORITIES,
        default_priority=DEFAULT_PRIORITY,
        after_id=after_id,
    )


async def _outbox_row(db: Database, outbox_id: int) -> dict[str, Any]:
    row = await db.fetch_one("SELECT * FROM outbox WHERE id = ?", (outbox_id,))
    assert row is not None
    return dict(row)


async def _enqueued(repo: Repo, chat_id: int, kind: str, **kwargs: Any) -> int:
    outbox_id = await repo.outbox.enqueue(chat_id, kind, {"method": kind}, **kwargs)
    assert outbox_id is not None
    return outbox_id


async def test_outbox_due_is_by_priority_and_honours_not_before(repo: Repo) -> None:
    card = await _enqueued(repo, 4, "card", now=100.0)
    news = await _enqueued(repo, 5, "broadcast", now=100.0)
    code = await repo.outbox.enqueue(1, "code", {"text": "Код 1234"}, dedupe_key="c1", now=101.0)
    assert code is not None
    assert await repo.outbox.enqueue(1, "code", {"text": "again"}, dedupe_key="c1") is None
    later = await _enqueued(repo, 2, "alert", not_before=500.0, now=102.0)
    alert = await _enqueued(repo, 3, "alert", now=103.0)

    due = await _due(repo, 200.0)
    # An unknown kind ("card") sorts at the default priority, between alerts and broadcasts.
    assert [m.id for m in due] == [code, alert, card, news]
    assert (due[0].chat_id, due[0].kind, due[0].attempts) == (1, "code", 0)
    assert due[0].payload == {"text": "Код 1234"}
    assert [m.id for m in await _due(repo, 200.0, limit=2)] == [code, alert]
    assert [m.id for m in await _due(repo, 200.0, after_id=code)] == [alert]
    assert [m.id for m in await _due(repo, 500.0)] == [code, later, alert, card, news]
    assert await repo.outbox.pending_due(200.0) == 4
    assert await repo.outbox.pending_due(500.0) == 5
    assert await repo.outbox.count_by_state() == {"pending": 5}


async def test_a_stored_payload_that_is_not_an_object_comes_back_empty(
    db: Database, repo: Repo
) -> None:
    listed = await _enqueued(repo, 2, "notice", now=100.0)
    await db.execute("UPDATE outbox SET payload = '[1, 2]' WHERE id = ?", (listed,))
    assert [m.payload for m in await _due(repo, 200.0)] == [{}]


async def test_outbox_claim_leases_and_writes_marks_in_the_same_commit(
    db: Database, repo: Repo
) -> None:
    first = await _enqueued(repo, 1, "code", now=100.0)
    second = await _enqueued(repo, 2, "code", now=100.0)
    assert await repo.outbox.claim([first, second], 200.0, lease=60.0) == {first, second}
    # Being sent: neither due nor claimable again, even once the lease ran out.
    assert await _due(repo, 210.0) == []
    assert await repo.outbox.claim([first], 300.0, lease=60.0) == set()
    row = await _outbox_row(db, first)
    assert (row["sending_since"], row["next_attempt_at"], row["attempts"]) == (200.0, 260.0, 1)

    third = await _enqueued(repo, 3, "code", now=250.0)
    claimed = await repo.outbox.claim(
        [third], 251.0, lease=60.0, sent=[SentMark(first, 55, 211.0), SentMark(second, None, 212.0)]
    )
    assert claimed == {third}
    row = await _outbox_row(db, first)
    assert (row["state"], row["message_id"], row["sent_at"]) == ("sent", 55, 211.0)
    assert (row["sending_since"], row["last_error"]) == (None, None)
    # A mark is written once: a second one for a sent message changes nothing.
    assert await repo.outbox.claim([], 300.0, lease=0.0, sent=[SentMark(first, 56, 300.0)]) == set()
    assert (await _outbox_row(db, first))["message_id"] == 55
    assert await repo.outbox.count_by_state() == {"sent": 2, "pending": 1}


async def test_a_failed_commit_writes_neither_the_marks_nor_the_claim(
    db: Database, repo: Repo
) -> None:
    sent = await _enqueued(repo, 1, "code", now=100.0)
    waiting = await _enqueued(repo, 2, "code", now=100.0)
    assert await repo.outbox.claim([sent], 200.0, lease=60.0) == {sent}
    await db.execute(
        "CREATE TRIGGER refuse_claims BEFORE UPDATE OF sending_since ON outbox"
        " WHEN NEW.sending_since IS NOT NULL BEGIN SELECT RAISE(ABORT, 'refused'); END"
    )
    with pytest.raises(sqlite3.IntegrityError, match="refused"):
        await repo.outbox.claim([waiting], 201.0, lease=60.0, sent=[SentMark(sent, 9, 201.0)])
    assert (await _outbox_row(db, sent))["state"] == "pending"
    assert (await _outbox_row(db, waiting))["attempts"] == 0


async def test_outbox_recover_makes_messages_left_sending_due_again(
    db: Database, repo: Repo
) -> None:
    left = await _enqueued(repo, 1, "code", now=100.0)
    done = await _enqueued(repo, 2, "notice", now=100.0)
    untouched = await _enqueued(repo, 3, "notice", not_before=900.0, now=100.0)
    await repo.outbox.claim([left, done], 200.0, lease=120.0)
    await repo.outbox.claim([], 201.0, lease=0.0, sent=[SentMark(done, 7, 201.0)])

    recovered = await repo.outbox.recover(250.0)
    assert [(m.id, m.chat_id, m.kind, m.attempts) for m in recovered] == [(left, 1, "code", 1)]
    row = await _outbox_row(db, left)
    assert (row["sending_since"], row["next_attempt_at"]) == (None, 250.0)
    assert [m.id for m in await _due(repo, 250.0)] == [left]
    assert (await _outbox_row(db, untouched))["next_attempt_at"] == 900.0
    assert await repo.outbox.recover(260.0) == []


async def test_outbox_retry_holds_back_what_the_chat_queued_after(db: Database, repo: Repo) -> None:
    a1 = await _enqueued(repo, 1, "notice", now=100.0)
    a2 = await _enqueued(repo, 1, "notice", now=101.0)
    b1 = await _enqueued(repo, 2, "notice", now=102.0)
    await repo.outbox.claim([a1], 200.0, lease=60.0)
    # One in flight holds nothing back here: the sender keeps one per chat in flight itself.
    assert [m.id for m in await _due(repo, 201.0)] == [a2, b1]
    await repo.outbox.retry(a1, at=500.0, error="x" * 600)
    row = await _outbox_row(db, a1)
    assert (row["next_attempt_at"], row["sending_since"], row["state"]) == (500.0, None, "pending")
    assert row["last_error"] == "x" * 500
    # a2 must not overtake a1 while a1 waits for its retry; chat 2 is not held back.
    assert [m.id for m in await _due(repo, 300.0)] == [b1]
    assert [m.id for m in await _due(repo, 500.0)] == [a1, a2, b1]


async def test_outbox_finish_drop_and_retarget(db: Database, repo: Repo) -> None:
    failed = await _enqueued(repo, 1, "notice", now=100.0)
    pointless = await _enqueued(repo, 2, "notice", now=100.0)
    blocked = [await _enqueued(repo, 3, "notice", now=100.0) for _ in range(2)]
    moved = await _enqueued(repo, -4, "notice", not_before=800.0, now=100.0)
    other = await _enqueued(repo, 5, "notice", now=100.0)

    await repo.outbox.claim([failed], 200.0, lease=60.0)
    await repo.outbox.finish(failed, state="failed", error="e" * 600)
    await repo.outbox.finish(pointless, state="dropped", error="400 chat not found")
    row = await _outbox_row(db, failed)
    assert (row["state"], row["last_error"], row["sending_since"]) == ("failed", "e" * 500, None)
    # Settled messages are never changed again.
    await repo.outbox.finish(failed, state="dropped", error="later")
    await repo.outbox.retry(pointless, at=0.0, error="later")
    assert (await _outbox_row(db, failed))["state"] == "failed"
    assert (await _outbox_row(db, pointless))["last_error"] == "400 chat not found"
    with pytest.raises(ValueError):
        await repo.outbox.finish(other, state="sent", error="")  # type: ignore[arg-type]

    assert await repo.outbox.drop_chat(3, "forbidden: blocked") == 2
    assert await repo.outbox.drop_chat(3, "forbidden: blocked") == 0
    assert (await _outbox_row(db, blocked[0]))["last_error"] == "forbidden: blocked"

    await repo.outbox.retarget(moved, -1004)
    due = await _due(repo, 200.0)
    assert [(m.id, m.chat_id) for m in due] == [(moved, -1004), (other, 5)]
    assert await repo.outbox.count_by_state() == {"failed": 1, "dropped": 3, "pending": 2}
