"""Maintenance mode end to end: an admin pauses sales from the panel (or MAINTENANCE=1 forces
it); new purchases, Stars payments and group funding are refused with a friendly notice and
the estimate, nothing is charged and nothing is bought upstream, while codes, cancels and
refunds of numbers bought before keep working. Real app, Bot API emulator, sandbox, SQLite;
each test reads the chats, the ledger and the sandbox's own record of purchases.
"""

from __future__ import annotations

import contextlib
import copy
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bot.app import App
from bot.emulator import BotAPIEmulator, ChatMessage, EmulatedGroup, EmulatedUser, PaymentDeclined
from bot.sandbox import Sandbox
from bot.services.maintenance import MAINTENANCE_KEY
from bot.telegram.callbacks import AdminAction, AdminCb
from tests.conftest import DAISYSIM_KEY, make_settings, running_app
from tests.e2e.helpers import (
    assert_books_balanced,
    balance,
    buy_from,
    is_code_message,
    ledger,
    no_traceback,
    open_services,
    start,
    with_card,
)
from tests.fixtures.waiting import wait_until

ADMIN = 900
GROUP_ID = -100700
SIGNAL = "Signal — $0.60"
PAUSED = "Short maintenance break"


@contextlib.asynccontextmanager
async def admin_app(
    tmp_path: Path, sandbox: Sandbox, emulator: BotAPIEmulator, **overrides: Any
) -> AsyncIterator[App]:
    overrides.setdefault("admin_ids", str(ADMIN))
    settings = make_settings(tmp_path, sandbox, emulator, **overrides)
    async with running_app(settings, emulator) as app:
        yield app


@pytest.fixture
async def app(tmp_path: Path, sandbox: Sandbox, emulator: BotAPIEmulator) -> AsyncIterator[App]:
    # No cancel lock of our own: the upstream's (a sandbox clock jump away) is the one tested.
    async with admin_app(tmp_path, sandbox, emulator, cancel_lock_seconds=0) as running:
        yield running


async def say(user: EmulatedUser, text: str, *, chat: EmulatedGroup | None = None) -> ChatMessage:
    """Send a message and return the bot's first answer to it (in the group, with `chat`)."""
    sent = await user.send(text, chat=chat)
    return await (user if chat is None else chat).wait_for(after=sent)


async def maintenance_screen(admin: EmulatedUser) -> ChatMessage:
    panel = await say(admin, "/admin")
    await admin.press(panel, "🛠 Maintenance")
    return await admin.wait_for_edit(panel, lambda m: "Maintenance mode:" in m.text)


async def switch_on(admin: EmulatedUser, duration: str) -> ChatMessage:
    """From the panel: 🛠 Maintenance, then `duration` ("30 min", "Until I turn it off")."""
    screen = await maintenance_screen(admin)
    assert "Maintenance mode: off" in screen.text
    await admin.press(screen, duration)
    return await admin.wait_for_edit(screen, lambda m: "Saved." in m.text)


async def upstream_orders(sandbox: Sandbox) -> int:
    """Purchases the upstream account made, by the sandbox's own books."""
    return len((await sandbox.control.account(DAISYSIM_KEY)).orders)


async def purchase_requests(sandbox: Sandbox) -> int:
    """Purchase calls that reached the upstream at all, refused or not."""
    return (await sandbox.control.stats()).requests.get("purchase", 0)


async def tap_while_paused(user: EmulatedUser, message: ChatMessage, label: str) -> ChatMessage:
    """Tap a buying button and return the notice that comes instead of a card."""
    before = user.messages[-1].message_id
    await user.press(message, label)
    notice = await user.wait_for(lambda m: PAUSED in m.text, after=before)
    assert not any(m.text.startswith("📱") for m in user.messages if m.message_id > before)
    return notice


