"""The admin panel end to end: the real app (with its outbox sender) polling the Bot API
emulator, the sandbox as DaisySim, a temporary SQLite file. Each test asserts on what the
people see and on the ledger."""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bot.app import App
from bot.emulator import BotAPIEmulator, ChatMessage, EmulatedUser
from bot.money import to_units
from bot.sandbox import Sandbox
from bot.services.admin import CSV_COLUMNS
from bot.telegram.admin_alerts import LOW_BALANCE_JOB_ID, low_balance_check
from storage.models import LedgerEntry
from tests.conftest import make_settings, running_app
from tests.e2e.helpers import (
    assert_books_balanced,
    balance,
    fund,
    ledger,
    no_traceback,
    open_services,
    start,
)
from tests.fixtures.waiting import wait_until

ADMIN = 900


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
    async with admin_app(tmp_path, sandbox, emulator) as running:
        yield running


async def admin_user(emu: BotAPIEmulator, app: App) -> EmulatedUser:
    admin, _ = await start(emu, app, ADMIN, name="Root", funds=0)
    return admin


async def say(user: EmulatedUser, text: str, *, timeout: float = 5.0) -> ChatMessage:
    """Send a message and return the bot's first answer to it."""
    sent = await user.send(text)
    return await user.wait_for(after=sent, timeout=timeout)


async def all_entries(app: App) -> list[LedgerEntry]:
    return await app.repo.ledger.entries_page(limit=10_000)


async def test_admins_find_their_tools_in_their_command_menu(
    app: App, emulator: BotAPIEmulator
) -> None:
    await admin_user(emulator, app)
    scope = {"type": "chat", "chat_id": ADMIN}
    await wait_until(lambda: bool(emulator.commands(scope=scope)), what="the admin's menu")
    own = {c["command"]: c["description"] for c in emulator.commands(scope=scope)}
    assert own["admin"] == "Admin panel"
    assert {"buy", "balance", "topup", "refund", "ban", "export"} <= set(own)
    # Nobody else's menu lists them.
    assert "admin" not in {c["command"] for c in emulator.commands()}
    assert "admin" not in {c["command"] for c in emulator.commands(language_code="ru")}


async def test_admin_topup_credits_and_notifies_the_user(
    app: App, emulator: BotAPIEmulator
) -> None:
    admin = await admin_user(emulator, app)
    bob, _ = await start(emulator, app, 1002, name="Bob", funds=0)
    answer = await say(admin, "/topup 1002 5")
    assert "Bob topped up by $5.00" in answer.text
    notice = await bob.wait_for(lambda m: "An admin topped up your balance" in m.text)
    assert "$5.00" in notice.text
    entries = await ledger(app, 1002)
    assert [(e.kind, e.amount, e.actor_id) for e in entries] == [("topup", 50_000, ADMIN)]
    # By @username too, and the amount with a decimal comma.
    await app.repo.users.upsert(1002, username="bobby", first_name="Bob")
    answer = await say(admin, "/topup @Bobby 0,25")
    assert "topped up by $0.25" in answer.text
    assert await balance(app, 1002) == 52_500
    await assert_books_balanced(app)
    no_traceback(admin)


async def test_a_non_admin_gets_the_ordinary_answer_and_changes_nothing(
    app: App, emulator: BotAPIEmulator
) -> None:
    await admin_user(emulator, app)
    mallory, _ = await start(emulator, app, 1003, name="Mallory", funds=0)
    before = await all_entries(app)
    unknown = await say(mallory, "/whatever")
    for command in ("/admin", "/topup 1003 100", "/topup @root 5", "/ban 900", "/export"):
        answer = await say(mallory, command)
        assert answer.text == unknown.text, command
        assert answer.button_texts == unknown.button_texts
        assert "admin" not in answer.text.lower()
    # A forged admin button is only a stale button to anyone else.
    forged = await mallory.press(unknown, data="v1x:a:1003:1000000:zzzzzzzz")
    assert forged.text == "This button is out of date."
    assert await all_entries(app) == before
    assert await balance(app, 1003) == 0
    assert not (await app.repo.users.get(ADMIN)).banned  # type: ignore[union-attr]
    no_traceback(mallory)


