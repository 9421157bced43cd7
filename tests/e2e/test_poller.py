"""The poller and the outbox end to end: the real app (with its poller and sender)
polling the Bot API emulator, calling the time-scaled sandbox, on a temporary SQLite file.

No button is pressed to fetch a code here: everything the user gets comes by itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bot.app import App
from bot.emulator import BotAPIEmulator, ChatMessage, EmulatedUser
from bot.sandbox import Sandbox
from bot.services.poller import Poller
from bot.telegram.outbox import OutboxSender
from storage.models import Activation
from tests.conftest import DAISYSIM_KEY, TIME_SCALE, make_settings, running_app
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

SIGNAL = "Signal — $0.60"
SIGNAL_UNITS = 6_000
SIGNAL_PRICE = "$0.60"  # SIGNAL_UNITS as the user reads it
# Upstream seconds between two looks at a small set: one real second at the tests' scale.
POLL_EVERY_UPSTREAM = TIME_SCALE * 1.0


@contextlib.asynccontextmanager
async def app_with_poller(
    tmp_path: Path, sandbox: Sandbox, emulator: BotAPIEmulator, **overrides: Any
) -> AsyncIterator[App]:
    overrides.setdefault("poll_min_interval_seconds", POLL_EVERY_UPSTREAM)
    settings = make_settings(tmp_path, sandbox, emulator, **overrides)
    async with running_app(settings, emulator) as app:
        await wait_until(lambda: poller_of(app).started, what="the poller started")
        yield app


def poller_of(app: App) -> Poller:
    return app.poller


def sender_of(app: App) -> OutboxSender:
    return app.outbox


async def buy_signal(
    app: App, emulator: BotAPIEmulator, user_id: int, *, language: str = "en"
) -> tuple[EmulatedUser, ChatMessage, Activation]:
    user, menu = await start(emulator, app, user_id, language=language)
    label = SIGNAL if language == "en" else "Signal"
    card = await buy_from(user, await open_services(user, menu), label)
    activation = await with_card(app, user_id, card)
    assert activation.upstream_id is not None
    return user, card, activation


def code_messages(user: EmulatedUser) -> list[ChatMessage]:
    return [m for m in user.bot_messages if is_code_message(m)]


@pytest.mark.both_modes
async def test_a_code_reaches_the_user_within_one_poll_cycle(
    tmp_path: Path, sandbox: Sandbox, emulator: BotAPIEmulator
) -> None:
    async with app_with_poller(tmp_path, sandbox, emulator) as app:
        alice, card, activation = await buy_signal(app, emulator, 1001)
        assert activation.upstream_id is not None
        delivered = time.monotonic()
        await sandbox.control.deliver_code(activation.upstream_id, "531246")

        message = await alice.wait_for(is_code_message, after=card, timeout=5)
        latency = message.received_at - delivered
        policy = poller_of(app).policy
        # One look every min_interval, plus a scheduler tick, plus getting it to Telegram.
        assert latency <= policy.cycle_seconds(1) + policy.tick_seconds() + 0.5, latency

        # A new message (the phone buzzes), replying to the card, with a copy button.
        assert "531246" in message.entity_texts("code")
        assert alice.copy(message, "Copy code") == "531246"
        assert message.reply_to == card.message_id
        # The card shows the code too.
        shown = await alice.wait_for_edit(card, lambda m: "531246" in m.text)
        assert "code received" in shown.text

        entries = await ledger(app, alice.id)
        assert [e.kind for e in entries] == ["topup", "purchase"]
        assert await sender_of(app).wait_idle(timeout=5)
        # Still exactly one code message after the poller has looked again.
        assert len(code_messages(alice)) == 1
        await assert_books_balanced(app)
        no_traceback(alice)


async def test_a_purchase_and_a_users_cancel_reach_the_poller_without_rereading_everything(
    tmp_path: Path, sandbox: Sandbox, emulator: BotAPIEmulator
) -> None:
    """The poller reads the whole waiting set once at start; a new purchase and a cancel made
    by the user's own button (not by the poller) reach it as changed rows."""
    async with app_with_poller(tmp_path, sandbox, emulator) as app:
        poller = poller_of(app)
        alice, card, activation = await buy_signal(app, emulator, 1011)
        await wait_until(lambda: poller.follows(activation.id), what="the poller follows it")

        assert activation.cancel_after is not None
        lock_end = activation.cancel_after
        await wait_until(lambda: time.time() >= lock_end, timeout=10, what="the cancel lock")
        done = await alice.press(alice.current(card), "Cancel")
        assert done.text == "Cancelled: $0.60 is back on your balance."
        await wait_until(lambda: not poller.follows(activation.id), what="the poller let go")

        assert poller.stats.full_reads == 1
        assert poller.stats.change_reads > 0
        assert await balance(app, alice.id) == 100_000
        await assert_books_balanced(app)
        no_traceback(alice)


