"""Promo codes end to end: the real app polling the Bot API emulator, the sandbox as DaisySim,
a temporary SQLite file. An admin creates codes (one, or a batch as CSV); users redeem them by
typing, through the Balance screen's button and through a start link; a double redemption and
a race for the last use credit exactly as often as the code allows; every refusal changes
nothing. Each test checks the ledger and ledger-check."""

from __future__ import annotations

import asyncio
import csv
import io
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.app import App
from bot.emulator import BotAPIEmulator, ChatMessage, EmulatedUser
from bot.sandbox import Sandbox
from bot.services import promo
from bot.services.admin import CSV_COLUMNS as ADMIN_CSV_COLUMNS
from bot.services.promo import CSV_COLUMNS
from storage.models import LedgerEntry
from tests.e2e.helpers import assert_books_balanced, balance, ledger, no_traceback, start
from tests.e2e.test_admin import ADMIN, admin_app, admin_user, all_entries, say

RECEIPT = "🎁 Promo code"


@pytest.fixture
async def app(tmp_path: Path, sandbox: Sandbox, emulator: BotAPIEmulator) -> AsyncIterator[App]:
    async with admin_app(tmp_path, sandbox, emulator) as running:
        yield running


def receipts(user: EmulatedUser) -> list[ChatMessage]:
    return [m for m in user.history if m.from_bot and m.text.startswith(RECEIPT)]


def promo_entries(entries: list[LedgerEntry]) -> list[tuple[str, int]]:
    return [(e.kind, e.amount) for e in entries if e.kind == "promo"]


async def test_an_admin_creates_a_code_and_users_redeem_it_by_typing(
    app: App, emulator: BotAPIEmulator
) -> None:
    admin = await admin_user(emulator, app)
    created = await say(admin, "/promo add SPRING 2 uses=2")
    assert "Promo code SPRING: $2.00, 2 uses, once per user, no expiry" in created.text
    assert "https://t.me/test_bot?start=promo_SPRING" in created.text
    assert "exists already" in (await say(admin, "/promo add spring 1")).text

    alice, _ = await start(emulator, app, 1001, name="Alice", funds=0)
    await alice.send("spring")
    receipt = await alice.wait_for(lambda m: m.text.startswith(RECEIPT))
    assert receipt.text == "🎁 Promo code SPRING: +$2.00 on your balance. Balance: $2.00."
    # A second time: refused, nothing moves.
    again = await say(alice, "SPRING")
    assert again.text.startswith("🎁 You have already used the promo code SPRING.")
    # The search by typing still answers anything that is not a code.
    search = await say(alice, "whatsapp")
    assert "WhatsApp" in str(search.button_texts)
    await app.outbox.wait_idle(5)
    assert len(receipts(alice)) == 1
    assert promo_entries(await ledger(app, 1001)) == [("promo", 20_000)]

    listing = await say(admin, "/promo")
    assert "SPRING · $2.00 · 1/2 · once per user · no expiry" in listing.text
    # The stats count the promo credit by its source, and the ledger export carries it.
    panel = await say(admin, "/admin")
    assert "Credits in 30 days, by source: promo code $2.00" in panel.text
    await admin.press(panel, "Ledger CSV")
    document = await admin.wait_for(lambda m: m.document is not None)
    assert document.document is not None
    rows = list(csv.DictReader(io.StringIO(document.document.data.decode("utf-8"))))
    assert tuple(rows[0]) == ADMIN_CSV_COLUMNS
    promo_rows = [r for r in rows if r["kind"] == "promo"]
    assert [(r["owner_id"], r["amount_units"]) for r in promo_rows] == [("1001", "20000")]
    assert promo_rows[0]["promo_redemption_id"] != ""
    await assert_books_balanced(app)
    no_traceback(alice)


async def test_a_start_link_and_the_balance_button_redeem(
    app: App, emulator: BotAPIEmulator
) -> None:
    admin = await admin_user(emulator, app)
    await say(admin, "/promo add WELCOME-1 0.5 uses=10")
    bob = emulator.user(1002, "Bob", language_code="en")
    sent = await bob.send("/start promo_WELCOME-1")
    menu = await bob.wait_for(lambda m: "Balance" in m.text, after=sent)
    receipt = await bob.wait_for(lambda m: m.text.startswith(RECEIPT), after=sent)
    assert "WELCOME-1: +$0.50" in receipt.text
    # The same link again is refused politely, after the menu.
    again = await bob.send("/start promo_welcome-1")
    refusal = await bob.wait_for(lambda m: "already used" in m.text, after=again)
    assert "WELCOME-1" in refusal.text
    unknown = await bob.send("/start promo_NOSUCH")
    assert (
        "There is no promo code “NOSUCH”"
        in (await bob.wait_for(lambda m: "no promo code" in m.text, after=unknown)).text
    )

    # Balance → 🎁 Promo code asks for it; a typed unknown code gets a clear answer.
    await bob.press(menu, "Balance")
    screen = await bob.wait_for_edit(menu, lambda m: "🎁 Promo code" in str(m.button_texts))
    await bob.press(screen, "🎁 Promo code")
    await bob.wait_for_edit(screen, lambda m: "Send the promo code" in m.text)
    answer = await say(bob, "MAYBE42")
    assert answer.text.startswith("🎁 There is no promo code “MAYBE42”")
    # The ask was for one line: the next is a search again.
    assert "no promo code" not in (await say(bob, "MAYBE42")).text
    assert await balance(app, 1002) == 5_000
    entries = await ledger(app, 1002)
    assert promo_entries(entries) == [("promo", 5_000)]
    balance_screen = await say(bob, "/balance")
    assert "promo code" in balance_screen.text
    await assert_books_balanced(app)
    no_traceback(bob)


