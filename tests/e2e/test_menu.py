"""/start and the menu, My numbers, Balance, search, favourites, sandbox mode, start-up."""

from __future__ import annotations

import asyncio

import pytest

from bot.app import App
from bot.emulator import BotAPIEmulator
from bot.sandbox import Sandbox
from tests.conftest import running_app
from tests.e2e.helpers import (
    buy_from,
    fund,
    is_code_message,
    ledger,
    no_traceback,
    open_services,
    start,
    with_card,
)
from tests.fixtures.waiting import wait_until


async def test_start_shows_the_menu_and_registers_commands_in_both_languages(
    bot_app: App, emulator: BotAPIEmulator
) -> None:
    alice, menu = await start(emulator, bot_app, 6001, funds=0)
    assert menu.text.startswith("Virtual US numbers for SMS codes")
    assert "Balance: $0.00" in menu.text
    assert "SANDBOX" not in menu.text
    assert menu.button_texts == [
        ["🛒 Buy a number"],
        ["📱 My numbers", "💰 Balance"],
        ["❓ Help", "🌐 Language"],
    ]
    english = {c["command"]: c["description"] for c in emulator.commands()}
    russian = {c["command"]: c["description"] for c in emulator.commands(language_code="ru")}
    assert english["buy"] == "Buy a number"
    assert russian["buy"] == "Купить номер"
    listed = {"start", "buy", "numbers", "balance", "help", "settings", "paysupport", "terms"}
    assert set(english) == set(russian) == listed

    await alice.press(menu, "Help")
    help_screen = await alice.wait_for_edit(menu)
    assert "How it works" in help_screen.text
    assert "0:03" in help_screen.text
    await alice.press(help_screen, "Menu")
    back = await alice.wait_for_edit(help_screen)
    assert back.text == menu.text
    # Anything that is not a command or text gets the menu too.
    sent = await alice.send("/nonsense")
    assert (await alice.wait_for(after=sent)).text == menu.text
    no_traceback(alice)


async def test_balance_shows_the_last_ledger_entries(
    bot_app: App, emulator: BotAPIEmulator
) -> None:
    alice, menu = await start(emulator, bot_app, 6002, funds=50_000)
    await buy_from(alice, await open_services(alice, menu), "Signal — $0.60")
    sent = await alice.send("/balance")
    screen = await alice.wait_for(after=sent)
    assert screen.text.startswith("Balance: $4.40")
    lines = screen.text.splitlines()
    assert any(line.endswith("· -$0.60 · number purchase") for line in lines)
    assert any(line.endswith("· +$5.00 · top-up") for line in lines)
    assert "write to an admin of this bot" in screen.text
    assert len(await ledger(bot_app, alice.id)) == 2


async def test_my_numbers_lists_active_first_and_filters_by_status(
    bot_app: App, emulator: BotAPIEmulator, sandbox: Sandbox
) -> None:
    alice, menu = await start(emulator, bot_app, 6003)
    first = await buy_from(alice, await open_services(alice, menu), "Signal — $0.60")
    done = await with_card(bot_app, alice.id, first)
    assert done.upstream_id is not None
    code = await sandbox.control.deliver_code(done.upstream_id)
    await alice.press(first, "Refresh")
    # The code comes through the outbox, a moment after the tap is answered.
    await alice.wait_for(is_code_message, after=first)
    sent = await alice.send("/buy")
    services = await alice.wait_for(after=sent)
    second = await buy_from(alice, services, "Telegram — $1.40")
    await with_card(bot_app, alice.id, second)

    sent = await alice.send("/numbers")
    screen = await alice.wait_for(after=sent)
    text = screen.text
    assert text.index("Active") < text.index("Telegram") < text.index("History")
    assert text.index("History") < text.index("Signal")
    assert code in screen.entity_texts("code")

    await alice.press(screen, "With code")
    completed = await alice.wait_for_edit(screen)
    assert "Signal" in completed.text
    assert "Telegram" not in completed.text
    await alice.press(completed, "Active")
    active = await alice.wait_for_edit(completed)
    assert "Telegram" in active.text
    assert "Signal" not in active.text

    # Reopening a card sends a fresh copy, which becomes the card the bot edits.
    await alice.press(active, "📱 Telegram")
    reopened = await alice.wait_for(lambda m: m.text.startswith("📱"), after=active)
    assert (await with_card(bot_app, alice.id, reopened)).service_name == "Telegram"


