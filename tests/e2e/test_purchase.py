"""Buying: the one-tap purchase, the card, the code, pools, double taps and changed prices."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest

from bot.app import App
from bot.emulator import BotAPIEmulator
from bot.money import apply_markup
from bot.sandbox import Sandbox
from bot.services.catalogue import MARKUP_FIXED_UNITS_KEY, MARKUP_PERCENT_KEY
from tests.conftest import DAISYSIM_KEY
from tests.e2e.helpers import (
    PHONE,
    activations,
    assert_books_balanced,
    balance,
    buy_from,
    is_card,
    is_code_message,
    ledger,
    no_traceback,
    only_activation,
    open_services,
    start,
    with_card,
)

WHATSAPP_UNITS = 18_500  # the sandbox's WhatsApp price, $1.85


@pytest.mark.both_modes
async def test_new_user_buys_whatsapp_and_gets_the_code(
    bot_app: App, emulator: BotAPIEmulator, sandbox: Sandbox
) -> None:
    alice, menu = await start(emulator, bot_app, 1001, funds=100_000)
    services = await open_services(alice, menu)
    assert "WhatsApp — $1.85" in services.button_texts[0][0]

    card = await buy_from(alice, services, "WhatsApp — $1.85")

    activation = await with_card(bot_app, alice.id, card)
    assert activation.state == "waiting"
    phone = activation.phone_number
    assert phone is not None
    assert PHONE.match(phone)
    # The number is monospace (tap-to-copy) and has a copy button; the price is the button's.
    assert phone in card.entity_texts("code")
    assert alice.copy(card, "Copy number") == phone
    assert "WhatsApp" in card.text
    assert "$1.85" in card.text
    assert "Cancel in 0:0" in " ".join(b.text for b in card.all_buttons)
    # The card is stored on the activation, for the poller to edit later.
    assert (activation.card_chat_id, activation.card_message_id) == (alice.id, card.message_id)

    assert activation.upstream_id is not None
    code = await sandbox.control.deliver_code(activation.upstream_id, "847261")
    answer = await alice.press(card, "Refresh")
    assert answer.text == "The code has arrived!"

    code_message = await alice.wait_for(is_code_message, after=card)
    assert code in code_message.entity_texts("code")
    assert alice.copy(code_message, "Copy code") == code
    updated = alice.current(card)
    assert code in updated.entity_texts("code")
    assert "code received" in updated.text
    assert any("Buy again — $1.85" in b.text for b in updated.all_buttons)

    # Exactly the shown price left the wallet, once.
    assert await balance(bot_app, alice.id) == 100_000 - WHATSAPP_UNITS
    entries = await ledger(bot_app, alice.id)
    assert [(e.kind, e.amount) for e in entries] == [
        ("topup", 100_000),
        ("purchase", -WHATSAPP_UNITS),
    ]
    assert (await only_activation(bot_app, alice.id)).state == "completed"
    await assert_books_balanced(bot_app)
    no_traceback(alice)


async def test_refresh_without_a_code_says_still_waiting(
    bot_app: App, emulator: BotAPIEmulator
) -> None:
    alice, menu = await start(emulator, bot_app, 1002)
    card = await buy_from(alice, await open_services(alice, menu), "Signal — $0.60")
    answer = await alice.press(card, "Refresh")
    assert answer.text == "No SMS yet — still waiting."
    assert (await only_activation(bot_app, alice.id)).state == "waiting"


async def test_pinned_pool_out_of_stock_offers_alternatives_then_cheapest_is_bought(
    bot_app: App, emulator: BotAPIEmulator, sandbox: Sandbox
) -> None:
    alice, menu = await start(emulator, bot_app, 1003)
    services = await open_services(alice, menu)
    await alice.press(services, "WhatsApp 3")
    pools = await alice.wait_for_edit(services)
    labels = [b.text for b in pools.all_buttons]
    assert labels[0] == "⚡ Cheapest available — $1.09"
    assert "Pool 3109 — $1.09 · 4,000 left" in labels
    assert "Pool 2617 — $3.60 · 344 left" in labels

    # The pool empties between showing the picker and the tap.
    await sandbox.control.set_stock("sb_wa", "3109", 0)
    await alice.press(pools, "Pool 3109")
    offer = await alice.wait_for(lambda m: "has just run out" in m.text, after=pools)
    assert "you were not charged" in offer.text
    offered = [b.text for b in offer.all_buttons]
    assert not any("3109" in text for text in offered)
    assert offered[0] == "⚡ Cheapest available — $1.10"
    assert "Pool 2266 — $1.10 · 4,296 left" in offered

    card = await buy_from(alice, offer, "Cheapest available")
    assert "$1.10" in card.text
    bought = (await activations(bot_app, alice.id))[0]
    assert bought.state == "waiting"
    assert bought.provider_id is None
    assert bought.user_price == 11_000
    # The rejected pinned purchase was held and refunded; the cheapest one charged once.
    assert await balance(bot_app, alice.id) == 100_000 - 11_000
    kinds = [(e.kind, e.amount) for e in await ledger(bot_app, alice.id)]
    assert kinds == [
        ("topup", 100_000),
        ("purchase", -10_900),
        ("refund", 10_900),
        ("purchase", -11_000),
    ]
    await assert_books_balanced(bot_app)
    no_traceback(alice)


@pytest.mark.both_modes
async def test_double_tap_on_a_buy_button_buys_one_number(
    bot_app: App, emulator: BotAPIEmulator, sandbox: Sandbox
) -> None:
    alice, menu = await start(emulator, bot_app, 1004)
    services = await open_services(alice, menu)

    first, second = await asyncio.gather(
        alice.press(services, "Telegram — $1.40"), alice.press(services, "Telegram — $1.40")
    )
    assert {first.text, second.text} == {
        "Buying…",
        "This button has already bought a number — see its card.",
    }
    await alice.wait_for(is_card, after=services)
    # A third tap, much later, on the same old button: still nothing more.
    third = await alice.press(services, "Telegram — $1.40")
    assert third.text == "This button has already bought a number — see its card."

    assert len([m for m in alice.messages if is_card(m)]) == 1
    assert len(await activations(bot_app, alice.id)) == 1
    assert await balance(bot_app, alice.id) == 100_000 - 14_000
    account = await sandbox.control.account(DAISYSIM_KEY)
    assert len(account.orders) == 1
    await assert_books_balanced(bot_app)


async def test_buy_again_repeats_the_purchase_in_one_tap(
    bot_app: App, emulator: BotAPIEmulator, sandbox: Sandbox
) -> None:
    alice, menu = await start(emulator, bot_app, 1005)
    card = await buy_from(alice, await open_services(alice, menu), "Signal — $0.60")
    first = await only_activation(bot_app, alice.id)
    assert first.upstream_id is not None
    await sandbox.control.deliver_code(first.upstream_id)
    await alice.press(card, "Refresh")
    done = await alice.wait_for_edit(card, lambda m: "Buy again" in " ".join(m.button_texts[-1]))

    again = await buy_from(alice, done, "Buy again — $0.60")
    assert again.message_id != card.message_id
    assert len(await activations(bot_app, alice.id)) == 2
    # The same "Buy again" twice is still one purchase.
    answer = await alice.press(done, "Buy again")
    assert answer.text == "This button has already bought a number — see its card."
    assert len(await activations(bot_app, alice.id)) == 2
    assert await balance(bot_app, alice.id) == 100_000 - 2 * 6_000


async def test_a_changed_price_is_confirmed_never_charged_silently(
    bot_app: App, emulator: BotAPIEmulator, sandbox: Sandbox
) -> None:
    alice, menu = await start(emulator, bot_app, 1006)
    services = await open_services(alice, menu)
    # The admin raises the markup after the list was shown at $0.60.
    await bot_app.repo.settings.set(MARKUP_PERCENT_KEY, "50")

    tapped = await alice.press(services, "Signal — $0.60")
    # The list may be far up the chat: the toast says where the answer went.
    assert tapped.text == "The answer is in a new message below ⬇️"
    ask = await alice.wait_for(lambda m: "has changed" in m.text, after=services)
    assert "now $0.90" in ask.text
    assert "was $0.60" in ask.text
    assert await activations(bot_app, alice.id) == []
    assert await balance(bot_app, alice.id) == 100_000

    card = await buy_from(alice, ask, "Buy for $0.90")
    assert "$0.90" in card.text
    assert await balance(bot_app, alice.id) == 100_000 - 9_000
    # The prompt's button now says, on its face, that it bought.
    done = await alice.wait_for_edit(ask, lambda m: "Bought" in m.button_texts[0][0])
    assert done.button_texts[0] == ["✅ Bought — see its card"]
    again = await alice.press(done, "Bought")
    assert again.text == "This button has already bought a number — see its card."
    assert await balance(bot_app, alice.id) == 100_000 - 9_000


async def test_markup_is_the_same_number_on_the_button_the_card_and_the_ledger(
    bot_app: App, emulator: BotAPIEmulator
) -> None:
    await bot_app.repo.settings.set(MARKUP_PERCENT_KEY, "12.5")
    await bot_app.repo.settings.set(MARKUP_FIXED_UNITS_KEY, "500")
    price = apply_markup(10_830, Decimal("12.5"), 500, 100)
    assert price == 12_700  # $1.218375 + $0.05, up to the cent
    shown = "$1.27"
    alice, menu = await start(emulator, bot_app, 1007)
    services = await open_services(alice, menu)
    await alice.press(services, "WhatsApp 3")
    pools = await alice.wait_for_edit(services)
    button = f"Pool 3109 — {shown} · 4,000 left"
    assert button in [b.text for b in pools.all_buttons]

    card = await buy_from(alice, pools, button)
    assert f"Price: {shown}" in card.text
    entries = await ledger(bot_app, alice.id)
    assert entries[-1].kind == "purchase"
    assert entries[-1].amount == -price
    activation = await only_activation(bot_app, alice.id)
    assert activation.user_price == price
    assert activation.upstream_price == 10_830
    assert activation.provider_id == "3109"


async def test_markup_from_the_environment(app_factory, emulator: BotAPIEmulator) -> None:
    async with app_factory(markup_percent="10", markup_fixed="0.01") as app:
        alice, menu = await start(emulator, app, 1008)
        services = await open_services(alice, menu)
        price = apply_markup(18_500, Decimal("10"), 100, 100)
        assert price == 20_500  # $2.045 rounded up to the cent
        card = await buy_from(alice, services, "WhatsApp — $2.05")
        assert "Price: $2.05" in card.text
        assert (await ledger(app, alice.id))[-1].amount == -20_500


async def test_a_15_percent_and_5_cent_markup_shows_and_charges_whole_cents(
    app_factory, emulator: BotAPIEmulator
) -> None:
    """$1.85 × 1.15 + $0.05 = $2.1775: the button, the card and the ledger all say $2.18."""
    async with app_factory(markup_percent="15", markup_fixed="0.05") as app:
        alice, menu = await start(emulator, app, 1010)
        services = await open_services(alice, menu)
        card = await buy_from(alice, services, "WhatsApp — $2.18")
        assert "Price: $2.18" in card.text
        assert (await ledger(app, alice.id))[-1].amount == -21_800


async def test_price_step_from_the_environment(app_factory, emulator: BotAPIEmulator) -> None:
    """PRICE_STEP_USD=0.0001 keeps the upstream's 4 decimals; 0.10 rounds up to dimes."""
    async with app_factory(price_step_usd="0.0001") as app:
        alice, menu = await start(emulator, app, 1011)
        services = await open_services(alice, menu)
        assert any(
            b.text.startswith("WhatsApp 3 ") and "$1.083" in b.text for b in services.all_buttons
        )
    async with app_factory(price_step_usd="0.10") as app:
        bob, menu = await start(emulator, app, 1012, name="Bob")
        services = await open_services(bob, menu)
        assert any(
            b.text.startswith("WhatsApp 3 ") and "$1.10" in b.text for b in services.all_buttons
        )


async def test_insufficient_balance_explains_how_to_top_up(
    bot_app: App, emulator: BotAPIEmulator
) -> None:
    alice, menu = await start(emulator, bot_app, 1009, funds=5_000)
    services = await open_services(alice, menu)
    await alice.press(services, "WhatsApp — $1.85")
    told = await alice.wait_for(lambda m: "Not enough balance" in m.text, after=services)
    assert "costs $1.85" in told.text
    assert "balance is $0.50" in told.text
    assert "write to an admin of this bot" in told.text
    assert any("Balance" in b.text for b in told.all_buttons)
    await alice.press(told, "⭐ Top up")
    amounts = await alice.wait_for_edit(told, lambda m: "Telegram Stars" in m.text)
    assert any("80 ⭐" in b.text for b in amounts.all_buttons)
    assert await activations(bot_app, alice.id) == []
    assert await balance(bot_app, alice.id) == 5_000
