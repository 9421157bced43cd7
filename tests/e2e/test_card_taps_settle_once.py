"""Refresh and Cancel under races and faults (issue 13, points 1, 2 and 5): a code is told in
the transaction that stores it and by whoever stored it, only once; a slow cancel answers the
tap first and refunds at once; a tap that can no longer be answered is no error."""

from __future__ import annotations

import asyncio
import contextlib
import time

from bot.app import App
from bot.emulator import BotAPIEmulator, EmulatedUser
from bot.sandbox import Sandbox
from storage.db import Transaction
from storage.models import Activation
from tests.conftest import DAISYSIM_KEY, AppFactory
from tests.e2e.helpers import (
    QUIET_POLL_SECONDS,
    activations,
    assert_books_balanced,
    balance,
    bought_and_watched,
    buy_from,
    is_code_message,
    ledger,
    no_traceback,
    open_services,
    start,
    with_card,
)
from tests.fixtures.waiting import wait_until

START = 100_000
WHATSAPP = 18_500
GENERIC_ERROR = "Something went wrong on our side"


def code_messages(user: EmulatedUser) -> list[str]:
    return [m.text for m in user.history if is_code_message(m)]


WHATSAPP_BUTTON = "WhatsApp — $1.85"


async def settled_down(app: App) -> None:
    """No update is being handled and the outbox has sent everything it holds."""

    async def quiet() -> bool:
        pending = (await app.repo.outbox.count_by_state()).get("pending", 0)
        return app.inflight.running == 0 and pending == 0

    await wait_until(quiet, what="the handlers and the outbox to be done")


async def test_a_code_refresh_finds_is_stored_only_together_with_its_message(
    app_factory: AppFactory, emulator: BotAPIEmulator, sandbox: Sandbox
) -> None:
    # Point 1: had the code been stored and its message sent afterwards, a crash in between
    # would lose the message for good. Queuing it fails here, inside the settling
    # transaction, as a crash would: the code must not be stored without it.
    async with app_factory(poll_min_interval_seconds=QUIET_POLL_SECONDS) as app:
        alice, card, activation = await bought_and_watched(
            emulator, app, 13_001, "WhatsApp — $1.85"
        )
        assert activation.upstream_id is not None
        code = await sandbox.control.deliver_code(activation.upstream_id)

        notifier = app.notifier
        queue_code = notifier.code_arrived

        async def dies(tx: Transaction, activation: Activation) -> None:
            raise RuntimeError("the process died while queuing the code message")

        notifier.code_arrived = dies  # type: ignore[method-assign]
        try:
            await alice.press(card, "Refresh")
            await alice.wait_for(lambda m: GENERIC_ERROR in m.text, after=card)
        finally:
            notifier.code_arrived = queue_code  # type: ignore[method-assign]
        assert (await activations(app, alice.id))[0].state == "waiting"
        assert code_messages(alice) == []

        # The next look stores it, with its message.
        answer = await alice.press(card, "Refresh")
        assert answer.text == "The code has arrived!"
        message = await alice.wait_for(is_code_message, after=card)
        assert code in message.entity_texts("code")
        await settled_down(app)
        assert len(code_messages(alice)) == 1
        done = (await activations(app, alice.id))[0]
        assert (done.state, done.code) == ("completed", code)
        assert [e.kind for e in await ledger(app, alice.id)] == ["topup", "purchase"]
        assert await balance(app, alice.id) == START - WHATSAPP
        await assert_books_balanced(app)


