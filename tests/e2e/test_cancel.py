"""Cancel and refund: the countdown, the refund after the lock, and the code that wins the race."""

from __future__ import annotations

import time

import pytest

from bot.app import App
from bot.emulator import BotAPIEmulator
from bot.sandbox import Sandbox
from tests.conftest import DAISYSIM_KEY
from tests.e2e.helpers import (
    QUIET_POLL_SECONDS,
    assert_books_balanced,
    balance,
    buy_from,
    is_code_message,
    ledger,
    no_traceback,
    only_activation,
    open_services,
    poller_looked_once,
    start,
)
from tests.fixtures.waiting import wait_until


@pytest.mark.both_modes
async def test_cancel_too_early_shows_the_countdown_then_refunds_after_the_lock(
    bot_app: App, emulator: BotAPIEmulator, sandbox: Sandbox
) -> None:
    alice, menu = await start(emulator, bot_app, 2001)
    card = await buy_from(alice, await open_services(alice, menu), "WhatsApp — $1.85")
    assert any(b.text.startswith("⏳ Cancel in 0:0") for b in card.all_buttons)

    early = await alice.press(card, "Cancel")
    assert early.text is not None
    assert early.text.startswith("You can cancel in 0:0")
    activation = await only_activation(bot_app, alice.id)
    assert activation.state == "waiting"
    assert await balance(bot_app, alice.id) == 100_000 - 18_500

    assert activation.cancel_after is not None
    cancel_after = activation.cancel_after
    await wait_until(lambda: time.time() >= cancel_after, timeout=10, what="the cancel lock")
    done = await alice.press(card, "Cancel")
    assert done.text == "Cancelled: $1.85 is back on your balance."
    refunded = alice.current(card)
    assert "cancelled — $1.85 refunded" in refunded.text
    assert [b.text for b in refunded.all_buttons] == ["🔁 Buy again — $1.85"]

    assert (await only_activation(bot_app, alice.id)).state == "cancelled"
    assert await balance(bot_app, alice.id) == 100_000
    kinds = [(e.kind, e.amount) for e in await ledger(bot_app, alice.id)]
    assert kinds == [("topup", 100_000), ("purchase", -18_500), ("refund", 18_500)]
    # The upstream refunded us too: its account is back where it started.
    account = await sandbox.control.account(DAISYSIM_KEY)
    assert account.debits_units == account.refunds_units == 18_500

    # A second press on the finished card changes nothing.
    again = await alice.press(refunded, data=f"v1a:c:{activation.id}")
    assert again.text == "This number is finished."
    assert await balance(bot_app, alice.id) == 100_000
    await assert_books_balanced(bot_app)
    no_traceback(alice)


async def test_the_upstreams_too_early_seconds_are_the_truth(
    app_factory, emulator: BotAPIEmulator
) -> None:
    # Our lock says "now", the upstream's says 3 s: its TOO_EARLY seconds drive the countdown.
    async with app_factory(cancel_lock_seconds=0) as app:
        alice, menu = await start(emulator, app, 2002)
        card = await buy_from(alice, await open_services(alice, menu), "Signal — $0.60")
        assert "✖️ Cancel and refund" in [b.text for b in card.all_buttons]

        answer = await alice.press(card, "Cancel and refund")
        assert answer.text is not None
        assert answer.text.startswith("You can cancel in 0:0")
        redrawn = await alice.wait_for_edit(card)
        assert any(b.text.startswith("⏳ Cancel in 0:0") for b in redrawn.all_buttons)
        assert (await only_activation(app, alice.id)).state == "waiting"
        assert await balance(app, alice.id) == 100_000 - 6_000
        await assert_books_balanced(app)


async def test_code_received_during_cancel_shows_the_code_and_keeps_the_charge(
    app_factory, emulator: BotAPIEmulator, sandbox: Sandbox
) -> None:
    # The poller looks once, then not again for an hour: the user's Cancel, not the poller,
    # is the one that hears of the code (the full app polls every 0.1 s otherwise).
    async with app_factory(
        cancel_lock_seconds=0, poll_min_interval_seconds=QUIET_POLL_SECONDS
    ) as app:
        alice, menu = await start(emulator, app, 2003)
        card = await buy_from(alice, await open_services(alice, menu), "Telegram — $1.40")
        activation = await only_activation(app, alice.id)
        assert activation.upstream_id is not None
        await poller_looked_once(app, activation.id)
        # The SMS lands upstream; before the bot hears of it, the user taps cancel.
        code = await sandbox.control.deliver_code(activation.upstream_id)

        answer = await alice.press(card, "Cancel and refund")
        assert answer.text == "Too late to cancel: the code has already arrived."
        code_message = await alice.wait_for(is_code_message, after=card)
        assert code in code_message.entity_texts("code")
        assert code in alice.current(card).entity_texts("code")

        final = await only_activation(app, alice.id)
        assert final.state == "completed"
        assert final.code == code
        kinds = [e.kind for e in await ledger(app, alice.id)]
        assert kinds == ["topup", "purchase"]
        assert await balance(app, alice.id) == 100_000 - 14_000
        await assert_books_balanced(app)
        no_traceback(alice)