async def test_a_pause_from_the_panel_stops_buying_but_codes_and_cancels_work(
    app: App, emulator: BotAPIEmulator, sandbox: Sandbox
) -> None:
    admin, _ = await start(emulator, app, ADMIN, name="Root", funds=0)
    alice, menu = await start(emulator, app, 1001, name="Alice")
    services = await open_services(alice, menu)
    first = await buy_from(alice, services, SIGNAL)
    coded = await with_card(app, alice.id, first)
    second = await buy_from(alice, await say(alice, "/buy"), SIGNAL)
    cancelled = await with_card(app, alice.id, second)
    assert await upstream_orders(sandbox) == 2
    requests = await purchase_requests(sandbox)

    saved = await switch_on(admin, "30 min")
    assert "Maintenance mode: on" in saved.text
    assert "about 30 min left" in saved.text
    assert "✅ Turn it off" in str(saved.button_texts)

    notice = await tap_while_paused(alice, await say(alice, "/buy"), SIGNAL)
    assert "Back in about 30 min." in notice.text
    assert "codes still arrive" in notice.text
    # Nothing charged, nothing bought: no activation, no ledger entry, no upstream call.
    assert await balance(app, alice.id) == 100_000 - 2 * 6_000
    assert len(await app.repo.activations.last_for_user(alice.id, 10)) == 2
    assert await purchase_requests(sandbox) == requests
    assert await upstream_orders(sandbox) == 2

    # A number bought before the pause still gets its code.
    assert coded.upstream_id is not None
    await sandbox.control.deliver_code(coded.upstream_id, "424242")
    code = await alice.wait_for(is_code_message, after=second, timeout=10)
    assert "424242" in code.entity_texts("code")
    # And the other one still cancels, with its refund.
    await sandbox.control.advance_clock(200)  # past the upstream's 3-minute cancel lock
    answer = await alice.press(second, "Cancel")
    assert answer.text == "Cancelled: $0.60 is back on your balance."
    stored = await app.repo.activations.get(cancelled.id)
    assert stored is not None
    assert stored.state == "cancelled"
    assert await balance(app, alice.id) == 100_000 - 6_000
    # "Buy again" on the cancelled card is a new purchase: paused too.
    again = alice.current(second)
    notice = await tap_while_paused(alice, again, "Buy again")
    assert "Back in about" in notice.text
    assert await upstream_orders(sandbox) == 2

    # Turned off: the very same button buys again.
    screen = await maintenance_screen(admin)
    await admin.press(screen, "Turn it off")
    off = await admin.wait_for_edit(screen, lambda m: "Saved." in m.text)
    assert "Maintenance mode: off" in off.text
    await buy_from(alice, again, "Buy again")
    assert await upstream_orders(sandbox) == 3
    kinds = [(e.kind, e.amount) for e in await ledger(app, alice.id)]
    assert kinds == [
        ("topup", 100_000),
        ("purchase", -6_000),
        ("purchase", -6_000),
        ("refund", 6_000),
        ("purchase", -6_000),
    ]
    await assert_books_balanced(app)
    no_traceback(alice)
    no_traceback(admin)


async def test_stars_are_refused_at_pre_checkout_and_the_amounts_say_paused(
    app: App, emulator: BotAPIEmulator
) -> None:
    admin, _ = await start(emulator, app, ADMIN, name="Root", funds=0)
    alice, menu = await start(emulator, app, 1001, name="Alice", funds=0)
    # An invoice and an amounts screen from before the pause.
    await alice.press(menu, "Balance")
    screen = await alice.wait_for_edit(menu, lambda m: "Balance:" in m.text)
    await alice.press(screen, "Top up")
    amounts = await alice.wait_for_edit(screen, lambda m: "Telegram Stars" in m.text)
    amount_data = amounts.button("$1.00 — 80 ⭐").callback_data
    await alice.press(amounts, "$1.00 — 80 ⭐")
    invoice = await alice.wait_for(lambda m: m.invoice is not None)

    saved = await switch_on(admin, "Until I turn it off")
    assert "until you turn it off" in saved.text

    with pytest.raises(PaymentDeclined) as declined:
        await alice.pay(invoice)
    assert declined.value.error_message == (
        "Payments are paused for a short maintenance break, and nothing was charged. "
        "Please try again a little later."
    )
    assert await app.repo.payments.list_for_user(alice.id) == []
    assert await balance(app, alice.id) == 0
    # The amount button from before gets the notice, not a new invoice.
    invoices = len([m for m in alice.history if m.invoice is not None])
    await alice.press(amounts, data=amount_data)
    paused = await alice.wait_for_edit(amounts, lambda m: PAUSED in m.text)
    assert "We'll be back as soon as we can." in paused.text
    # The Balance screen's Top up says paused too.
    await alice.press(paused, "Balance")
    screen = await alice.wait_for_edit(paused, lambda m: "Balance:" in m.text)
    await alice.press(screen, "Top up")
    topup = await alice.wait_for_edit(screen, lambda m: PAUSED in m.text)
    assert "⭐" not in str(topup.button_texts)
    assert len([m for m in alice.history if m.invoice is not None]) == invoices

    # With an estimate, the pre-checkout refusal names it.
    screen = await maintenance_screen(admin)
    await admin.press(screen, "60 min")
    await admin.wait_for_edit(screen, lambda m: "about 60 min left" in m.text)
    with pytest.raises(PaymentDeclined) as declined:
        await alice.pay(invoice)
    assert declined.value.error_message.endswith("Please try again in about 60 min.")
    assert await balance(app, alice.id) == 0
    assert await ledger(app, alice.id) == []
    await assert_books_balanced(app)
    no_traceback(alice)


