"""Telegram Stars end to end: the invoice from the Balance screen, the pre-checkout check, the
payment credited exactly once (also when Telegram delivers the update twice), a refund by an
admin through refundStarPayment, /paysupport and /terms. Real app, emulator, sandbox, SQLite.
"""

from __future__ import annotations

import copy
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bot.app import App
from bot.emulator import BotAPIEmulator, ChatMessage, EmulatedUser, PaymentDeclined
from bot.sandbox import Sandbox
from bot.services.topup import parse_payload
from tests.conftest import make_settings, running_app
from tests.e2e.helpers import (
    activations,
    assert_books_balanced,
    balance,
    fund,
    is_card,
    ledger,
    no_traceback,
    only_activation,
    open_services,
    start,
)
from tests.fixtures.waiting import wait_until

ADMIN = 900


@pytest.fixture
async def app(tmp_path: Path, sandbox: Sandbox, emulator: BotAPIEmulator) -> AsyncIterator[App]:
    settings = make_settings(tmp_path, sandbox, emulator, admin_ids=str(ADMIN))
    async with running_app(settings, emulator) as running:
        yield running


async def handled(emu: BotAPIEmulator, app: App, update: dict[str, Any]) -> None:
    """Until the bot has fetched `update` and finished handling it."""
    await emu.wait_confirmed(update["update_id"])
    # The handler task registers itself before the next getUpdates leaves, which is what
    # confirms the update; once nothing is running, it is done.
    await wait_until(lambda: app.inflight.running == 0, what="the update handled")


async def invoice_for(user: EmulatedUser, menu: ChatMessage, amount: str) -> ChatMessage:
    await user.press(menu, "Balance")
    screen = await user.wait_for_edit(menu, lambda m: "Balance:" in m.text)
    await user.press(screen, "Top up")
    amounts = await user.wait_for_edit(screen, lambda m: "Telegram Stars" in m.text)
    await user.press(amounts, amount)
    return await user.wait_for(lambda m: m.invoice is not None)


def payments_received(user: EmulatedUser) -> list[ChatMessage]:
    return [m for m in user.history if "Payment received" in m.text]


@pytest.mark.both_modes
async def test_a_stars_payment_is_credited_once(app: App, emulator: BotAPIEmulator) -> None:
    alice, menu = await start(emulator, app, 1001, name="Alice", funds=0)
    message = await invoice_for(alice, menu, "$5.00 — 400 ⭐")
    invoice = message.invoice
    assert invoice is not None
    assert invoice.currency == "XTR"
    assert invoice.total_amount == 400  # $5 × STARS_PER_USD 80
    wallet = await app.repo.wallets.get_by_owner("user", 1001)
    assert wallet is not None
    parsed = parse_payload(invoice.payload)
    assert parsed is not None
    assert (parsed.wallet_id, parsed.units, parsed.stars) == (wallet.id, 50_000, 400)

    update = await alice.pay(message)
    done = await alice.wait_for(lambda m: "Payment received" in m.text)
    assert "+$5.00" in done.text
    assert "Balance: $5.00" in done.text
    # Telegram delivers the same update again: nothing more.
    await handled(emulator, app, emulator.push_update(update))
    await handled(emulator, app, emulator.push_update(update))
    assert await balance(app, 1001) == 50_000
    assert [(e.kind, e.amount) for e in await ledger(app, 1001)] == [("stars", 50_000)]
    charge = update["message"]["successful_payment"]["telegram_payment_charge_id"]
    payment = await app.repo.payments.get_by_charge_id(charge)
    assert payment is not None
    assert (payment.stars, payment.amount_units, payment.user_id) == (400, 50_000, 1001)
    assert len(payments_received(alice)) == 1

    # The same invoice paid again is a new payment (a new charge id): credited again.
    second = await alice.pay(message)
    assert second["message"]["successful_payment"]["telegram_payment_charge_id"] != charge
    await wait_until(lambda: len(payments_received(alice)) == 2, what="the second credit")
    assert await balance(app, 1001) == 100_000
    await assert_books_balanced(app)
    no_traceback(alice)