@pytest.mark.parametrize(
    ("amount", "reason"),
    [
        ("-5", "more than zero"),
        ("0", "more than zero"),
        ("1e3", "is not an amount"),
        ("10001", "At most $10,000.00"),
        ("abc", "is not an amount"),
        ("1.23456", "At most 4 decimals"),
    ],
)
async def test_malformed_amounts_are_refused(
    app: App, emulator: BotAPIEmulator, amount: str, reason: str
) -> None:
    admin = await admin_user(emulator, app)
    await start(emulator, app, 1002, name="Bob", funds=0)
    answer = await say(admin, f"/topup 1002 {amount}")
    assert reason in answer.text
    assert await all_entries(app) == []
    assert await app.repo.outbox.count_by_state() == {}


async def test_topup_button_flow_credits_once(app: App, emulator: BotAPIEmulator) -> None:
    admin = await admin_user(emulator, app)
    bob, _ = await start(emulator, app, 1002, name="Bob", funds=0)
    await app.repo.users.upsert(1002, username="bob", first_name="Bob")
    panel = await say(admin, "/admin")
    assert "Admin panel" in panel.text
    await admin.press(panel, "Find a user")
    await admin.wait_for_edit(panel, lambda m: "user id or @username" in m.text)
    card = await say(admin, "@bob")
    assert "Bob" in card.text
    assert "Balance: $0.00" in card.text
    await admin.press(card, "Top up")
    amounts = await admin.wait_for_edit(card, lambda m: "Top up Bob" in m.text)
    await admin.press(amounts, "$5.00")
    confirm = await admin.wait_for_edit(amounts, lambda m: "by $5.00?" in m.text)
    # A double tap on the confirming button (both taps land before the first answer), and
    # a third tap on the same button later: one top-up.
    data = confirm.button("Top up $5.00").callback_data
    assert data is not None
    answers = await asyncio.gather(*(admin.press(confirm, data=data) for _ in range(2)))
    assert [a.text for a in answers] == ["Done.", "Done."]
    await admin.press(confirm, data=data)
    done = admin.current(confirm)
    assert "Balance: $5.00" in done.text
    assert await balance(app, 1002) == 50_000
    await bob.wait_for(lambda m: "An admin topped up" in m.text)
    await app.outbox.wait_idle(5)
    assert len([m for m in bob.history if "An admin topped up" in m.text]) == 1
    # Another amount, typed.
    await admin.press(done, "Top up")
    amounts = await admin.wait_for_edit(done, lambda m: "Top up Bob" in m.text)
    await admin.press(amounts, "Another amount")
    await admin.wait_for_edit(amounts, lambda m: "amount in USD" in m.text)
    refused = await say(admin, "1.23456")
    assert "At most 4 decimals" in refused.text
    confirm = await say(admin, "2.5")
    assert "by $2.50?" in confirm.text
    await admin.press(confirm, "Top up $2.50")
    assert await balance(app, 1002) == 75_000
    entries = await ledger(app, 1002)
    assert [(e.kind, e.amount, e.actor_id) for e in entries] == [
        ("topup", 50_000, ADMIN),
        ("topup", 25_000, ADMIN),
    ]
    await assert_books_balanced(app)


async def test_ban_and_unban(app: App, emulator: BotAPIEmulator) -> None:
    admin = await admin_user(emulator, app)
    carol, _ = await start(emulator, app, 1004, name="Carol", funds=0)
    card = await say(admin, "/user 1004")
    await admin.press(card, "Ban")
    banned = await admin.wait_for_edit(card, lambda m: "Banned." in m.text)
    assert "banned" in banned.text
    answer = await say(carol, "/start")
    assert answer.text.startswith("Sorry, this account cannot use the bot.")
    assert answer.buttons == ()
    # Nothing else: a search, a command, a button all get the same single line.
    assert (await say(carol, "whatsapp")).text == answer.text
    assert (await say(admin, "/ban 900")).text.startswith("Admins cannot be banned.")
    await admin.press(banned, "Unban")
    await admin.wait_for_edit(banned, lambda m: "Unbanned." in m.text)
    menu = await say(carol, "/start")
    assert "Balance" in menu.text