async def test_a_payment_approved_before_the_pause_is_still_credited(
    app: App, emulator: BotAPIEmulator
) -> None:
    """Telegram takes the Stars once the bot said yes at pre-checkout; the successful_payment
    that lands after the pause began must be credited, not refused."""
    admin, _ = await start(emulator, app, ADMIN, name="Root", funds=0)
    alice, menu = await start(emulator, app, 1001, name="Alice", funds=0)
    await alice.press(menu, "Balance")
    screen = await alice.wait_for_edit(menu, lambda m: "Balance:" in m.text)
    await alice.press(screen, "Top up")
    amounts = await alice.wait_for_edit(screen, lambda m: "Telegram Stars" in m.text)
    await alice.press(amounts, "$1.00 — 80 ⭐")
    invoice = await alice.wait_for(lambda m: m.invoice is not None)
    update = await alice.pay(invoice)
    await alice.wait_for(lambda m: "Payment received" in m.text)

    await switch_on(admin, "30 min")
    # A second payment of the invoice, approved before the pause, completes during it.
    late = copy.deepcopy(update)
    late["message"]["successful_payment"]["telegram_payment_charge_id"] += "-late"
    emulator.push_update(late)
    await wait_until(
        lambda: len([m for m in alice.history if "Payment received" in m.text]) == 2,
        what="the late payment credited",
    )
    assert await balance(app, alice.id) == 20_000
    assert [(e.kind, e.amount) for e in await ledger(app, alice.id)] == [
        ("stars", 10_000),
        ("stars", 10_000),
    ]
    assert len(await app.repo.payments.list_for_user(alice.id)) == 2
    await assert_books_balanced(app)
    no_traceback(alice)


async def in_group(user: EmulatedUser, group: EmulatedGroup, text: str) -> ChatMessage:
    return await say(user, text, chat=group)


async def group_balance(app: App) -> int:
    wallet = await app.repo.wallets.get_by_owner("group", GROUP_ID)
    assert wallet is not None
    return wallet.balance


async def test_group_funding_and_group_buying_are_refused(
    app: App, emulator: BotAPIEmulator, sandbox: Sandbox
) -> None:
    admin, _ = await start(emulator, app, ADMIN, name="Root", funds=0)
    alice, _ = await start(emulator, app, 1001, name="Alice")
    group = emulator.group(GROUP_ID, "Team")
    group.add_member(alice, "creator")
    await group.add_bot(by=alice)
    await group.wait_for(lambda m: "own wallet" in m.text)
    await in_group(alice, group, "/fund 2")
    assert await group_balance(app) == 20_000
    # Panels from before the pause, with their buttons.
    panel = await in_group(alice, group, "/wallet")
    await alice.press(panel, "Fund from my balance")
    amounts = await group.wait_for_edit(panel, lambda m: "Move money" in m.text)
    services = await in_group(alice, group, "/buy")

    await switch_on(admin, "30 min")

    reply = await in_group(alice, group, "/fund 5")
    assert PAUSED in reply.text
    assert "Back in about 30 min." in reply.text
    await alice.press(amounts, "$5.00")
    refused = await group.wait_for_edit(amounts, lambda m: PAUSED in m.text)
    assert "moved" not in refused.text
    # Stars for the group: no invoice.
    panel = await in_group(alice, group, "/wallet")
    await alice.press(panel, "Fund with Stars")
    stars = await group.wait_for_edit(panel, lambda m: "Choose an amount" in m.text)
    before = group.messages[-1].message_id
    await alice.press(stars, "$1.00 — 80 ⭐")
    await group.wait_for(lambda m: PAUSED in m.text, after=before)
    assert not [m for m in group.history if m.invoice is not None]
    # Buying from the group wallet is paused like any purchase.
    before = group.messages[-1].message_id
    await alice.press(services, SIGNAL)
    await group.wait_for(lambda m: PAUSED in m.text, after=before)
    assert await upstream_orders(sandbox) == 0
    assert await group_balance(app) == 20_000
    assert await balance(app, alice.id) == 100_000 - 20_000
    await assert_books_balanced(app)
    no_traceback(alice)