async def test_no_code_means_an_automatic_refund_of_the_exact_price(
    tmp_path: Path, sandbox: Sandbox, emulator: BotAPIEmulator
) -> None:
    # Give up waiting at 1 s, inside the 3 s cancel lock: the upstream answers TOO_EARLY with
    # the seconds left, and the poller comes back then.
    async with app_with_poller(tmp_path, sandbox, emulator, auto_cancel_after_seconds=1.0) as app:
        alice, card, activation = await buy_signal(app, emulator, 1002)
        start_balance = await balance(app, alice.id)
        assert start_balance == 100_000 - SIGNAL_UNITS

        notice = await alice.wait_for(lambda m: m.text.startswith("⌛"), after=card, timeout=10)
        assert SIGNAL_PRICE in notice.text
        assert activation.phone_number is not None
        assert activation.phone_number in notice.text

        assert await balance(app, alice.id) == 100_000
        entries = await ledger(app, alice.id)
        assert [(e.kind, e.amount) for e in entries] == [
            ("topup", 100_000),
            ("purchase", -SIGNAL_UNITS),
            ("refund", SIGNAL_UNITS),
        ]
        stored = await app.repo.activations.get(activation.id)
        assert stored is not None
        assert stored.state == "expired"
        # The card says so, and offers to buy again.
        shown = await alice.wait_for_edit(card, lambda m: "refunded" in m.text)
        assert any("Buy again" in b.text for b in shown.all_buttons)
        # TOO_EARLY first, then the cancel that refunded us upstream as well.
        cancels = [e for e in await sandbox.control.request_log() if e.endpoint == "cancel"]
        assert [e.code for e in cancels] == ["TOO_EARLY", None]
        assert cancels[-1].status == 200
        account = await sandbox.control.account(DAISYSIM_KEY)
        assert account.refunds_units == SIGNAL_UNITS
        await assert_books_balanced(app)


async def test_a_code_that_wins_the_race_with_the_auto_cancel_is_delivered_not_refunded(
    tmp_path: Path, sandbox: Sandbox, emulator: BotAPIEmulator
) -> None:
    async with app_with_poller(tmp_path, sandbox, emulator, auto_cancel_after_seconds=3.2) as app:
        alice, card, activation = await buy_signal(app, emulator, 1003)
        assert activation.upstream_id is not None
        # The poller cannot see the code (every check fails) until the deadline, when the
        # cancel meets CODE_RECEIVED with the code in it.
        await sandbox.control.add_fault(
            "check-all", "error", code="PROVIDER_ERROR", times=10_000, key=DAISYSIM_KEY
        )
        await sandbox.control.deliver_code(activation.upstream_id, "777111")

        message = await alice.wait_for(is_code_message, after=card, timeout=10)
        assert "777111" in message.entity_texts("code")
        cancels = [e for e in await sandbox.control.request_log() if e.endpoint == "cancel"]
        assert [(e.status, e.code) for e in cancels] == [(422, "CODE_RECEIVED")]

        stored = await app.repo.activations.get(activation.id)
        assert stored is not None
        assert stored.state == "completed"
        assert stored.code == "777111"
        entries = await ledger(app, alice.id)
        assert [e.kind for e in entries] == ["topup", "purchase"]
        assert not any(m.text.startswith("⌛") for m in alice.bot_messages)
        await assert_books_balanced(app)