async def test_a_cancel_that_loses_to_a_delivered_code_does_not_announce_it_again(
    app_factory: AppFactory, emulator: BotAPIEmulator, sandbox: Sandbox
) -> None:
    # Point 2: the Cancel read the number as waiting; while its upstream call is on the way a
    # Refresh stores the code and announces it. The Cancel then hears CODE_RECEIVED: the code
    # is already told, so it says nothing more.
    async with app_factory(
        cancel_lock_seconds=0, poll_min_interval_seconds=QUIET_POLL_SECONDS
    ) as app:
        alice, card, activation = await bought_and_watched(
            emulator, app, 13_002, "WhatsApp — $1.85"
        )
        assert activation.upstream_id is not None
        code = await sandbox.control.deliver_code(activation.upstream_id)

        await sandbox.control.add_fault("cancel", "delay_before", delay=1.5)
        cancelling = asyncio.create_task(alice.press(card, "Cancel and refund"))

        async def cancel_in_flight() -> bool:
            return await sandbox.control.faults() == []

        await wait_until(cancel_in_flight, what="the cancel to reach the upstream")
        answer = await alice.press(card, "Refresh")
        assert answer.text == "The code has arrived!"
        await alice.wait_for(is_code_message, after=card)

        await cancelling
        await settled_down(app)
        [told] = code_messages(alice)
        assert code in told
        assert code in alice.current(card).entity_texts("code")
        done = (await activations(app, alice.id))[0]
        assert (done.state, done.code) == ("completed", code)
        assert [e.kind for e in await ledger(app, alice.id)] == ["topup", "purchase"]
        await assert_books_balanced(app)
        no_traceback(alice)


async def test_a_slow_cancel_answers_the_tap_first_and_refunds_at_once(
    bot_app: App, emulator: BotAPIEmulator, sandbox: Sandbox
) -> None:
    # Point 5: the upstream takes its time (still within the client's timeout); the tap is
    # answered before Telegram gives up on it, and the card then shows the refund.
    alice, menu = await start(emulator, bot_app, 13_003)
    card = await buy_from(alice, await open_services(alice, menu), "WhatsApp — $1.85")
    activation = await with_card(bot_app, alice.id, card)
    assert activation.cancel_after is not None
    cancel_after = activation.cancel_after
    await wait_until(lambda: time.time() >= cancel_after, timeout=10, what="the cancel lock")

    await sandbox.control.add_fault("cancel", "delay_before", delay=1.5)
    # The countdown on the card may not have turned into "Cancel and refund" yet.
    answer = await alice.press(card, "Cancel")
    assert answer.text == "Cancelling…"
    refunded = await alice.wait_for_edit(card, lambda m: "cancelled — $1.85 refunded" in m.text)
    assert [b.text for b in refunded.all_buttons] == ["🔁 Buy again — $1.85"]

    assert (await activations(bot_app, alice.id))[0].state == "cancelled"
    assert await balance(bot_app, alice.id) == START
    kinds = [(e.kind, e.amount) for e in await ledger(bot_app, alice.id)]
    assert kinds == [("topup", START), ("purchase", -WHATSAPP), ("refund", WHATSAPP)]
    account = await sandbox.control.account(DAISYSIM_KEY)
    assert account.debits_units == account.refunds_units == WHATSAPP
    await settled_down(bot_app)
    assert not any(GENERIC_ERROR in m.text for m in alice.history)
    await assert_books_balanced(bot_app)
    no_traceback(alice)


async def test_a_tap_that_can_no_longer_be_answered_is_no_error_to_the_user(
    app_factory: AppFactory, emulator: BotAPIEmulator, sandbox: Sandbox
) -> None:
    # Point 5: Telegram refuses an answer that comes too late ("query is too old"). The work
    # is done and the card shows it; the user gets no "something went wrong".
    async with app_factory(poll_min_interval_seconds=QUIET_POLL_SECONDS) as app:
        alice, card, activation = await bought_and_watched(
            emulator, app, 13_004, "WhatsApp — $1.85"
        )
        assert activation.upstream_id is not None
        code = await sandbox.control.deliver_code(activation.upstream_id)

        emulator.callback_query_ttl = 0.3
        await sandbox.control.add_fault("check-all", "delay_before", delay=0.8)
        pressing = asyncio.create_task(alice.press(card, "Refresh", timeout=30))
        try:

            def refused() -> bool:
                return any(call.ok is False for call in emulator.calls_to("answerCallbackQuery"))

            await wait_until(refused, what="the late answer to be refused")
            await alice.wait_for(is_code_message, after=card)
            await settled_down(app)
        finally:
            pressing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pressing
        assert not any(GENERIC_ERROR in m.text for m in alice.history)
        assert [code in m for m in code_messages(alice)] == [True]
        assert (await activations(app, alice.id))[0].state == "completed"
        assert await balance(app, alice.id) == START - WHATSAPP
        await assert_books_balanced(app)
        no_traceback(alice)