async def test_the_pause_survives_a_restart(
    tmp_path: Path, sandbox: Sandbox, emulator: BotAPIEmulator
) -> None:
    async with admin_app(tmp_path, sandbox, emulator) as first:
        admin, _ = await start(emulator, first, ADMIN, name="Root", funds=0)
        alice, _ = await start(emulator, first, 1001, name="Alice")
        services = await say(alice, "/buy")
        await switch_on(admin, "120 min")
    # The same database, a new app: still paused, with the estimate counting down.
    async with admin_app(tmp_path, sandbox, emulator) as second:
        notice = await tap_while_paused(alice, services, SIGNAL)
        assert "Back in about 120 min." in notice.text
        screen = await maintenance_screen(admin)
        assert "Maintenance mode: on" in screen.text
        assert await upstream_orders(sandbox) == 0
        assert await balance(second, alice.id) == 100_000
        await assert_books_balanced(second)
        no_traceback(alice)
        no_traceback(admin)


async def test_a_timed_pause_ends_by_itself(
    app: App, emulator: BotAPIEmulator, sandbox: Sandbox
) -> None:
    alice, menu = await start(emulator, app, 1001, name="Alice")
    services = await open_services(alice, menu)
    maintenance = app.maintenance
    assert maintenance is not None
    # The panel's shortest estimate is 30 min; the switch itself takes any (here 1.2 s).
    status = await maintenance.turn_on(0.02)
    until = status.until
    assert until is not None
    notice = await tap_while_paused(alice, services, SIGNAL)
    assert "Back in about 1 min." in notice.text
    assert await upstream_orders(sandbox) == 0
    await wait_until(lambda: time.time() > until, timeout=5, what="the estimate to pass")
    # Nobody turned it off: the next tap buys.
    card = await buy_from(alice, services, SIGNAL)
    assert "+1940" in card.text
    assert not (await maintenance.status()).on
    assert await upstream_orders(sandbox) == 1
    assert await balance(app, alice.id) == 100_000 - 6_000
    await assert_books_balanced(app)
    no_traceback(alice)


async def test_maintenance_1_forces_it_whatever_the_panel_says(
    tmp_path: Path, sandbox: Sandbox, emulator: BotAPIEmulator
) -> None:
    async with admin_app(tmp_path, sandbox, emulator, maintenance=True) as app:
        admin, _ = await start(emulator, app, ADMIN, name="Root", funds=0)
        alice, menu = await start(emulator, app, 1001, name="Alice")
        screen = await maintenance_screen(admin)
        assert "Maintenance mode: on" in screen.text
        assert "Forced on by MAINTENANCE=1" in screen.text
        # Nothing to switch: only the way back.
        assert [b.text for b in screen.all_buttons] == ["« Admin panel"]
        # A turn-off button from another screen (or forged) does not reopen the shop.
        off = AdminCb(action=AdminAction.MAINTENANCE_OFF).pack()
        await admin.press(screen, data=off)
        still = await admin.wait_for_edit(screen, lambda m: "Saved." in m.text)
        assert "Forced on by MAINTENANCE=1" in still.text
        # Nor does a duration button from a panel shown before MAINTENANCE=1 was set store a
        # switch the forced screen would hide (and that would outlive MAINTENANCE=1).
        manual = AdminCb(action=AdminAction.MAINTENANCE_ON, units=0).pack()
        await admin.press(still, data=manual)
        assert await app.repo.settings.get(MAINTENANCE_KEY) is None
        services = await open_services(alice, menu)
        notice = await tap_while_paused(alice, services, SIGNAL)
        assert "We'll be back as soon as we can." in notice.text
        assert await upstream_orders(sandbox) == 0
        assert await balance(app, alice.id) == 100_000
        await assert_books_balanced(app)
        no_traceback(alice)
        no_traceback(admin)
    # MAINTENANCE unset and restarted: open again.
    async with admin_app(tmp_path, sandbox, emulator) as app:
        screen = await maintenance_screen(admin)
        assert "Maintenance mode: off" in screen.text
        await buy_from(alice, services, SIGNAL)
        assert await upstream_orders(sandbox) == 1
        await assert_books_balanced(app)
        no_traceback(alice)
