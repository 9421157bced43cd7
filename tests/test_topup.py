"""Top-ups, Stars payments and refunds, group funding and limits, the admin services: the
services called directly on a real temporary SQLite file (and, for group purchases and the
upstream balance, the sandbox over loopback HTTP). No Telegram here: the Stars refund is
given a stand-in for Telegram's refundStarPayment; the end-to-end tests use the emulator's.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiogram import Bot

from bot.config import Settings
from bot.ledger_check import check_ledger
from bot.money import to_units
from bot.sandbox import Sandbox
from bot.services import admin as admin_service
from bot.services import groups as group_service
from bot.services import money
from bot.services.catalogue import Catalogue, Markup
from bot.services.errors import DailyLimitExceeded, InsufficientFunds, InvalidAmount
from bot.services.money import Movement, NoticeHook, StarsNoticeHook
from bot.services.topup import (
    MAX_TOPUP_UNITS,
    AlreadyRefundedUpstream,
    BadAmount,
    PaymentNotCredited,
    RefundPending,
    RefundRefused,
    StarsInvoice,
    admin_topup,
    check_pre_checkout,
    find_payment,
    new_invoice,
    parse_amount,
    parse_payload,
    record_stars_payment,
    refund_stars_payment,
    stars_for,
)
from bot.telegram.i18n import I18n
from bot.telegram.notifier import TelegramNotifier
from bot.telegram.outbox import OutboxSender, enqueue, message_payload
from storage.db import Database, Transaction
from storage.models import Payment, Wallet
from storage.repo import Repo
from tests.fixtures.money import (
    buy,
    buy_request,
    make_client,
    new_user,
    purchase_queue,
    wallet_balance,
)

ADMIN = 42
RATE = 80  # STARS_PER_USD


@pytest.fixture
async def notifier(db: Database) -> AsyncIterator[TelegramNotifier]:
    """The real notifier over an outbox nobody sends: what was queued is read back."""
    bot = Bot(token="1:x")
    try:
        yield TelegramNotifier(
            repo=Repo(db), i18n=I18n(), sender=OutboxSender(repo=Repo(db), bot=bot)
        )
    finally:
        await bot.session.close()


def settings(**values: Any) -> Settings:
    base: dict[str, Any] = {"bot_token": "1:x", "admin_ids": "42,43"}
    base.update(values)
    return Settings(_env_file=None, **base)


def notice_to(db: Database, chat_id: int, text: Callable[[Movement], str]) -> NoticeHook:
    """A notice hook as the Telegram edge writes them: a message queued in the movement's
    own transaction."""

    async def hook(tx: Transaction, moved: Movement) -> None:
        await enqueue(Repo(db), chat_id, "notice", message_payload(text(moved)), tx=tx)

    return hook


def stars_notice_to(
    db: Database, chat_id: int, text: Callable[[Wallet, Payment], str]
) -> StarsNoticeHook:
    async def hook(tx: Transaction, wallet: Wallet, payment: Payment) -> None:
        await enqueue(Repo(db), chat_id, "notice", message_payload(text(wallet, payment)), tx=tx)

    return hook


async def outbox_texts(db: Database, chat_id: int) -> list[str]:
    rows = await db.fetch_all(
        "SELECT payload FROM outbox WHERE chat_id = ? ORDER BY id", (chat_id,)
    )
    return [json.loads(r[0])["params"]["text"] for r in rows]


async def books_balanced(db: Database) -> None:
    assert await check_ledger(Repo(db)) == []


# --- amounts ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "units"),
    [
        ("5", 50_000),
        ("$5", 50_000),
        (" 12.5 ", 125_000),
        ("0,75", 7_500),
        ("0.0001", 1),
        ("10000", MAX_TOPUP_UNITS),
        ("1.2345", 12_345),
    ],
)
def test_amounts_people_type(text: str, units: int) -> None:
    assert parse_amount(text) == units


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("-5", "not_positive"),
        ("0", "not_positive"),
        ("0.00", "not_positive"),
        ("1e3", "format"),  # a typo, not $1000
        ("1e999999999", "format"),
        ("100000", "too_large"),
        ("10000.0001", "too_large"),
        ("abc", "format"),
        ("", "format"),
        ("NaN", "format"),
        ("inf", "format"),
        ("1,000.50", "format"),
        ("1.23456", "decimals"),
        ("1e-5", "format"),
        ("+5", "format"),
    ],
)
def test_malformed_amounts_are_refused_with_a_reason(text: str, reason: str) -> None:
    with pytest.raises(BadAmount) as info:
        parse_amount(text)
    assert info.value.reason == reason


def test_stars_prices_round_to_whole_stars() -> None:
    assert stars_for(10_000, RATE) == 80
    assert stars_for(250_000, RATE) == 2_000
    assert stars_for(1, RATE) == 1  # never a free invoice
    assert stars_for(10_063, 80) == 81  # 80.504 → 81
    assert stars_for(10_062, 80) == 80  # 80.496 → 80


def test_invoice_payloads_round_trip_and_refuse_garbage() -> None:
    invoice = new_invoice(7, 50_000, RATE)
    assert invoice == StarsInvoice(7, 50_000, 400)
    assert len(invoice.payload.encode()) <= 128
    assert parse_payload(invoice.payload) == invoice
    for bad in ("", "v1s:7:50000", "v2s:7:50000:400", "v1s:7:0:400", "v1s:x:1:1", "v1s:7:1:0"):
        assert parse_payload(bad) is None
    assert parse_payload(f"v1s:7:{MAX_TOPUP_UNITS + 1}:9") is None


# --- admin top-up -------------------------------------------------------------------------


async def test_admin_topup_credits_once_per_key_and_queues_one_notice(db: Database) -> None:
    wallet = await new_user(db, 1001)
    first = await admin_topup(
        Repo(db),
        wallet_id=wallet.id,
        amount_units=50_000,
        admin_id=ADMIN,
        key="cmd:42:7",
        notice=notice_to(db, 1001, lambda m: f"now {m.wallet.balance}"),
    )
    again = await admin_topup(
        Repo(db),
        wallet_id=wallet.id,
        amount_units=50_000,
        admin_id=ADMIN,
        key="cmd:42:7",
        notice=notice_to(db, 1001, lambda m: f"now {m.wallet.balance}"),
    )
    assert first.entry is not None
    assert first.entry.kind == "topup"
    assert first.entry.actor_id == ADMIN
    assert first.wallet.balance == 50_000
    assert again.duplicate
    assert again.wallet.balance == 50_000
    assert await wallet_balance(db, wallet.id) == 50_000
    assert await outbox_texts(db, 1001) == ["now 50000"]
    await books_balanced(db)


async def test_concurrent_topups_with_one_key_credit_once(db: Database) -> None:
    wallet = await new_user(db, 1001)
    results = await asyncio.gather(
        *(
            admin_topup(
                Repo(db), wallet_id=wallet.id, amount_units=10_000, admin_id=ADMIN, key="btn:x"
            )
            for _ in range(10)
        )
    )
    assert sum(not r.duplicate for r in results) == 1
    assert await wallet_balance(db, wallet.id) == 10_000
    await books_balanced(db)


async def test_topup_refuses_bad_amounts_and_changes_nothing(db: Database) -> None:
    wallet = await new_user(db, 1001)
    for amount in (0, -5, MAX_TOPUP_UNITS + 1):
        with pytest.raises((BadAmount, InvalidAmount)):
            await admin_topup(
                Repo(db), wallet_id=wallet.id, amount_units=amount, admin_id=1, key="k"
            )
    assert await wallet_balance(db, wallet.id) == 0
    assert await Repo(db).ledger.count() == 0


# --- Stars --------------------------------------------------------------------------------


async def _pay(db: Database, payer: int, invoice: StarsInvoice, charge: str) -> Any:
    return await record_stars_payment(
        Repo(db),
        payer_id=payer,
        charge_id=charge,
        payload=invoice.payload,
        currency="XTR",
        total_amount=invoice.stars,
        notice=stars_notice_to(db, payer, lambda w, p: f"+{p.amount_units} = {w.balance}"),
    )


async def test_a_payment_is_credited_once_per_charge_id_even_concurrently(db: Database) -> None:
    wallet = await new_user(db, 1001)
    invoice = new_invoice(wallet.id, 50_000, RATE)
    results = await asyncio.gather(*(_pay(db, 1001, invoice, "ch-1") for _ in range(8)))
    assert sum(r.credited for r in results) == 1
    assert {r.payment.id for r in results} == {results[0].payment.id}
    assert await wallet_balance(db, wallet.id) == 50_000
    # The same invoice paid again is a new payment (a new charge id), credited again.
    again = await _pay(db, 1001, invoice, "ch-2")
    assert again.credited
    assert await wallet_balance(db, wallet.id) == 100_000
    assert await outbox_texts(db, 1001) == ["+50000 = 50000", "+50000 = 100000"]
    await books_balanced(db)


async def test_a_payment_that_matches_no_invoice_credits_nothing(db: Database) -> None:
    wallet = await new_user(db, 1001)
    invoice = new_invoice(wallet.id, 50_000, RATE)
    with pytest.raises(PaymentNotCredited):
        await record_stars_payment(
            Repo(db),
            payer_id=1001,
            charge_id="c",
            payload="hello",
            currency="XTR",
            total_amount=400,
        )
    with pytest.raises(PaymentNotCredited):
        await record_stars_payment(
            Repo(db),
            payer_id=1001,
            charge_id="c",
            payload=invoice.payload,
            currency="XTR",
            total_amount=399,
        )
    assert await wallet_balance(db, wallet.id) == 0


async def test_pre_checkout_checks_payload_wallet_amount_and_ban(db: Database) -> None:
    wallet = await new_user(db, 1001)
    invoice = new_invoice(wallet.id, 10_000, RATE)

    async def check(**over: Any) -> str | None:
        values: dict[str, Any] = {
            "payer_id": 1001,
            "payload": invoice.payload,
            "currency": "XTR",
            "total_amount": 80,
        }
        values.update(over)
        return await check_pre_checkout(Repo(db), **values)

    assert await check() is None
    assert await check(payload="forged") == "invalid"
    assert await check(currency="USD") == "currency"
    assert await check(total_amount=79) == "amount"
    assert await check(payload=StarsInvoice(999, 10_000, 80).payload) == "wallet"
    await Repo(db).users.set_banned(1001, True)
    assert await check() == "banned"


class FakeTelegram:
    """A stand-in for refundStarPayment: refunds each charge once, then answers
    CHARGE_ALREADY_REFUNDED, like Telegram; can refuse or lose its answer on demand."""

    def __init__(self) -> None:
        self.refunded: set[str] = set()
        self.calls = 0
        self.mode = "ok"

    async def __call__(self, payment: Payment) -> None:
        self.calls += 1
        if self.mode == "refuse":
            raise RefundRefused("CHARGE_NOT_FOUND")
        if payment.telegram_payment_charge_id in self.refunded:
            raise AlreadyRefundedUpstream
        self.refunded.add(payment.telegram_payment_charge_id)
        if self.mode == "lose":
            raise TimeoutError("no answer")


async def _paid(db: Database, units: int = 50_000) -> tuple[Wallet, Payment]:
    wallet = await new_user(db, 1001)
    credit = await _pay(db, 1001, new_invoice(wallet.id, units, RATE), "ch-r")
    return wallet, credit.payment


async def test_refund_reverses_the_credit_once(db: Database) -> None:
    wallet, payment = await _paid(db)
    telegram = FakeTelegram()
    done = await refund_stars_payment(
        Repo(db), payment.id, actor_id=ADMIN, telegram_refund=telegram
    )
    assert done.outcome == "refunded"
    assert done.payment.status == "refunded"
    assert done.wallet.balance == 0
    # Asked again: Telegram says CHARGE_ALREADY_REFUNDED; nothing moves.
    again = await refund_stars_payment(
        Repo(db), payment.id, actor_id=ADMIN, telegram_refund=telegram
    )
    assert again.outcome == "already"
    assert await wallet_balance(db, wallet.id) == 0
    entries = await Repo(db).ledger.last_entries(wallet.id, 10)
    assert [(e.kind, e.amount) for e in entries] == [("adjustment", -50_000), ("stars", 50_000)]
    assert entries[0].payment_id == payment.id
    await books_balanced(db)


async def test_refund_is_refused_when_the_money_was_spent(db: Database) -> None:
    wallet, payment = await _paid(db)
    await admin_service_debit(db, wallet.id, 10_000)
    telegram = FakeTelegram()
    with pytest.raises(InsufficientFunds):
        await refund_stars_payment(Repo(db), payment.id, actor_id=ADMIN, telegram_refund=telegram)
    assert telegram.calls == 0
    current = await Repo(db).payments.get(payment.id)
    assert current is not None
    assert current.status == "paid"
    assert await wallet_balance(db, wallet.id) == 40_000
    await books_balanced(db)


async def admin_service_debit(db: Database, wallet_id: int, units: int) -> None:
    await money.debit(Repo(db), wallet_id, units, actor_id=ADMIN, note="spent")


async def test_a_refused_refund_is_unbooked(db: Database) -> None:
    wallet, payment = await _paid(db)
    telegram = FakeTelegram()
    telegram.mode = "refuse"
    with pytest.raises(RefundRefused):
        await refund_stars_payment(Repo(db), payment.id, actor_id=ADMIN, telegram_refund=telegram)
    current = await Repo(db).payments.get(payment.id)
    assert current is not None
    assert current.status == "paid"
    assert await wallet_balance(db, wallet.id) == 50_000
    await books_balanced(db)


async def test_a_lost_refund_answer_keeps_the_debit_and_a_retry_finishes(db: Database) -> None:
    wallet, payment = await _paid(db)
    telegram = FakeTelegram()
    telegram.mode = "lose"
    with pytest.raises(RefundPending):
        await refund_stars_payment(Repo(db), payment.id, actor_id=ADMIN, telegram_refund=telegram)
    assert await wallet_balance(db, wallet.id) == 0  # the money never outlives the Stars
    telegram.mode = "ok"
    done = await refund_stars_payment(
        Repo(db), payment.id, actor_id=ADMIN, telegram_refund=telegram
    )
    assert done.outcome == "already"
    assert await wallet_balance(db, wallet.id) == 0
    await books_balanced(db)


async def test_find_payment_by_id_or_charge(db: Database) -> None:
    _, payment = await _paid(db)
    repo = Repo(db)
    assert await find_payment(repo, str(payment.id)) == payment
    assert await find_payment(repo, "ch-r") == payment
    assert await find_payment(repo, "nope") is None


# --- groups -------------------------------------------------------------------------------


async def test_group_funding_moves_money_once_per_key(db: Database) -> None:
    personal = await new_user(db, 1001, 100_000)
    _, group, created = await group_service.ensure_group(
        Repo(db), -500, chat_type="group", title="Team"
    )
    assert created
    _, again, created = await group_service.ensure_group(
        Repo(db), -500, chat_type="group", title="Team 2"
    )
    assert not created
    assert again.id == group.id
    funded = await group_service.fund_group(
        Repo(db), chat_id=-500, from_user_id=1001, amount_units=30_000, key="a"
    )
    twice = await group_service.fund_group(
        Repo(db), chat_id=-500, from_user_id=1001, amount_units=30_000, key="a"
    )
    assert funded.counterparty is not None
    assert funded.counterparty.balance == 30_000
    assert twice.duplicate
    assert await wallet_balance(db, personal.id) == 70_000
    with pytest.raises(InsufficientFunds):
        await group_service.fund_group(
            Repo(db), chat_id=-500, from_user_id=1001, amount_units=70_001, key="b"
        )
    # The failed attempt did not burn its key: the same key works once the money is there.
    assert await db.fetch_value("SELECT 1 FROM action_keys WHERE key = 'fund:b'") is None
    assert await wallet_balance(db, group.id) == 30_000
    await books_balanced(db)


async def test_member_limit_is_atomic_with_the_hold(db: Database) -> None:
    """Twelve members' taps at once, one member with a limit for two numbers: two bought."""
    async with (
        Sandbox(time_scale=60.0, start_balance_units=10_000_000) as sb,
        make_client(sb, "grp") as client,
        purchase_queue(db, client) as queue,
    ):
        await new_user(db, 1001, 0)
        await group_service.ensure_group(Repo(db), -500, chat_type="supergroup", title="T")
        await new_user(db, 1002, 200_000)
        await group_service.fund_group(
            Repo(db), chat_id=-500, from_user_id=1002, amount_units=200_000, key="f"
        )
        chat = await group_service.set_member_limit(Repo(db), -500, 12_000)  # two Signals
        group = await group_service.group_wallet(Repo(db), -500)
        assert group is not None
        limit = chat.member_daily_limit_units
        attempts = [
            buy(
                queue,
                buy_request(1001, group.id, f"1001:{i}", chat_id=-500, member_daily_limit=limit),
            )
            for i in range(12)
        ]
        results = await asyncio.gather(*attempts, return_exceptions=True)
        bought = [r for r in results if not isinstance(r, BaseException)]
        refused = [r for r in results if isinstance(r, DailyLimitExceeded)]
        assert len(bought) == 2, results
        assert len(refused) == 10
        today = await group_service.member_today(Repo(db), chat, group, 1001)
        assert today.spent == 12_000
        assert today.remaining == 0
        report = await group_service.spending(Repo(db), -500)
        assert report is not None
        assert report.today_units == 12_000
        assert [(m.user_id, m.count) for m in report.today] == [(1001, 2)]
        assert report.funded_month == 200_000
        assert await wallet_balance(db, group.id) == 200_000 - 12_000
    await books_balanced(db)


