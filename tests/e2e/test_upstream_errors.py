"""An upstream error at every step ends in a friendly message with a next step and balanced
books, never a traceback. Faults are injected through the sandbox's control API."""

from __future__ import annotations

import pytest

from bot.app import App
from bot.emulator import BotAPIEmulator
from bot.sandbox import Sandbox
from bot.services.reconcile import reconcile_unknown
from tests.conftest import (
    CANCEL_LOCK_SECONDS,
    DAISYSIM_KEY,
    DAISYSIM_TIMEOUT,
    TIME_SCALE,
    AppFactory,
)
from tests.e2e.helpers import (
    QUIET_POLL_SECONDS,
    activations,
    assert_books_balanced,
    balance,
    bought_and_watched,
    buy_from,
    is_card,
    ledger,
    no_traceback,
    open_services,
    start,
    with_card,
)
from tests.fixtures.waiting import wait_until

START = 100_000


async def test_out_of_stock_offers_to_try_again(
    bot_app: App, emulator: BotAPIEmulator, sandbox: Sandbox
) -> None:
    alice, menu = await start(emulator, bot_app, 4001)
    services = await open_services(alice, menu)
    await sandbox.control.add_fault("purchase", "error", code="OUT_OF_STOCK")
    await alice.press(services, "WhatsApp — $1.85")
    told = await alice.wait_for(lambda m: "has no numbers right now" in m.text, after=services)
    assert "you were not charged" in told.text
    assert await balance(bot_app, alice.id) == START
    await assert_books_balanced(bot_app)

    card = await buy_from(alice, told, "Try again — $1.85")
    assert "$1.85" in card.text
    assert await balance(bot_app, alice.id) == START - 18_500
    await assert_books_balanced(bot_app)
    no_traceback(alice)


async def test_a_rate_limited_purchase_waits_in_line_instead_of_failing(
    bot_app: App, emulator: BotAPIEmulator, sandbox: Sandbox
) -> None:
    # PRODUCT.md section 7: a 429 pauses purchases for the seconds it names, and the buyer
    # keeps their place in the purchase queue (money held) instead of getting an error.
    alice, menu = await start(emulator, bot_app, 4002)
    services = await open_services(alice, menu)
    await sandbox.control.add_fault("purchase", "error", code="RATE_LIMITED", seconds=2)
    await alice.press(services, "Signal — $0.60")
    told = await alice.wait_for(lambda m: "in line" in m.text, after=services)
    assert "1st in line" in told.text
    assert any(b.text == "✖️ Leave the line" for b in told.all_buttons)
    assert await balance(bot_app, alice.id) == START - 6_000

    async def bought() -> bool:
        return (await activations(bot_app, alice.id))[0].state == "waiting"

    await wait_until(bought, timeout=10, what="the purchase served after the pause")
    assert await balance(bot_app, alice.id) == START - 6_000
    assert [e.kind for e in await ledger(bot_app, alice.id)] == ["topup", "purchase"]
    await assert_books_balanced(bot_app)
    no_traceback(alice)


@pytest.mark.parametrize("code", ["PROVIDER_ERROR", "SERVER_ERROR"])
async def test_a_5xx_on_purchase_holds_the_money_until_reconciled_then_refunds(
    bot_app: App, emulator: BotAPIEmulator, sandbox: Sandbox, code: str
) -> None:
    # A 5xx may hide a purchase, so it is never retried: the money stays held, the user is
    # told what happens next, and reconciliation finds no order and refunds.
    alice, menu = await start(emulator, bot_app, 4003)
    services = await open_services(alice, menu)
    await sandbox.control.add_fault("purchase", "error", code=code)
    await alice.press(services, "Telegram — $1.40")
    told = await alice.wait_for(lambda m: "slow to confirm" in m.text, after=services)
    assert "full refund" in told.text
    card = await alice.wait_for(is_card, after=services)
    assert "confirming the purchase" in card.text
    assert await balance(bot_app, alice.id) == START - 14_000

    report = await reconcile_unknown(
        bot_app.repo, bot_app.client, grace_seconds=0, cancel_lock_seconds=CANCEL_LOCK_SECONDS
    )
    assert report.error is None
    assert len(report.refunded) == 1
    assert await balance(bot_app, alice.id) == START
    assert (await activations(bot_app, alice.id))[0].state == "failed"
    account = await sandbox.control.account(DAISYSIM_KEY)
    assert account.orders == []
    await assert_books_balanced(bot_app)
    no_traceback(alice)


async def test_a_timeout_after_the_upstream_sold_ends_with_the_user_holding_the_number(
    bot_app: App, emulator: BotAPIEmulator, sandbox: Sandbox
) -> None:
    alice, menu = await start(emulator, bot_app, 4004)
    services = await open_services(alice, menu)
    await sandbox.control.add_fault("purchase", "delay_after", delay=DAISYSIM_TIMEOUT + 1)
    await alice.press(services, "Signal — $0.60")
    await alice.wait_for(
        lambda m: "slow to confirm" in m.text, after=services, timeout=DAISYSIM_TIMEOUT + 5
    )
    card = await alice.wait_for(is_card, after=services)
    assert (await with_card(bot_app, alice.id, card)).state == "unknown"

    report = await reconcile_unknown(
        bot_app.repo, bot_app.client, grace_seconds=0, cancel_lock_seconds=CANCEL_LOCK_SECONDS
    )
    assert report.error is None
    assert len(report.linked) == 1
    held = (await activations(bot_app, alice.id))[0]
    account = await sandbox.control.account(DAISYSIM_KEY)
    assert [o.activation_id for o in account.orders] == [held.upstream_id]
    assert held.state == "waiting"
    assert await balance(bot_app, alice.id) == START - 6_000
    await assert_books_balanced(bot_app)
    no_traceback(alice)