async def test_after_a_restart_every_waiting_code_is_delivered_exactly_once(
    tmp_path: Path, sandbox: Sandbox, emulator: BotAPIEmulator
) -> None:
    users: list[EmulatedUser] = []
    waiting: list[Activation] = []
    async with app_with_poller(tmp_path, sandbox, emulator) as app:
        for n in range(10):
            user, _, activation = await buy_signal(app, emulator, 2000 + n)
            users.append(user)
            waiting.append(activation)
        # Half the codes arrive while the first process runs; it stops right after
        # noticing them, with their messages sent or still queued.
        for activation in waiting[:5]:
            assert activation.upstream_id is not None
            await sandbox.control.deliver_code(activation.upstream_id)

        async def five_completed() -> bool:
            counts = await app.repo.activations.count_by_state()
            return counts.get("completed", 0) == 5

        await wait_until(five_completed, timeout=5, what="five codes stored")
    # The other half arrive while no bot runs at all.
    for activation in waiting[5:]:
        assert activation.upstream_id is not None
        await sandbox.control.deliver_code(activation.upstream_id)

    async with app_with_poller(tmp_path, sandbox, emulator) as app:
        for user in users:
            await user.wait_for(is_code_message, timeout=10)
        sender = sender_of(app)
        assert await sender.wait_idle(timeout=5)
        # Let the new poller look at everything once more: nothing is announced twice.
        batches = poller_of(app).stats.batches
        await wait_until(
            lambda: poller_of(app).stats.batches >= batches + 2 or not poller_of(app).schedule,
            what="another poll",
        )
        assert await sender.wait_idle(timeout=5)
        counts = await app.repo.activations.count_by_state()
        assert counts == {"completed": 10}
        await assert_books_balanced(app)
    for user in users:
        messages = code_messages(user)
        assert len(messages) == 1, (user.id, [m.text for m in messages])


async def test_a_user_who_blocked_the_bot_is_refunded_marked_inactive_and_left_alone(
    tmp_path: Path, sandbox: Sandbox, emulator: BotAPIEmulator
) -> None:
    async with app_with_poller(tmp_path, sandbox, emulator, auto_cancel_after_seconds=3.2) as app:
        bob, _, activation = await buy_signal(app, emulator, 3001)
        calls_before = len([c for c in emulator.calls if c.chat_id == bob.id])
        bob.block()

        async def refunded() -> bool:
            stored = await app.repo.activations.get(activation.id)
            return stored is not None and stored.state == "expired"

        await wait_until(refunded, timeout=10, what="the auto-refund")
        sender = sender_of(app)
        assert await sender.wait_idle(timeout=5)

        user = await app.repo.users.get(bob.id)
        assert user is not None
        assert user.inactive
        entries = await ledger(app, bob.id)
        assert [(e.kind, e.amount) for e in entries][-1] == ("refund", SIGNAL_UNITS)
        assert await balance(app, bob.id) == 100_000
        rows = await app.db.fetch_all(
            "SELECT state, attempts FROM outbox WHERE chat_id = ?", (bob.id,)
        )
        assert rows, "the refund notice was queued"
        assert all(row["state"] == "dropped" for row in rows)
        assert all(row["attempts"] <= 1 for row in rows)
        attempts = len([c for c in emulator.calls if c.chat_id == bob.id]) - calls_before

        # Nothing more is tried for him while the bot keeps running.
        batches = poller_of(app).stats.ticks
        await wait_until(lambda: poller_of(app).stats.ticks >= batches + 20, what="more ticks")
        assert len([c for c in emulator.calls if c.chat_id == bob.id]) - calls_before == attempts
        assert attempts <= 3
        await assert_books_balanced(app)


@pytest.mark.parametrize("language", ["ru"])
async def test_the_auto_refund_notice_speaks_the_users_language(
    tmp_path: Path, sandbox: Sandbox, emulator: BotAPIEmulator, language: str
) -> None:
    async with app_with_poller(tmp_path, sandbox, emulator, auto_cancel_after_seconds=3.2) as app:
        ivan, card, _ = await buy_signal(app, emulator, 4001, language=language)
        notice = await ivan.wait_for(lambda m: m.text.startswith("⌛"), after=card, timeout=10)
        assert "возвращено на баланс" in notice.text
        assert "0,60\xa0$" in notice.text  # SIGNAL_UNITS as a Russian reader writes it


