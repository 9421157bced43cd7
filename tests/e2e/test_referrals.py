"""Referrals end to end: the real app polling the Bot API emulator, the sandbox as DaisySim, a
temporary SQLite file, REFERRAL_PERCENT=10 and REFERRAL_CAP_USD=0.10. A new user who starts
through an invite link is tied to the inviter once; the inviter earns 10% of each of their
purchases that gets its code, up to the cap, and nothing for a cancelled (refunded) one; a
self-referral, a re-tie and an existing user's start link tie nothing. Each test checks the
ledger and ledger-check."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.app import App
from bot.emulator import BotAPIEmulator, ChatMessage, EmulatedUser
from bot.sandbox import Sandbox
from storage.models import LedgerEntry
from tests.e2e.helpers import (
    assert_books_balanced,
    buy_from,
    fund,
    is_code_message,
    ledger,
    no_traceback,
    open_services,
    start,
    with_card,
)
from tests.e2e.test_admin import ADMIN, admin_app, say

SIGNAL = 6_000  # the sandbox's Signal price, $0.60: 10% of it is $0.06
EARNED = "👥 A friend you invited bought a number"


@pytest.fixture
async def app(tmp_path: Path, sandbox: Sandbox, emulator: BotAPIEmulator) -> AsyncIterator[App]:
    async with admin_app(
        tmp_path, sandbox, emulator, referral_percent="10", referral_cap_usd="0.10"
    ) as running:
        yield running


def referral_entries(entries: list[LedgerEntry]) -> list[tuple[str, int]]:
    return [(e.kind, e.amount) for e in entries if e.kind == "referral"]


async def invited(emu: BotAPIEmulator, user_id: int, payload: str) -> ChatMessage:
    user = emu.user(user_id, f"User{user_id}", language_code="en")
    sent = await user.send(f"/start {payload}")
    return await user.wait_for(lambda m: "Balance" in m.text, after=sent)


async def buy_signal(app: App, user: EmulatedUser) -> ChatMessage:
    menu = await say(user, "/start")
    return await buy_from(user, await open_services(user, menu), "Signal")


async def code_arrives(app: App, sandbox: Sandbox, user: EmulatedUser, card: ChatMessage) -> None:
    activation = await with_card(app, user.id, card)
    assert activation.upstream_id is not None
    await sandbox.control.deliver_code(activation.upstream_id)
    await user.press(card, "Refresh")
    await user.wait_for(is_code_message, after=card)


async def test_a_referral_earns_on_completed_purchases_only_and_stops_at_the_cap(
    app: App, emulator: BotAPIEmulator, sandbox: Sandbox
) -> None:
    alice, menu = await start(emulator, app, 2001, name="Alice", funds=0)
    await alice.press(menu, "Balance")
    screen = await alice.wait_for_edit(menu, lambda m: "Invite friends" in str(m.button_texts))
    await alice.press(screen, "Invite friends")
    invite = await alice.wait_for_edit(screen, lambda m: "Your invite link" in m.text)
    assert "https://t.me/test_bot?start=ref_2001" in invite.text
    assert "Friends who joined through it: 0" in invite.text
    assert "You get 10% of every purchase" in invite.text
    assert "up to $0.10 per friend" in invite.text

    await invited(emulator, 2002, "ref_2001")
    bob = emulator.user(2002, "User2002")
    await fund(app, 2002, 100_000)

    # A purchase cancelled for a refund earns nothing.
    card = await buy_signal(app, bob)
    await bob.wait_for_edit(card, lambda m: "Cancel and refund" in str(m.button_texts))
    await bob.press(card, "Cancel and refund")
    await bob.wait_for_edit(card, lambda m: "refunded" in m.text.lower())
    assert referral_entries(await ledger(app, 2001)) == []

    # Completed: 10% of $0.60, then the rest of the $0.10 cap, then nothing.
    for _ in range(3):
        await code_arrives(app, sandbox, bob, await buy_signal(app, bob))
    await alice.wait_for(lambda m: m.text.startswith(EARNED) and "+$0.04" in m.text)
    await app.outbox.wait_idle(5)
    assert referral_entries(await ledger(app, 2001)) == [("referral", 600), ("referral", 400)]
    notices = [m for m in alice.history if m.text.startswith(EARNED)]
    assert [("+$0.06" in m.text, "+$0.04" in m.text) for m in notices] == [
        (True, False),
        (False, True),
    ]
    # Bob paid his full price each time: the reward is ours, not his.
    bob_kinds = [(e.kind, e.amount) for e in await ledger(app, 2002)]
    assert bob_kinds.count(("purchase", -SIGNAL)) == 4
    assert bob_kinds.count(("refund", SIGNAL)) == 1

    await alice.press(invite, "Balance")
    again = await alice.wait_for_edit(invite, lambda m: "invited friend" in m.text)
    await alice.press(again, "Invite friends")
    screen = await alice.wait_for_edit(again, lambda m: "Your invite link" in m.text)
    assert "Friends who joined through it: 1" in screen.text
    assert "Earned from their purchases: $0.10" in screen.text
    # The admins' stats count it by its source.
    admin, _ = await start(emulator, app, ADMIN, name="Root", funds=0)
    panel = await say(admin, "/admin")
    assert "by source: top-up $10.00 · invited friend's purchase $0.10" in panel.text
    assert "invited friend's purchase $0.10" in panel.text
    assert "Invited users: 1 · earned by their referrers: $0.10" in panel.text
    await assert_books_balanced(app)
    no_traceback(alice)
    no_traceback(bob)


async def test_self_referral_re_tying_and_existing_users_tie_nothing(
    app: App, emulator: BotAPIEmulator, sandbox: Sandbox
) -> None:
    await start(emulator, app, 3001, name="Alice", funds=0)
    dave, _ = await start(emulator, app, 3004, name="Dave", funds=0)
    # A new user through their own link (a forwarded link they made up): not tied.
    await invited(emulator, 3002, "ref_3002")
    # A new user through an unknown or malformed link: not tied, the menu all the same.
    await invited(emulator, 3003, "ref_999999")
    await invited(emulator, 3005, "ref_abc")
    # Tied to Alice, then a second link (Dave's) does not re-tie.
    await invited(emulator, 3006, "ref_3001")
    carol = emulator.user(3006, "User3006")
    sent = await carol.send("/start ref_3004")
    await carol.wait_for(lambda m: "Balance" in m.text, after=sent)
    # Dave knew the bot before Alice's link reached him: not tied.
    sent = await dave.send("/start ref_3001")
    await dave.wait_for(lambda m: "Balance" in m.text, after=sent)

    for user_id in (3002, 3003, 3004, 3005):
        assert await app.repo.referrals.of_referee(user_id) is None, user_id
    tie = await app.repo.referrals.of_referee(3006)
    assert tie is not None
    assert tie.referrer_id == 3001
    assert (await app.repo.referrals.summary(3004)).friends == 0

    # Dave's purchases earn Alice nothing; Carol's earn Alice, not Dave.
    await fund(app, 3004, 100_000)
    await fund(app, 3006, 100_000)
    await code_arrives(app, sandbox, dave, await buy_signal(app, dave))
    await code_arrives(app, sandbox, carol, await buy_signal(app, carol))
    assert referral_entries(await ledger(app, 3001)) == [("referral", 600)]
    assert referral_entries(await ledger(app, 3004)) == []
    await assert_books_balanced(app)


async def test_referrals_are_off_by_default(
    tmp_path: Path, sandbox: Sandbox, emulator: BotAPIEmulator
) -> None:
    async with admin_app(tmp_path, sandbox, emulator) as app:
        alice, menu = await start(emulator, app, 4001, name="Alice", funds=0)
        await invited(emulator, 4002, "ref_4001")
        bob = emulator.user(4002, "User4002")
        await fund(app, 4002, 100_000)
        await code_arrives(app, sandbox, bob, await buy_signal(app, bob))
        assert referral_entries(await ledger(app, 4001)) == []
        # Still tied: turning the share on later rewards the friends already brought.
        assert (await app.repo.referrals.summary(4001)).friends == 1
        await alice.press(menu, "Balance")
        screen = await alice.wait_for_edit(menu, lambda m: "Invite" in str(m.button_texts))
        await alice.press(screen, "Invite friends")
        invite = await alice.wait_for_edit(screen, lambda m: "Your invite link" in m.text)
        assert "switched off" in invite.text
        await assert_books_balanced(app)