async def test_limits_are_validated(db: Database) -> None:
    await group_service.ensure_group(Repo(db), -500, chat_type="group", title=None)
    assert (
        await group_service.set_member_limit(Repo(db), -500, None)
    ).member_daily_limit_units is None
    assert (await group_service.set_member_limit(Repo(db), -500, 0)).member_daily_limit_units == 0
    with pytest.raises(InvalidAmount):
        await group_service.set_member_limit(Repo(db), -500, -1)
    with pytest.raises(ValueError):
        await group_service.ensure_group(Repo(db), 5, chat_type="private", title=None)


# --- admin --------------------------------------------------------------------------------


async def test_user_lookup_by_id_and_username(db: Database) -> None:
    repo = Repo(db)
    await repo.users.upsert(1001, username="Alice_B", first_name="Alice")
    assert (await admin_service.find_user(repo, "1001")).id == 1001
    assert (await admin_service.find_user(repo, "@alice_b")).id == 1001
    assert (await admin_service.find_user(repo, "ALICE_B")).id == 1001
    for ref in ("@nobody", "999", "@ab", "drop table"):
        with pytest.raises(admin_service.UnknownUser):
            await admin_service.find_user(repo, ref)


async def test_admins_cannot_be_banned(db: Database) -> None:
    repo = Repo(db)
    await repo.users.upsert(42, username=None, first_name="Admin")
    await repo.users.upsert(1001, username=None, first_name="A")
    conf = settings()
    with pytest.raises(admin_service.CannotBanAdmin):
        await admin_service.set_banned(repo, conf, 42, True)
    assert await admin_service.set_banned(repo, conf, 1001, True)
    assert not await admin_service.set_banned(repo, conf, 1001, True)
    assert await admin_service.set_banned(repo, conf, 1001, False)