async def test_the_app_with_its_poller_and_sender_stops_cleanly(
    tmp_path: Path, sandbox: Sandbox, emulator: BotAPIEmulator
) -> None:
    before = asyncio.all_tasks()
    async with app_with_poller(tmp_path, sandbox, emulator) as app:
        _, _, activation = await buy_signal(app, emulator, 5001)
        assert activation.upstream_id is not None
        await sandbox.control.deliver_code(activation.upstream_id)
        await wait_until(lambda: poller_of(app).stats.codes == 1, what="the code stored")
    # Stopped right after the code was stored: its message went out or is still queued,
    # never left half-sent.
    rows = await _outbox_rows(tmp_path)
    assert rows
    assert all(state in ("sent", "pending") and not sending for state, sending in rows)
    leftover = [
        t
        for t in asyncio.all_tasks() - before
        if not t.done() and "RequestHandler" not in getattr(t.get_coro(), "__qualname__", "")
    ]
    assert leftover == []


async def _outbox_rows(tmp_path: Path) -> list[tuple[str, bool]]:
    from storage.db import Database

    db = await Database.open(tmp_path / "bot.sqlite3")
    try:
        rows = await db.fetch_all("SELECT state, sending_since IS NOT NULL FROM outbox")
        return [(str(r[0]), bool(r[1])) for r in rows]
    finally:
        await db.close()


def labels(message: ChatMessage) -> str:
    return " | ".join(b.text for b in message.all_buttons)


async def test_the_card_counts_down_and_unlocks_cancel_when_the_lock_ends(
    tmp_path: Path, sandbox: Sandbox, emulator: BotAPIEmulator
) -> None:
    async with app_with_poller(tmp_path, sandbox, emulator) as app:
        alice, card, activation = await buy_signal(app, emulator, 6001)
        assert "Cancel in" in labels(card)
        assert activation.cancel_after is not None
        interval = poller_of(app).card_interval()
        # Redrawn in place while the user watches: the countdown moves on by itself.
        redrawn = await alice.wait_for_edit(card, timeout=interval + 1)
        assert redrawn.message_id == card.message_id
        # And the moment the lock ends, the button becomes "Cancel and refund".
        unlocked = await alice.wait_for_edit(
            card, lambda m: "Cancel and refund" in labels(m), timeout=5
        )
        seen_at = time.time()
        assert seen_at >= activation.cancel_after
        assert seen_at - activation.cancel_after < 1.0
        assert "waiting for the SMS" in unlocked.text
        # A redraw every few seconds, not a flood of edits.
        elapsed = seen_at - (activation.purchased_at or activation.created_at)
        assert unlocked.edited <= elapsed / interval + 2
        assert emulator.flood_429_count == 0


async def test_a_number_the_upstream_no_longer_knows_is_refunded_and_the_user_told(
    tmp_path: Path, sandbox: Sandbox, emulator: BotAPIEmulator
) -> None:
    from bot.daisysim import DaisySimClient, RateLimits, TooEarly

    async with app_with_poller(tmp_path, sandbox, emulator) as app:
        carol, card, activation = await buy_signal(app, emulator, 7001)
        assert activation.upstream_id is not None
        # Someone with the same API key cancels it behind the bot's back (once the lock
        # allows): check-all now answers "Invalid" for it.
        async with DaisySimClient(
            sandbox.base_url, DAISYSIM_KEY, limits=RateLimits().scaled(TIME_SCALE)
        ) as other:

            async def cancel_upstream() -> bool:
                try:
                    await other.cancel(activation.upstream_id or "")
                except TooEarly:
                    return False
                return True

            await wait_until(cancel_upstream, timeout=10, interval=0.3, what="cancelled upstream")
        notice = await carol.wait_for(lambda m: m.text.startswith("↩️"), after=card, timeout=5)
        assert SIGNAL_PRICE in notice.text
        stored = await app.repo.activations.get(activation.id)
        assert stored is not None
        assert stored.state == "expired"
        assert stored.error_code == "INVALID"
        entries = await ledger(app, carol.id)
        assert [(e.kind, e.amount) for e in entries][-1] == ("refund", SIGNAL_UNITS)
        # Dropped from polling: it is not asked about again.
        assert activation.upstream_id not in poller_of(app).schedule
        await assert_books_balanced(app)
