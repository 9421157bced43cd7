"""Callback data is never trusted: forged ids, forged prices, old and unparsable buttons."""

from __future__ import annotations

from bot.app import App
from bot.emulator import BotAPIEmulator
from bot.sandbox import Sandbox
from bot.telegram.callbacks import ActAction, ActCb, BuyCb, MenuAction, MenuCb
from tests.e2e.helpers import (
    QUIET_POLL_SECONDS,
    activations,
    assert_books_balanced,
    balance,
    buy_from,
    ledger,
    no_traceback,
    only_activation,
    open_services,
    poller_looked_once,
    start,
    with_card,
)


async def test_another_users_activation_id_in_forged_data_changes_nothing(
    app_factory, emulator: BotAPIEmulator, sandbox: Sandbox
) -> None:
    # No cancel lock, so a forged cancel would reach the upstream if ownership were not checked.
    async with app_factory(
        cancel_lock_seconds=0, poll_min_interval_seconds=QUIET_POLL_SECONDS
    ) as app:
        bob, bob_menu = await start(emulator, app, 3001, name="Bob")
        bob_card = await buy_from(bob, await open_services(bob, bob_menu), "WhatsApp — $1.85")
        bobs = await with_card(app, bob.id, bob_card)
        # The poller's own look at Bob's number is not Mallory's doing.
        await poller_looked_once(app, bobs.id)
        mallory, _ = await start(emulator, app, 3002, name="Mallory")
        log_before = await sandbox.control.request_log()

        for action in (ActAction.CANCEL, ActAction.REFRESH, ActAction.SHOW):
            forged = ActCb(action=action, id=bobs.id).pack()
            answer = await mallory.press(mallory.messages[-1], data=forged)
            assert answer.text == "This button is not yours."
            assert answer.show_alert

        # Nothing reached the upstream, nothing moved, Bob's card is untouched.
        log_after = await sandbox.control.request_log(after=log_before[-1].seq)
        assert [e.endpoint for e in log_after] == []
        assert await only_activation(app, bob.id) == bobs
        assert await balance(app, bob.id) == 100_000 - 18_500
        assert [e.kind for e in await ledger(app, mallory.id)] == ["topup"]
        assert bob.current(bob_card).edited == 0
        assert not any(m.text.startswith("📱") for m in mallory.messages)
        await assert_books_balanced(app)


async def test_a_forged_price_is_never_charged(bot_app: App, emulator: BotAPIEmulator) -> None:
    alice, menu = await start(emulator, bot_app, 3003)
    forged = BuyCb(country="USA", ref="WhatsApp", pool="", price=1, nonce="forged01").pack()
    await alice.press(menu, data=forged)
    ask = await alice.wait_for(lambda m: "has changed" in m.text, after=menu)
    assert "now $1.85" in ask.text
    assert await activations(bot_app, alice.id) == []
    assert await balance(bot_app, alice.id) == 100_000


async def test_stale_and_unparsable_buttons_get_an_explanation_and_a_fresh_menu(
    bot_app: App, emulator: BotAPIEmulator
) -> None:
    alice, menu = await start(emulator, bot_app, 3004)
    for data in ("v0m:b", "v1a:zz:1", "v1b:USA", "garbage", "v1a:r:notanumber"):
        answer = await alice.press(menu, data=data)
        assert answer.text == "This button is out of date.", data
        fresh = alice.last_message
        assert fresh is not None
        assert fresh.text.startswith("This button is out of date.")
        assert any("Buy a number" in b.text for b in fresh.all_buttons)

    # An activation id that does not exist at all.
    answer = await alice.press(menu, data=ActCb(action=ActAction.CANCEL, id=999_999).pack())
    assert answer.text == "This number is no longer available."
    # An old menu still works: its data is still a valid v1 button.
    answer = await alice.press(menu, data=MenuCb(action=MenuAction.BALANCE).pack())
    assert answer.text is None
    no_traceback(alice)


async def test_a_banned_user_gets_one_polite_line(bot_app: App, emulator: BotAPIEmulator) -> None:
    alice, menu = await start(emulator, bot_app, 3005)
    await bot_app.repo.users.set_banned(alice.id, True)
    sent = await alice.send("/start")
    told = await alice.wait_for(after=sent)
    assert told.text.startswith("Sorry, this account cannot use the bot.")
    assert told.buttons == ()
    answer = await alice.press(menu, "Buy")
    assert answer.text is not None
    assert answer.text.startswith("Sorry")
    assert alice.last_message == told