async def test_ledger_export_parses_and_sums_to_the_ledger(
    app: App, emulator: BotAPIEmulator
) -> None:
    admin = await admin_user(emulator, app)
    alice, menu = await start(emulator, app, 1001, name="Alice")
    await fund(app, 1001, 12_345)
    services = await open_services(alice, menu)
    await alice.press(services, "Signal")
    await alice.wait_for(lambda m: m.text.startswith("📱"))
    panel = await say(admin, "/admin")
    await admin.press(panel, "Ledger CSV")
    document = await admin.wait_for(lambda m: m.document is not None)
    assert document.document is not None
    assert document.document.file_name.endswith(".csv")
    rows = list(csv.DictReader(io.StringIO(document.document.data.decode("utf-8"))))
    assert tuple(rows[0]) == CSV_COLUMNS
    entries = await all_entries(app)
    assert [int(r["entry_id"]) for r in rows] == [e.id for e in entries]
    by_wallet: dict[int, int] = {}
    for row in rows:
        units = int(row["amount_units"])
        assert to_units(row["amount_usd"]) == units
        by_wallet[int(row["wallet_id"])] = by_wallet.get(int(row["wallet_id"]), 0) + units
    for wallet in await app.repo.wallets.list_all():
        assert by_wallet.get(wallet.id, 0) == wallet.balance
    assert {r["kind"] for r in rows} == {"topup", "purchase"}
    assert f"{len(rows)} entries" in document.text


async def test_markup_set_by_an_admin_prices_the_catalogue(
    app: App, emulator: BotAPIEmulator
) -> None:
    admin = await admin_user(emulator, app)
    alice, menu = await start(emulator, app, 1001, name="Alice")
    services = await open_services(alice, menu)
    assert services.button("Signal").text == "Signal — $0.60"
    answer = await say(admin, "/markup 10 0.05")
    assert "10% + $0.05 (set here)" in answer.text
    again = await say(alice, "/buy")
    assert again.button("Signal").text == "Signal — $0.71"
    card_before = await balance(app, 1001)
    await alice.press(again, "Signal — $0.71")
    await alice.wait_for(lambda m: m.text.startswith("📱"))
    assert card_before - await balance(app, 1001) == 7_100
    await admin.press(answer, "Back to the environment's")
    await admin.wait_for_edit(answer, lambda m: "from the environment" in m.text)
    third = await say(alice, "/buy")
    assert third.button("Signal").text == "Signal — $0.60"
    refused = await say(admin, "/markup lots")
    assert "is not a markup" in refused.text


async def test_low_upstream_balance_alerts_the_admins_once(
    app: App, emulator: BotAPIEmulator, sandbox: Sandbox
) -> None:
    admin = await admin_user(emulator, app)
    await sandbox.control.set_account("e2e-key", balance_units=12_000)
    panel = await say(admin, "/admin")
    assert "DaisySim balance: $1.20" in panel.text
    assert "Under the alert threshold of $5.00" in panel.text
    job = app.scheduler.get_job(LOW_BALANCE_JOB_ID)
    assert job is not None  # the same check runs every few minutes on its own
    sender = app.outbox
    for _ in range(2):
        await low_balance_check(app.repo, app.client, app.settings, app.notifier)
    alert = await admin.wait_for(lambda m: "DaisySim balance is low" in m.text)
    assert "$1.20" in alert.text
    await sender.wait_idle(5)
    assert len([m for m in admin.history if "balance is low" in m.text]) == 1