async def test_a_restart_between_deliveries_credits_once(
    tmp_path: Path, sandbox: Sandbox, emulator: BotAPIEmulator
) -> None:
    settings = make_settings(tmp_path, sandbox, emulator)
    async with running_app(settings, emulator) as first:
        alice, menu = await start(emulator, first, 1001, name="Alice", funds=0)
        message = await invoice_for(alice, menu, "$1.00 — 80 ⭐")
        update = await alice.pay(message)
        await alice.wait_for(lambda m: "Payment received" in m.text)
    async with running_app(settings, emulator) as second:
        await handled(emulator, second, emulator.push_update(update))
        assert await balance(second, 1001) == 10_000
        assert len(await ledger(second, 1001)) == 1
        await assert_books_balanced(second)


async def test_pre_checkout_refuses_a_banned_payer(app: App, emulator: BotAPIEmulator) -> None:
    alice, menu = await start(emulator, app, 1001, name="Alice", funds=0)
    message = await invoice_for(alice, menu, "$1.00 — 80 ⭐")
    await app.repo.users.set_banned(1001, True)
    with pytest.raises(PaymentDeclined) as declined:
        await alice.pay(message)
    assert declined.value.error_message == "This account cannot use the bot."
    assert await balance(app, 1001) == 0
    assert await app.repo.payments.list_for_user(1001) == []


async def test_a_payment_completed_after_a_ban_is_still_credited(
    app: App, emulator: BotAPIEmulator
) -> None:
    """The bot said yes at pre-checkout, so Telegram takes the Stars; a ban that lands before
    the successful_payment message must not lose them."""
    alice, menu = await start(emulator, app, 1001, name="Alice", funds=0)
    message = await invoice_for(alice, menu, "$1.00 — 80 ⭐")
    update = await alice.pay(message)
    await alice.wait_for(lambda m: "Payment received" in m.text)
    await app.repo.users.set_banned(1001, True)

    # A second payment of the invoice, approved before the ban, completes after it.
    late = copy.deepcopy(update)
    late["message"]["successful_payment"]["telegram_payment_charge_id"] += "-late"
    await handled(emulator, app, emulator.push_update(late))
    await wait_until(lambda: len(payments_received(alice)) == 2, what="the late credit")
    assert "Balance: $2.00" in payments_received(alice)[-1].text
    assert await balance(app, 1001) == 20_000
    assert len(await app.repo.payments.list_for_user(1001)) == 2
    # Everything else stays refused.
    await alice.send("/start")
    refused = await alice.wait_for(lambda m: "this account cannot use the bot" in m.text)
    assert refused.all_buttons == []
    await assert_books_balanced(app)
    no_traceback(alice)


async def test_an_admin_refunds_a_stars_payment(app: App, emulator: BotAPIEmulator) -> None:
    admin, _ = await start(emulator, app, ADMIN, name="Root", funds=0)
    alice, menu = await start(emulator, app, 1001, name="Alice", funds=0)
    message = await invoice_for(alice, menu, "$5.00 — 400 ⭐")
    update = await alice.pay(message)
    await alice.wait_for(lambda m: "Payment received" in m.text)
    charge = update["message"]["successful_payment"]["telegram_payment_charge_id"]

    sent = await admin.send(f"/refund {charge}")
    confirm = await admin.wait_for(after=sent)
    assert "400 ⭐" in confirm.text
    assert "$5.00" in confirm.text
    refund_data = confirm.button("Refund").callback_data
    await admin.press(confirm, "Refund")
    done = await admin.wait_for_edit(confirm, lambda m: "refunded" in m.text)
    assert "Wallet balance: $0.00" in done.text
    told = await alice.wait_for(lambda m: "Stars payment was refunded" in m.text)
    assert "400 ⭐" in told.text
    charge_state = emulator.charge(charge)
    assert charge_state is not None
    assert charge_state.refunded
    # Pressed again: Telegram answers CHARGE_ALREADY_REFUNDED and nothing moves.
    await admin.press(done, data=refund_data)
    again = await admin.wait_for_edit(done, lambda m: "already refunded" in m.text)
    assert "already refunded" in again.text
    assert await balance(app, 1001) == 0
    entries = await ledger(app, 1001)
    assert [(e.kind, e.amount) for e in entries] == [("stars", 50_000), ("adjustment", -50_000)]
    payment = await app.repo.payments.get_by_charge_id(charge)
    assert payment is not None
    assert payment.status == "refunded"
    await assert_books_balanced(app)
    no_traceback(admin)
    no_traceback(alice)