async def test_stored_markup_overrides_the_environment_in_the_catalogue(db: Database) -> None:
    conf = settings(markup_percent="10", markup_fixed="0.01")
    repo = Repo(db)
    assert await admin_service.current_markup(repo, conf) == admin_service.MarkupSetting(
        Markup(conf.markup_percent, 100, conf.price_step_units), stored=False
    )
    await admin_service.store_markup(Repo(db), admin_service.parse_markup("25 0.05"))
    current = await admin_service.current_markup(repo, conf)
    assert current.stored
    assert current.markup.apply(10_000) == 13_000
    async with Sandbox(time_scale=60.0) as sb, make_client(sb, "m") as client:
        catalogue = Catalogue(client, repo, conf)
        assert await catalogue.markup() == current.markup
        await admin_service.reset_markup(Repo(db))
        assert await catalogue.markup() == Markup(conf.markup_percent, 100, conf.price_step_units)


async def test_broadcast_is_queued_once_for_reachable_users(
    db: Database, notifier: TelegramNotifier
) -> None:
    repo = Repo(db)
    for uid in range(1, 8):
        await repo.users.upsert(uid, username=None, first_name=f"u{uid}")
    await repo.users.set_banned(3, True)
    await repo.users.set_inactive(4, True)
    draft = await admin_service.draft_broadcast(repo, ADMIN, "Hello <b>all</b>")
    results = await asyncio.gather(
        *(admin_service.confirm_broadcast(Repo(db), draft.id, notifier) for _ in range(3))
    )
    assert sorted(r.queued for r in results if r is not None) == [0, 0, 5]
    assert sum(r.confirmed_now for r in results if r is not None) == 1
    rows = await db.fetch_all("SELECT chat_id FROM outbox WHERE kind = 'broadcast'")
    assert sorted(r[0] for r in rows) == [1, 2, 5, 6, 7]
    assert await outbox_texts(db, 1) == ["Hello <b>all</b>"]
    assert await admin_service.confirm_broadcast(Repo(db), 999, notifier) is None
    with pytest.raises(admin_service.BroadcastTooLong):
        await admin_service.draft_broadcast(repo, ADMIN, "x" * 5000)