async def test_one_user_redeeming_twice_at_once_is_credited_once(
    app: App, emulator: BotAPIEmulator
) -> None:
    admin = await admin_user(emulator, app)
    await say(admin, "/promo add DOUBLE 1 uses=5")
    carol, _ = await start(emulator, app, 1003, name="Carol", funds=0)
    # Both messages (a double tap on "send", a link opened twice) before either is answered.
    await asyncio.gather(carol.send("DOUBLE"), carol.send("/start promo_DOUBLE"))
    await carol.wait_for(lambda m: "already used" in m.text)
    await app.outbox.wait_idle(5)
    assert len(receipts(carol)) == 1
    assert promo_entries(await ledger(app, 1003)) == [("promo", 10_000)]
    code = await app.repo.promo.find("double")
    assert code is not None
    assert code.uses == 1
    await assert_books_balanced(app)


async def test_the_last_use_raced_by_two_users_credits_once(
    app: App, emulator: BotAPIEmulator
) -> None:
    admin = await admin_user(emulator, app)
    await say(admin, "/promo add LASTONE 3")
    dave, _ = await start(emulator, app, 1004, name="Dave", funds=0)
    erin, _ = await start(emulator, app, 1005, name="Erin", funds=0)
    await asyncio.gather(dave.send("LASTONE"), erin.send("lastone"))
    for user in (dave, erin):
        await user.wait_for(lambda m: m.text.startswith(RECEIPT) or "used up" in m.text)
    await app.outbox.wait_idle(5)
    assert len(receipts(dave)) + len(receipts(erin)) == 1
    assert promo_entries(await all_entries(app)) == [("promo", 30_000)]
    assert await balance(app, 1004) + await balance(app, 1005) == 30_000
    listing = await say(admin, "/promo")
    assert "LASTONE · $3.00 · 1/1" in listing.text
    await assert_books_balanced(app)


async def test_expired_used_up_and_unknown_codes_change_nothing(
    app: App, emulator: BotAPIEmulator
) -> None:
    admin = await admin_user(emulator, app)
    expired = promo.PromoSpec("OLDONE", 10_000, uses=10, days=1)
    await promo.create_code(app.repo, expired, admin_id=ADMIN, now=time.time() - 2 * 86_400)
    await say(admin, "/promo add GONE 1")
    frank, _ = await start(emulator, app, 1006, name="Frank", funds=0)
    await frank.send("GONE")
    await frank.wait_for(lambda m: m.text.startswith(RECEIPT))
    grace, _ = await start(emulator, app, 1007, name="Grace", funds=0)
    before = await all_entries(app)
    assert (await say(grace, "OLDONE")).text.startswith("🎁 The promo code OLDONE has expired.")
    assert (await say(grace, "gone")).text.startswith("🎁 The promo code GONE has been used up.")
    sent = await grace.send("/start promo_UNKNOWN9")
    refused = await grace.wait_for(lambda m: "no promo code" in m.text, after=sent)
    assert "UNKNOWN9" in refused.text
    assert await all_entries(app) == before
    assert await balance(app, 1007) == 0
    listing = await say(admin, "/promo")
    assert "OLDONE · $1.00 · 0/10 · once per user · expired" in listing.text
    await assert_books_balanced(app)
    no_traceback(grace)


async def test_a_batch_of_one_use_codes_comes_as_csv_and_each_redeems_once(
    app: App, emulator: BotAPIEmulator
) -> None:
    admin = await admin_user(emulator, app)
    panel = await say(admin, "/admin")
    await admin.press(panel, "Promo codes")
    screen = await admin.wait_for_edit(panel, lambda m: "No promo codes yet" in m.text)
    await admin.press(screen, "Batch of one-use codes")
    await admin.wait_for_edit(screen, lambda m: "how many one-use codes" in m.text)
    sent = await admin.send("3 1.5 days=30")
    document = await admin.wait_for(lambda m: m.document is not None, after=sent)
    assert document.document is not None
    assert "3 one-use promo codes of $1.50 each" in document.text
    rows = list(csv.DictReader(io.StringIO(document.document.data.decode("utf-8"))))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert len({r["code"] for r in rows}) == 3
    assert {r["amount_usd"] for r in rows} == {"1.5000"}
    henry, _ = await start(emulator, app, 1008, name="Henry", funds=0)
    payload = rows[0]["link"].split("?start=")[1]
    sent = await henry.send(f"/start {payload}")
    await henry.wait_for(lambda m: m.text.startswith(RECEIPT), after=sent)
    iris, _ = await start(emulator, app, 1009, name="Iris", funds=0)
    assert "used up" in (await say(iris, rows[0]["code"])).text
    await iris.send(rows[1]["code"].lower())
    await iris.wait_for(lambda m: m.text.startswith(RECEIPT))
    assert promo_entries(await all_entries(app)) == [("promo", 15_000), ("promo", 15_000)]
    # The panel's new-code button takes a typed line too.
    await admin.press(screen, "Back")
    again = await admin.wait_for_edit(screen, lambda m: "0/1" in m.text and "1/1" in m.text)
    await admin.press(again, "New code")
    await admin.wait_for_edit(again, lambda m: "Send the new code" in m.text)
    made = await say(admin, "PANEL1 0.25 uses=3 repeat")
    assert "PANEL1: $0.25, 3 uses, repeatable" in made.text
    await assert_books_balanced(app)