async def test_a_refund_is_refused_when_the_balance_was_spent(
    app: App, emulator: BotAPIEmulator
) -> None:
    admin, _ = await start(emulator, app, ADMIN, name="Root", funds=0)
    alice, menu = await start(emulator, app, 1001, name="Alice", funds=0)
    message = await invoice_for(alice, menu, "$1.00 — 80 ⭐")
    update = await alice.pay(message)
    await alice.wait_for(lambda m: "Payment received" in m.text)
    sent = await alice.send("/buy")
    services = await alice.wait_for(after=sent)
    await alice.press(services, "Signal")
    await alice.wait_for(lambda m: m.text.startswith("📱"))
    charge = update["message"]["successful_payment"]["telegram_payment_charge_id"]
    sent = await admin.send(f"/refund {charge}")
    confirm = await admin.wait_for(after=sent)
    await admin.press(confirm, "Refund")
    refused = await admin.wait_for_edit(confirm, lambda m: "Cannot refund" in m.text)
    assert "the wallet holds $0.40" in refused.text
    charge_state = emulator.charge(charge)
    assert charge_state is not None
    assert not charge_state.refunded
    assert await balance(app, 1001) == 4_000
    await assert_books_balanced(app)


async def test_top_up_and_buy_buys_once_after_the_stars_payment(
    app: App, emulator: BotAPIEmulator
) -> None:
    alice, menu = await start(emulator, app, 1001, name="Alice", funds=5_000)
    services = await open_services(alice, menu)
    await alice.press(services, "WhatsApp — $1.85")
    short = await alice.wait_for(lambda m: "Not enough balance" in m.text, after=services)
    await alice.press(short, "⭐ Top up $1.35 and buy (108 ⭐)")
    message = await alice.wait_for(lambda m: m.invoice is not None)
    assert message.invoice is not None
    assert message.invoice.total_amount == 108  # $1.35 × 80 ⭐
    assert message.invoice.title == "Top up $1.35 and buy"
    assert await activations(app, 1001) == []  # nothing bought before the payment

    update = await alice.pay(message)
    card = await alice.wait_for(is_card)
    assert "WhatsApp" in card.text
    paid = await alice.wait_for(lambda m: "Payment received" in m.text)
    assert "+$1.35" in paid.text
    bought = await only_activation(app, 1001)
    assert bought.user_price == 18_500
    assert await balance(app, 1001) == 0

    # Telegram delivers the payment again; the invoice is paid a second time; the first
    # buy button is pressed again: one number, and only the second payment adds balance.
    await handled(emulator, app, emulator.push_update(update))
    await alice.pay(message)
    await wait_until(lambda: len(payments_received(alice)) == 2, what="the second credit")
    again = await alice.press(services, "WhatsApp — $1.85")
    assert again.text is not None
    assert "already bought" in again.text
    assert len(await activations(app, 1001)) == 1
    assert await balance(app, 1001) == 13_500
    kinds = sorted((e.kind, e.amount) for e in await ledger(app, 1001))
    assert kinds == [("purchase", -18_500), ("stars", 13_500), ("stars", 13_500), ("topup", 5_000)]
    assert len([m for m in alice.history if is_card(m)]) == 1
    await assert_books_balanced(app)
    no_traceback(alice)


async def test_top_up_and_buy_asks_again_when_the_balance_already_covers_it(
    app: App, emulator: BotAPIEmulator
) -> None:
    alice, menu = await start(emulator, app, 1001, name="Alice", funds=5_000)
    services = await open_services(alice, menu)
    await alice.press(services, "WhatsApp — $1.85")
    short = await alice.wait_for(lambda m: "Not enough balance" in m.text, after=services)
    # Money arrives another way before the button is pressed: no invoice, just the purchase.
    await fund(app, 1001, 20_000)
    await alice.press(short, "⭐ Top up $1.35 and buy (108 ⭐)")
    card = await alice.wait_for(is_card, after=short)
    assert "WhatsApp" in card.text
    assert not any(m.invoice is not None for m in alice.history)
    assert await balance(app, 1001) == 25_000 - 18_500
    await assert_books_balanced(app)