async def test_ledger_export_parses_and_sums_to_the_balances(db: Database) -> None:
    a = await new_user(db, 1001, 50_000)
    b = await new_user(db, 1002, 12_345)
    await group_service.ensure_group(Repo(db), -500, chat_type="group", title="T")
    await group_service.fund_group(
        Repo(db), chat_id=-500, from_user_id=1001, amount_units=5, key="x"
    )
    export = await admin_service.export_ledger(Repo(db))
    rows = list(csv.DictReader(io.StringIO(export.data.decode())))
    assert tuple(rows[0]) == admin_service.CSV_COLUMNS
    assert export.entries == len(rows) == 4
    sums: dict[str, int] = {}
    for row in rows:
        sums[row["wallet_id"]] = sums.get(row["wallet_id"], 0) + int(row["amount_units"])
        assert to_units(row["amount_usd"]) == int(row["amount_units"])
    wallets = {str(w.id): w.balance for w in await Repo(db).wallets.list_all()}
    assert sums == {k: v for k, v in wallets.items() if v or k in sums}
    assert sums[str(a.id)] == 49_995
    assert sums[str(b.id)] == 12_345
    assert export.total_units == sum(wallets.values())


async def test_low_balance_alerts_once_per_episode(
    db: Database, notifier: TelegramNotifier
) -> None:
    repo = Repo(db)
    await repo.users.upsert(42, username=None, first_name="Admin", language="ru")
    conf = settings(low_balance_alert_usd="5")
    i18n = I18n()
    # Each admin in their own language: 42 chose Russian, 43 never started the bot.
    ru, en = (
        t("admin-alert-low-balance", balance=t.usd(40_000), threshold=t.usd(50_000))
        for t in (i18n.translator("ru"), i18n.translator(None))
    )
    assert ru != en

    async with Sandbox(time_scale=60.0) as sb, make_client(sb, "acct") as client:
        await sb.control.set_account("acct", balance_units=40_000)
        first = await admin_service.check_upstream_balance(Repo(db), client, conf, notifier)
        second = await admin_service.check_upstream_balance(Repo(db), client, conf, notifier)
        assert first.low
        assert (first.alerted, second.alerted) == (2, 0)
        assert await outbox_texts(db, 42) == [ru]
        assert await outbox_texts(db, 43) == [en]
        await sb.control.set_account("acct", balance_units=60_000)
        back = await admin_service.check_upstream_balance(Repo(db), client, conf, notifier)
        assert not back.low
        await sb.control.set_account("acct", balance_units=30_000)
        third = await admin_service.check_upstream_balance(Repo(db), client, conf, notifier)
        assert third.alerted == 2  # a new episode
        stats = await admin_service.collect_stats(repo, client)
        assert stats.upstream_balance == 30_000
        assert stats.users == 1


async def test_a_group_that_becomes_a_supergroup_keeps_its_money(db: Database) -> None:
    await new_user(db, 1001, 50_000)
    await group_service.ensure_group(Repo(db), -500, chat_type="group", title="T")
    await group_service.fund_group(
        Repo(db), chat_id=-500, from_user_id=1001, amount_units=30_000, key="k"
    )
    await group_service.set_member_limit(Repo(db), -500, 5_000)
    new_id = -1_000_000_000_500
    assert await group_service.migrate_group(Repo(db), -500, new_id, title="T") == 30_000
    assert await group_service.migrate_group(Repo(db), -500, new_id, title="T") == 0
    repo = Repo(db)
    moved = await group_service.group_wallet(repo, new_id)
    old = await group_service.group_wallet(repo, -500)
    assert moved is not None
    assert old is not None
    assert (moved.balance, old.balance) == (30_000, 0)
    chat = await repo.chats.get(new_id)
    assert chat is not None
    assert chat.member_daily_limit_units == 5_000
    await books_balanced(db)