async def test_search_by_typing_and_favourites_first(
    bot_app: App, emulator: BotAPIEmulator
) -> None:
    alice, menu = await start(emulator, bot_app, 6004)
    sent = await alice.send("sign")
    found = await alice.wait_for(after=sent)
    assert found.text == "Services matching “sign”:"
    # Full-width rows: the name and price alone, nothing sharing the row.
    assert found.button_texts[0] == ["Signal — $0.60"]

    services = await open_services(alice, menu)
    assert all(len(row) == 1 for row in services.button_texts[:-2])
    await alice.press(services, "⭐ Favourites")
    editor = await alice.wait_for_edit(services, lambda m: m.text.startswith("Favourites"))
    rows_before = editor.button_texts
    answer = await alice.press(editor, "☆ Signal")
    assert answer.text == "Added to favourites."
    starred = await alice.wait_for_edit(editor, lambda m: ["⭐ Signal"] in m.button_texts)
    # The rows stay where they were; only Signal's star changed.
    assert [r for r in starred.button_texts if r != ["⭐ Signal"]] == [
        r for r in rows_before if r != ["☆ Signal"]
    ]
    await alice.press(starred, "✅ Done")
    listed = await alice.wait_for_edit(starred, lambda m: m.text.startswith("Choose a service"))
    assert listed.button_texts[0] == ["⭐ Signal — $0.60"]
    # Buying from search results works like from the list.
    card = await buy_from(alice, found, "Signal — $0.60")
    assert "Signal" in card.text

    sent = await alice.send("zzz")
    nothing = await alice.wait_for(after=sent)
    assert nothing.text.startswith("Nothing matches “zzz”.")
    assert any("Services" in b.text for b in nothing.all_buttons)


async def test_recent_purchases_come_first(bot_app: App, emulator: BotAPIEmulator) -> None:
    alice, menu = await start(emulator, bot_app, 6005)
    await buy_from(alice, await open_services(alice, menu), "Signal — $0.60")
    sent = await alice.send("/buy")
    services = await alice.wait_for(after=sent)
    assert services.button_texts[0][0] == "Signal — $0.60"
    assert services.button_texts[1][0] == "WhatsApp — $1.85"


async def test_sandbox_mode_says_so_and_gives_play_money_once(
    app_factory, emulator: BotAPIEmulator, sandbox: Sandbox
) -> None:
    async with app_factory(
        daisysim_api_key=None,
        sandbox_start_balance_usd="10",
        daisysim_base_url_override=sandbox.base_url,
        daisysim_api_key_override="sandbox-local",
    ) as app:
        assert app.settings.sandbox_mode
        alice, menu = await start(emulator, app, 6006, funds=0)
        assert "SANDBOX" in menu.text
        assert "Balance: $10.00" in menu.text
        sent = await alice.send("/start")
        again = await alice.wait_for(after=sent)
        assert "Balance: $10.00" in again.text
        entries = await ledger(app, alice.id)
        assert [(e.kind, e.amount) for e in entries] == [("sandbox_bonus", 100_000)]
        await fund(app, alice.id, 1)
        sent = await alice.send("/balance")
        screen = await alice.wait_for(after=sent)
        assert "sandbox play money" in screen.text
        assert "This is the sandbox" in screen.text


@pytest.mark.both_modes
async def test_the_app_stops_cleanly_with_nothing_left_running(
    tmp_path, sandbox: Sandbox, emulator: BotAPIEmulator
) -> None:
    from tests.conftest import make_settings

    before = asyncio.all_tasks()
    settings = make_settings(tmp_path, sandbox, emulator)
    async with running_app(settings, emulator) as app:
        assert app.scheduler.running
        alice, menu = await start(emulator, app, 6007)
        # Stop while an update is being handled (its upstream call is slow): it finishes first.
        await sandbox.control.add_fault("apps", "delay_before", delay=0.5)
        pressed = asyncio.create_task(alice.press(menu, "Buy a number"))
        await wait_until(lambda: app.inflight.running > 0, what="the update in flight")
    answer = await pressed
    assert answer.text is None
    assert "Choose a service" in alice.current(menu).text
    assert not app.scheduler.running
    assert app.inflight.running == 0
    # The fixtures' servers (emulator, sandbox) may still be closing a connection the app
    # dropped; everything else started since the app was built must be gone.
    leftover = [
        t
        for t in asyncio.all_tasks() - before
        if not t.done()
        and "RequestHandler" not in getattr(t.get_coro(), "__qualname__", "")
        # In webhook mode the emulator's delivery to the webhook keeps running.
        and not t.get_name().startswith("emulator-webhook")
    ]
    assert leftover == []
    # Stopping twice is harmless.
    await app.stop()


async def test_stopping_right_after_starting_does_not_hang(
    tmp_path, sandbox: Sandbox, emulator: BotAPIEmulator
) -> None:
    from bot.app import create_app
    from tests.conftest import make_settings

    for turns in (0, 1, 5):
        app = await create_app(make_settings(tmp_path / str(turns), sandbox, emulator))
        task = asyncio.create_task(app.start_polling())
        for _ in range(turns):
            await asyncio.sleep(0)  # let the polling task get that far, no further
        await asyncio.wait_for(app.stop(), timeout=10)
        await asyncio.wait_for(task, timeout=10)
        assert not app.scheduler.running