async def test_top_up_and_buy_asks_again_when_the_price_changed_meanwhile(
    app: App, emulator: BotAPIEmulator, sandbox: Sandbox
) -> None:
    alice, menu = await start(emulator, app, 1001, name="Alice", funds=1_000)
    services = await open_services(alice, menu)
    await alice.press(services, "Signal — $0.60")
    short = await alice.wait_for(lambda m: "Not enough balance" in m.text, after=services)
    await alice.press(short, "⭐ Top up $0.50 and buy (40 ⭐)")
    message = await alice.wait_for(lambda m: m.invoice is not None)
    await sandbox.control.set_stock("Signal", None, 50, price_units=7_000)
    app.catalogue.invalidate()
    await alice.pay(message)
    asked = await alice.wait_for(lambda m: "has changed" in m.text)
    assert "now <b>$0.70</b> (was $0.60)" in asked.html
    assert await activations(app, 1001) == []  # never charged a price not shown
    assert await balance(app, 1001) == 6_000
    await assert_books_balanced(app)


async def test_paysupport_and_terms(app: App, emulator: BotAPIEmulator) -> None:
    alice, menu = await start(emulator, app, 1001, name="Alice", funds=0)
    sent = await alice.send("/paysupport")
    support = await alice.wait_for(after=sent)
    assert "Payment support" in support.text
    sent = await alice.send("/terms")
    terms = await alice.wait_for(after=sent)
    assert "80 ⭐ per 1 USD" in terms.text
    services = await open_services(alice, menu)
    assert "Choose a service" in services.text


async def test_support_contact_is_named_and_admins_find_their_tools(
    tmp_path: Path, sandbox: Sandbox, emulator: BotAPIEmulator
) -> None:
    settings = make_settings(
        tmp_path, sandbox, emulator, admin_ids=str(ADMIN), support_contact="@daisy_help"
    )
    async with running_app(settings, emulator) as app:
        alice, menu = await start(emulator, app, 1001, name="Alice", funds=0)
        sent = await alice.send("/paysupport")
        support = await alice.wait_for(after=sent)
        assert "write to @daisy_help" in support.text
        sent = await alice.send("/help")
        helped = await alice.wait_for(after=sent)
        assert "@daisy_help" in helped.text
        assert "/admin" not in helped.text
        await alice.press(menu, "Balance")
        screen = await alice.wait_for_edit(menu, lambda m: "Balance:" in m.text)
        assert "@daisy_help" in screen.text
        admin = emulator.user(ADMIN, "Ada")
        sent = await admin.send("/help")
        admin_help = await admin.wait_for(after=sent)
        assert "/admin opens the admin panel" in admin_help.text


async def test_without_a_support_contact_users_are_sent_to_an_admin(
    app: App, emulator: BotAPIEmulator
) -> None:
    alice, _ = await start(emulator, app, 1001, name="Alice", funds=0)
    sent = await alice.send("/paysupport")
    support = await alice.wait_for(after=sent)
    assert "write to an admin of this bot" in support.text


async def test_the_stars_flow_in_russian(app: App, emulator: BotAPIEmulator) -> None:
    ivan, menu = await start(emulator, app, 1005, name="Иван", language="ru", funds=0)
    await ivan.press(menu, "Баланс")
    screen = await ivan.wait_for_edit(menu, lambda m: "Баланс:" in m.text)
    assert "звёздами Телеграма" in screen.text
    await ivan.press(screen, "Пополнить")
    amounts = await ivan.wait_for_edit(screen, lambda m: "звёздами" in m.text)
    await ivan.press(amounts, "1,00\xa0$ — 80 ⭐")
    message = await ivan.wait_for(lambda m: m.invoice is not None)
    assert message.invoice is not None
    assert message.invoice.title == "Пополнение баланса на 1,00\xa0$"
    await ivan.pay(message)
    paid = await ivan.wait_for(lambda m: "Оплата получена" in m.text)
    for shown in (screen, amounts, paid):
        words = set(re.findall(r"[A-Za-z]{2,}", shown.text))
        assert words == set(), (shown.text, words)
    assert await balance(app, 1005) == 10_000
