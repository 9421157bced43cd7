"""The balance screen (issue 13, point 8): a purchase refused before any money could reach the
upstream must not read like a charge, while the append-only ledger keeps both its entries."""

from __future__ import annotations

from bot.app import App
from bot.emulator import BotAPIEmulator
from bot.sandbox import Sandbox
from tests.conftest import DAISYSIM_KEY
from tests.e2e.helpers import (
    assert_books_balanced,
    balance,
    buy_from,
    ledger,
    no_traceback,
    open_services,
    start,
)

START = 100_000


async def test_a_refused_purchase_is_one_netted_line_on_the_balance_screen(
    bot_app: App, emulator: BotAPIEmulator, sandbox: Sandbox
) -> None:
    alice, menu = await start(emulator, bot_app, 4401, funds=START)
    services = await open_services(alice, menu)
    await sandbox.control.add_fault("purchase", "error", code="OUT_OF_STOCK")
    await alice.press(services, "WhatsApp — $1.85")
    told = await alice.wait_for(lambda m: "you were not charged" in m.text, after=services)
    # A second purchase that goes through: its charge must still show as one.
    await buy_from(alice, told, "Try again — $1.85")

    sent = await alice.send("/balance")
    screen = await alice.wait_for(lambda m: "Balance:" in m.text, after=sent)
    lines = screen.text.splitlines()
    assert any("WhatsApp not bought — nothing charged" in line for line in lines), lines
    assert sum("number purchase" in line for line in lines) == 1, lines
    assert sum("-$1.85" in line for line in lines) == 1, lines
    assert not any("· refund" in line for line in lines), lines
    assert "shown once" in screen.text

    # The ledger still holds the hold and its refund: nothing was rewritten.
    kinds = [(e.kind, e.amount) for e in await ledger(bot_app, alice.id)]
    assert kinds == [
        ("topup", START),
        ("purchase", -18_500),
        ("refund", 18_500),
        ("purchase", -18_500),
    ]
    assert await balance(bot_app, alice.id) == START - 18_500
    account = await sandbox.control.account(DAISYSIM_KEY)
    assert len(account.orders) == 1
    assert account.debits_units - account.refunds_units == account.orders[0].amount_units
    await assert_books_balanced(bot_app)
    no_traceback(alice)
