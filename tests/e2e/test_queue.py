"""The purchase queue end to end: the real app (with its poller and outbox sender) polling the
Bot API emulator and buying from the time-scaled sandbox, on a temporary SQLite file.

The upstream sells 10 numbers a minute; at the tests' 60× scale that is 10 a second, so a
burst of 30 buyers is served in three windows, about two seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from bot.app import App
from bot.emulator import BotAPIEmulator, ChatMessage, EmulatedUser
from bot.sandbox import Sandbox
from bot.services.purchase import token_of
from bot.services.purchase_queue import PurchaseQueue, Queued
from storage.models import Activation
from tests.conftest import DAISYSIM_KEY, make_settings, running_app
from tests.e2e.helpers import (
    PHONE,
    activations,
    assert_books_balanced,
    balance,
    is_card,
    ledger,
    no_traceback,
    open_services,
    start,
)
from tests.fixtures.money import buy_request

SIGNAL = "Signal — $0.60"
SIGNAL_UNITS = 6_000
FUNDS = 100_000
FILLER = 7_000_000
PLACE = re.compile(r"You are (?:<b>)?(\d+)(?:st|nd|rd|th) in line")


@contextlib.asynccontextmanager
async def queue_app(
    tmp_path: Path, sandbox: Sandbox, emulator: BotAPIEmulator, **overrides: Any
) -> AsyncIterator[App]:
    settings = make_settings(tmp_path, sandbox, emulator, **overrides)
    async with running_app(settings, emulator) as app:
        yield app


def queue_of(app: App) -> PurchaseQueue:
    return app.purchase_queue


def has_number(message: ChatMessage) -> bool:
    return is_card(message) and any(PHONE.match(c) for c in message.entity_texts("code"))


async def buyers(
    emulator: BotAPIEmulator, app: App, first_id: int, count: int
) -> list[tuple[EmulatedUser, ChatMessage]]:
    """`count` users with money, each looking at the service list."""

    async def one(user_id: int) -> tuple[EmulatedUser, ChatMessage]:
        user, menu = await start(emulator, app, user_id, name=f"Buyer {user_id}", funds=FUNDS)
        return user, await open_services(user, menu)

    return list(await asyncio.gather(*(one(first_id + i) for i in range(count))))


async def fill_the_window(emulator: BotAPIEmulator, app: App) -> None:
    """Ten purchases by one user, straight through: the window is used up."""
    await start(emulator, app, FILLER, name="Filler", funds=100 * SIGNAL_UNITS)
    wallet = await app.repo.wallets.get_by_owner("user", FILLER)
    assert wallet is not None
    queue = queue_of(app)
    bought = await asyncio.gather(
        *(queue.buy(buy_request(FILLER, wallet.id, f"{FILLER}:fill{i}")) for i in range(10))
    )
    assert all(isinstance(b, Activation) for b in bought)
    assert queue.free_slots() <= 0


async def only(app: App, user: EmulatedUser) -> Activation:
    [activation] = await activations(app, user.id)
    return activation


def place_edits(emulator: BotAPIEmulator, user: EmulatedUser, message_id: int) -> list[int]:
    """The places a message showed, edit by edit (from the Bot API calls the bot made)."""
    places = []
    for call in emulator.calls:
        params = call.params
        # Form-encoded: every parameter arrives as a string.
        if call.method != "editMessageText" or str(params.get("message_id")) != str(message_id):
            continue
        if str(params.get("chat_id")) != str(user.id):
            continue
        found = PLACE.search(str(params.get("text", "")))
        if found:
            places.append(int(found.group(1)))
    return places


async def test_thirty_buyers_in_one_second_are_all_served_in_order_without_an_error(
    tmp_path: Path, sandbox: Sandbox, emulator: BotAPIEmulator
) -> None:
    async with queue_app(tmp_path, sandbox, emulator) as app:
        people = await buyers(emulator, app, 5001, 30)

        # Thirty taps, in this order, within a few milliseconds.
        answers = await asyncio.gather(*(user.press(services, SIGNAL) for user, services in people))

        # The first ten go straight through; the rest are told their place at once, in the
        # order they tapped.
        texts = [a.text or "" for a in answers]
        assert texts[:10] == ["Buying…"] * 10
        assert texts[10:] == [f"You are in line: place {p}." for p in range(1, 21)]

        cards = []
        for user, services in people:
            cards.append(await user.wait_for(has_number, after=services, timeout=15))

        bought = [await only(app, user) for user, _ in people]
        # The line was formed in the order of the taps...
        assert [a.id for a in bought] == sorted(a.id for a in bought)
        # ...and went to the upstream in that order, ten a window, with no 429.
        stats = await sandbox.control.stats()
        assert stats.rate_limited_total == 0
        assert stats.requests.get("purchase", 0) == 30
        account = await sandbox.control.account(DAISYSIM_KEY)
        rank = {a.recon_token: i for i, a in enumerate(bought)}
        sold = [rank[token_of(o.service) or ""] for o in account.orders]
        assert sorted(sold) == list(range(30))
        assert sold[10:] == list(range(10, 30))
        assert [r // 10 for r in sold] == [i // 10 for i in range(30)]

        for (user, _), card, activation in zip(people, cards, bought, strict=True):
            # Each was charged once, the price they saw, and holds the number on the card.
            assert activation.state == "waiting"
            assert activation.phone_number in card.entity_texts("code")
            assert [e.kind for e in await ledger(app, user.id)] == ["topup", "purchase"]
            assert await balance(app, user.id) == FUNDS - SIGNAL_UNITS
            # Nobody saw an error, a refund or a "try again".
            for message in user.history:
                assert "not charged" not in message.text
                assert "try again" not in message.text.lower()
            no_traceback(user)

        # Those who waited had their place message redrawn as the line moved (as far as the
        # outbox's budget for such redraws allowed: ten a second, shared), and that message
        # became the card itself.
        redrawn = 0
        for index in range(10, 30):
            (user, services), card = people[index], cards[index]
            first_reply = next(m for m in user.history if m.message_id > services.message_id)
            assert first_reply.message_id == card.message_id
            places = place_edits(emulator, user, card.message_id)
            joined_at = index - 9
            assert all(p < joined_at for p in places), (index, places)
            assert places == sorted(places, reverse=True)
            redrawn += bool(places)
        assert redrawn >= 1
        await assert_books_balanced(app)


async def test_a_buyer_who_leaves_the_line_gets_the_hold_back(
    tmp_path: Path, sandbox: Sandbox, emulator: BotAPIEmulator
) -> None:
    async with queue_app(tmp_path, sandbox, emulator) as app:
        [(alice, services), (bob, bob_services)] = await buyers(emulator, app, 5101, 2)
        await fill_the_window(emulator, app)
        answer = await alice.press(services, SIGNAL)
        assert answer.text == "You are in line: place 1."
        assert (await bob.press(bob_services, SIGNAL)).text == "You are in line: place 2."
        place = await alice.wait_for(lambda m: "in line" in m.text, after=services)
        assert "1st in line" in place.text
        bob_place = await bob.wait_for(lambda m: "in line" in m.text, after=bob_services)
        assert "2nd in line" in bob_place.text
        assert await balance(app, alice.id) == FUNDS - SIGNAL_UNITS

        left = await alice.press(place, "Leave the line")
        assert left.text == "You left the line: $0.60 is back on your balance."
        card = await alice.wait_for_edit(place)
        assert "cancelled — $0.60 refunded" in card.text
        assert await balance(app, alice.id) == FUNDS
        assert [e.kind for e in await ledger(app, alice.id)] == ["topup", "purchase", "refund"]
        activation = await only(app, alice)
        assert activation.state == "cancelled"
        # The one behind moves up, on the message they are looking at, then gets the number.
        moved = await bob.wait_for_edit(bob_place, lambda m: "1st in line" in m.text)
        assert await bob.wait_for_edit(moved, has_number, timeout=10)

        # Pressing it again changes nothing, and the upstream never heard of this purchase.
        leave_data = place.all_buttons[0].callback_data
        assert leave_data is not None
        again = await alice.press(card, data=leave_data)
        assert again.text == "You have already left the line."
        assert await balance(app, alice.id) == FUNDS
        account = await sandbox.control.account(DAISYSIM_KEY)
        assert not [o for o in account.orders if token_of(o.service) == activation.recon_token]
        await assert_books_balanced(app)
        no_traceback(alice)


async def test_a_second_tap_on_a_queued_purchase_buys_nothing_more(
    tmp_path: Path, sandbox: Sandbox, emulator: BotAPIEmulator
) -> None:
    async with queue_app(tmp_path, sandbox, emulator) as app:
        [(alice, services)] = await buyers(emulator, app, 5301, 1)
        await fill_the_window(emulator, app)
        first, second = await asyncio.gather(
            alice.press(services, SIGNAL), alice.press(services, SIGNAL)
        )
        assert {first.text, second.text} == {
            "You are in line: place 1.",
            "You are already in line: place 1.",
        }
        card = await alice.wait_for(has_number, after=services, timeout=10)
        assert (await only(app, alice)).phone_number in card.entity_texts("code")
        assert await balance(app, alice.id) == FUNDS - SIGNAL_UNITS
        await assert_books_balanced(app)


async def test_a_wallet_cannot_hold_more_places_than_the_cap(
    tmp_path: Path, sandbox: Sandbox, emulator: BotAPIEmulator
) -> None:
    async with queue_app(tmp_path, sandbox, emulator) as app:
        [(alice, services)] = await buyers(emulator, app, 5401, 1)
        await fill_the_window(emulator, app)
        queue = queue_of(app)
        wallet = await app.repo.wallets.get_by_owner("user", alice.id)
        assert wallet is not None
        for i in range(3):
            joined = await queue.buy(buy_request(alice.id, wallet.id, f"{alice.id}:q{i}"))
            assert isinstance(joined, Queued)
        await alice.press(services, SIGNAL)
        told = await alice.wait_for(lambda m: "waiting in line" in m.text, after=services)
        assert "3 purchases" in told.text
        assert "not charged" in told.text
        assert await balance(app, alice.id) == FUNDS - 3 * SIGNAL_UNITS
        assert len(await activations(app, alice.id)) == 3
        no_traceback(alice)


async def test_an_empty_upstream_account_refunds_the_queued_buyer_and_alerts_the_admins(
    tmp_path: Path, sandbox: Sandbox, emulator: BotAPIEmulator
) -> None:
    admin_id = 900
    async with queue_app(tmp_path, sandbox, emulator, admin_ids=str(admin_id)) as app:
        admin, _ = await start(emulator, app, admin_id, name="Root", funds=0)
        [(alice, services)] = await buyers(emulator, app, 5601, 1)
        await fill_the_window(emulator, app)
        answer = await alice.press(services, SIGNAL)
        assert answer.text == "You are in line: place 1."
        # While she waits, our DaisySim account runs dry.
        await sandbox.control.set_account(DAISYSIM_KEY, balance_units=0)

        card = await alice.wait_for(
            lambda m: "not bought — $0.60 refunded" in m.text, after=services, timeout=10
        )
        assert card.all_buttons != []  # somewhere to go from here
        alert = await admin.wait_for(lambda m: "INSUFFICIENT_BALANCE" in m.text, timeout=10)
        assert "Top up the DaisySim account" in alert.text
        assert await balance(app, alice.id) == FUNDS
        assert [e.kind for e in await ledger(app, alice.id)] == ["topup", "purchase", "refund"]
        assert (await only(app, alice)).state == "failed"
        await assert_books_balanced(app)
        no_traceback(alice)