async def test_refresh_when_the_upstream_fails_keeps_everything_as_it_was(
    app_factory: AppFactory, emulator: BotAPIEmulator, sandbox: Sandbox
) -> None:
    async with app_factory(poll_min_interval_seconds=QUIET_POLL_SECONDS) as app:
        alice, card, before = await bought_and_watched(emulator, app, 4005, "Signal — $0.60")

        # More failures than the client's retries.
        await sandbox.control.add_fault("check-all", "error", code="PROVIDER_ERROR", times=4)
        answer = await alice.press(card, "Refresh")
        assert answer.show_alert
        assert answer.text is not None
        assert answer.text.startswith("The number provider is not answering right now.")
        await sandbox.control.add_fault("check-all", "error", code="RATE_LIMITED", seconds=1)
        answer = await alice.press(card, "Refresh")
        assert answer.text == "The provider is busy; try again in 1 s."

        assert (await activations(app, alice.id))[0] == before
        assert await balance(app, alice.id) == START - 6_000
        await assert_books_balanced(app)
        no_traceback(alice)


async def test_cancel_when_the_upstream_fails_then_succeeds_refunds_once(
    app_factory: AppFactory, emulator: BotAPIEmulator, sandbox: Sandbox
) -> None:
    async with app_factory(
        cancel_lock_seconds=0, poll_min_interval_seconds=QUIET_POLL_SECONDS
    ) as app:
        alice, card, _ = await bought_and_watched(emulator, app, 4006, "WhatsApp — $1.85")
        await sandbox.control.advance_clock(CANCEL_LOCK_SECONDS * TIME_SCALE + 1)

        await sandbox.control.add_fault("cancel", "error", code="PROVIDER_ERROR")
        answer = await alice.press(card, "Cancel and refund")
        assert answer.show_alert
        assert answer.text is not None
        assert answer.text.startswith("The number provider is not answering right now.")
        assert (await activations(app, alice.id))[0].state == "waiting"

        await sandbox.control.add_fault("cancel", "error", code="RATE_LIMITED", seconds=1)
        answer = await alice.press(card, "Cancel and refund")
        assert answer.text == "The provider is busy; try again in 1 s."

        # The upstream cancels but its answer is lost: nothing changes here (the slow call
        # gets the tap answered first, and the outcome follows as a message)...
        await sandbox.control.add_fault("cancel", "delay_after", delay=DAISYSIM_TIMEOUT + 1)
        before = alice.messages[-1].message_id
        answer = await alice.press(card, "Cancel and refund")
        assert answer.text == "Cancelling…"
        await alice.wait_for(
            lambda m: m.text.startswith("The number provider"),
            after=before,
            timeout=DAISYSIM_TIMEOUT + 5,
        )
        assert (await activations(app, alice.id))[0].state == "waiting"
        # ...and the next tap learns the refund the upstream made, and refunds once.
        answer = await alice.press(card, "Cancel and refund")
        assert answer.text == "Cancelled: $1.85 is back on your balance."
        assert await balance(app, alice.id) == START
        kinds = [e.kind for e in await ledger(app, alice.id)]
        assert kinds == ["topup", "purchase", "refund"]
        await assert_books_balanced(app)
        no_traceback(alice)


async def test_the_catalogue_failing_ends_in_a_friendly_message(
    bot_app: App, emulator: BotAPIEmulator, sandbox: Sandbox
) -> None:
    alice, menu = await start(emulator, bot_app, 4007)
    await sandbox.control.add_fault("apps", "error", code="PROVIDER_ERROR", times=4)
    await alice.press(menu, "Buy a number")
    told = await alice.wait_for(lambda m: "not answering" in m.text, after=menu)
    assert "Your money is safe" in told.text
    assert [b.text for b in told.all_buttons] == ["🔄 Try again", "« Menu"]
    # The next step works once the upstream is back.
    services = await open_services(alice, told, "Try again")
    assert "WhatsApp — $1.85" in services.button_texts[0][0]
    no_traceback(alice)


async def test_a_malformed_upstream_answer_is_not_shown_to_the_user(
    bot_app: App, emulator: BotAPIEmulator, sandbox: Sandbox
) -> None:
    alice, menu = await start(emulator, bot_app, 4008)
    await sandbox.control.add_fault("apps", "malformed", variant="wrong_shape", times=4)
    await alice.press(menu, "Buy a number")
    told = await alice.wait_for(lambda m: "not answering" in m.text, after=menu)
    assert "Your money is safe" in told.text
    no_traceback(alice)
