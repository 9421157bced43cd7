"""Groups end to end: the bot added to a group opens its wallet; a group admin funds it and
sets the member limit; a member buys up to the limit and is refused past it; a member who is
not an admin can neither fund nor change the limit; group cards obey the buyer and the
group's admins only. Real app, Bot API emulator, sandbox, SQLite; asserts on chats and ledger.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.app import App
from bot.emulator import BotAPIEmulator, ChatMessage, EmulatedGroup, EmulatedUser
from bot.sandbox import Sandbox
from storage.models import LedgerEntry
from tests.conftest import make_settings, running_app
from tests.e2e.helpers import assert_books_balanced, balance, no_traceback, start
from tests.fixtures.waiting import wait_until

GROUP_ID = -100500
SIGNAL = "Signal — $0.60"


@pytest.fixture
async def app(tmp_path: Path, sandbox: Sandbox, emulator: BotAPIEmulator) -> AsyncIterator[App]:
    settings = make_settings(tmp_path, sandbox, emulator)
    async with running_app(settings, emulator) as running:
        yield running


async def group_balance(app: App) -> int:
    wallet = await app.repo.wallets.get_by_owner("group", GROUP_ID)
    assert wallet is not None
    return wallet.balance


async def group_entries(app: App) -> list[LedgerEntry]:
    wallet = await app.repo.wallets.get_by_owner("group", GROUP_ID)
    assert wallet is not None
    return list(reversed(await app.repo.ledger.last_entries(wallet.id, 100)))


async def in_group(user: EmulatedUser, group: EmulatedGroup, text: str) -> ChatMessage:
    sent = await user.send(text, chat=group)
    return await group.wait_for(after=sent)


async def team(
    emu: BotAPIEmulator, app: App
) -> tuple[EmulatedGroup, EmulatedUser, EmulatedUser, ChatMessage]:
    """A group whose creator Alice (with $10 of her own) added the bot; Bob is a member who
    never wrote to the bot privately."""
    alice, _ = await start(emu, app, 1001, name="Alice", funds=100_000)
    bob = emu.user(1002, "Bob")
    group = emu.group(GROUP_ID, "Team")
    group.add_member(alice, "creator")
    group.add_member(bob, "member")
    await group.add_bot(by=alice)
    welcome = await group.wait_for(lambda m: "own wallet" in m.text)
    return group, alice, bob, welcome


@pytest.mark.both_modes
async def test_the_bot_joining_opens_a_group_wallet(app: App, emulator: BotAPIEmulator) -> None:
    _, _, _, welcome = await team(emulator, app)
    assert "/buy" in welcome.text
    scope = {"type": "all_group_chats"}
    english = [c["command"] for c in emulator.commands(scope)]
    russian = {c["command"]: c["description"] for c in emulator.commands(scope, "ru")}
    # Members' menu carries only what they may use; admins' scope adds the admin commands,
    # with no "(admins)" tag since the scope already says it.
    assert english == ["buy", "wallet", "help"]
    assert russian["wallet"] == "Кошелёк группы"
    admins = {"type": "all_chat_administrators"}
    for lang in ("", "ru"):
        listed = {c["command"]: c["description"] for c in emulator.commands(admins, lang)}
        assert list(listed) == ["buy", "wallet", "fund", "limit", "spending", "help"]
        assert not any("admin" in d or "админ" in d for d in listed.values())
    chat = await app.repo.chats.get(GROUP_ID)
    assert chat is not None
    assert chat.title == "Team"
    assert await group_balance(app) == 0


@pytest.mark.both_modes
async def test_funded_by_an_admin_spent_by_a_member_up_to_the_limit(
    app: App, emulator: BotAPIEmulator
) -> None:
    group, alice, bob, _ = await team(emulator, app)
    panel = await in_group(alice, group, "/wallet")
    assert "Balance: $0.00" in panel.text
    await alice.press(panel, "Fund from my balance")
    amounts = await group.wait_for_edit(panel, lambda m: "Move money" in m.text)
    await alice.press(amounts, "$5.00")
    funded = await group.wait_for_edit(amounts, lambda m: "moved $5.00" in m.text)
    assert "Balance: $5.00" in funded.text
    assert await group_balance(app) == 50_000
    assert await balance(app, 1001) == 50_000
    assert [(e.kind, e.amount) for e in await group_entries(app)] == [("transfer_in", 50_000)]

    answer = await in_group(alice, group, "/limit 1.20")
    assert "Daily limit per member: $1.20" in answer.text
    chat = await app.repo.chats.get(GROUP_ID)
    assert chat is not None
    assert chat.member_daily_limit_units == 12_000

    cards: list[ChatMessage] = []
    for _ in range(2):
        # A fresh list each time: a button buys once however often it is tapped.
        services = await in_group(bob, group, "/buy")
        assert "paid by the group wallet" in services.text
        before = group.messages[-1].message_id
        await bob.press(services, SIGNAL)
        cards.append(await group.wait_for(lambda m: m.text.startswith("📱"), after=before))
    # Bob never started the bot: his numbers come to the group, with a hint.
    assert any("Start a private chat with me" in m.text for m in group.history)
    assert await group_balance(app) == 50_000 - 2 * 6_000
    services = await in_group(bob, group, "/buy")
    assert "you can spend today: $0.00" in services.text
    before = group.messages[-1].message_id
    await bob.press(services, SIGNAL)
    refused = await group.wait_for(lambda m: "daily limit" in m.text, after=before)
    assert "your daily limit in this group is $1.20" in refused.text
    assert "spent $1.20 today" in refused.text
    assert await group_balance(app) == 50_000 - 2 * 6_000
    bought = await app.repo.activations.last_for_user(1002, 10)
    assert len(bought) == 2
    assert {a.wallet_id for a in bought} == {(await group_entries(app))[0].wallet_id}
    assert await balance(app, 1002) == 0  # his own wallet paid nothing
    kinds = [(e.kind, e.amount) for e in await group_entries(app)]
    assert kinds == [("transfer_in", 50_000), ("purchase", -6_000), ("purchase", -6_000)]
    await assert_books_balanced(app)
    no_traceback(alice)


async def test_a_member_cannot_fund_or_change_the_limit(app: App, emulator: BotAPIEmulator) -> None:
    group, _, bob, _ = await team(emulator, app)
    await start(emulator, app, 1002, name="Bob", funds=100_000)
    panel = await in_group(bob, group, "/wallet")
    for label in ("Fund from my balance", "Daily limit", "Fund with Stars", "Spending"):
        answer = await bob.press(panel, label)
        assert answer.text == "Only the group's admins can do this."
        assert answer.show_alert
    # Forged buttons that would move money or change the limit directly.
    for data in ("v1g:a:50000:abcdefgh", "v1g:L:0:", "v1g:i:50000:"):
        answer = await bob.press(panel, data=data)
        assert answer.text == "Only the group's admins can do this."
    for command in ("/fund 5", "/limit 0", "/limit off", "/spending"):
        reply = await in_group(bob, group, command)
        assert reply.text == "Only the group's admins can do this.", command
    assert await group_balance(app) == 0
    assert await balance(app, 1002) == 100_000
    chat = await app.repo.chats.get(GROUP_ID)
    assert chat is not None
    assert chat.member_daily_limit_units is None
    assert not [m for m in group.history if m.invoice is not None]
    # Made an admin, Bob can.
    group.add_member(bob, "administrator")
    reply = await in_group(bob, group, "/fund 2")
    assert "Bob moved $2.00" in reply.text
    assert await group_balance(app) == 20_000
    await assert_books_balanced(app)


async def test_group_cards_obey_the_buyer_and_the_group_admins(
    app: App, emulator: BotAPIEmulator, sandbox: Sandbox
) -> None:
    group, alice, bob, _ = await team(emulator, app)
    carol = emulator.user(1003, "Carol")
    group.add_member(carol, "member")
    await in_group(alice, group, "/fund 5")
    services = await in_group(bob, group, "/buy")
    before = group.messages[-1].message_id
    await bob.press(services, SIGNAL)
    card = await group.wait_for(lambda m: m.text.startswith("📱"), after=before)
    await wait_until(lambda: _card_stored(app, card), what="the card stored on the activation")
    await sandbox.control.advance_clock(200)  # past the upstream's 3-minute cancel lock
    [activation] = await app.repo.activations.last_for_user(1002, 1)
    locked = activation.cancel_after
    assert locked is not None
    await wait_until(lambda: time.time() > locked, timeout=10, what="the cancel lock to end")
    answer = await carol.press(card, data=f"v1a:c:{activation.id}")
    assert answer.text == "Only the buyer and the group's admins can use this."
    assert (await app.repo.activations.get(activation.id)).state == "waiting"  # type: ignore[union-attr]
    answer = await alice.press(card, data=f"v1a:c:{activation.id}")
    assert answer.text == "Cancelled: $0.60 is back on the group wallet."
    after = await app.repo.activations.get(activation.id)
    assert after is not None
    assert after.state == "cancelled"
    assert await group_balance(app) == 50_000
    await assert_books_balanced(app)


async def _card_stored(app: App, card: ChatMessage) -> bool:
    for activation in await app.repo.activations.last_for_user(1002, 5):
        if activation.card_message_id == card.message_id:
            return True
    return False


async def test_a_member_who_started_the_bot_gets_the_number_privately(
    app: App, emulator: BotAPIEmulator
) -> None:
    group, alice, _, _ = await team(emulator, app)
    dave, _ = await start(emulator, app, 1004, name="Dave", funds=0)
    group.add_member(dave, "member")
    await in_group(alice, group, "/fund 2")
    services = await in_group(dave, group, "/buy")
    before = group.messages[-1].message_id
    await dave.press(services, SIGNAL)
    said = await group.wait_for(lambda m: "sent privately" in m.text, after=before)
    assert "Dave bought a Signal number" in said.text
    card = await dave.wait_for(lambda m: m.text.startswith("📱"))
    assert "+1940" in card.text
    assert not any(m.text.startswith("📱") for m in group.history)
    # He can choose to have them in the group instead.
    sent = await dave.send("/settings")
    prefs = await dave.wait_for(after=sent)
    await dave.press(prefs, "To the group")
    await dave.wait_for_edit(prefs, lambda m: "✓ To the group" in str(m.button_texts))
    assert await app.repo.users.group_codes(1004) == "group"
    services = await in_group(dave, group, "/buy")
    before = group.messages[-1].message_id
    await dave.press(services, SIGNAL)
    await group.wait_for(lambda m: m.text.startswith("📱"), after=before)
    assert await group_balance(app) == 20_000 - 2 * 6_000
    await assert_books_balanced(app)


async def test_a_stars_invoice_in_the_group_funds_the_group(
    app: App, emulator: BotAPIEmulator
) -> None:
    group, alice, bob, _ = await team(emulator, app)
    panel = await in_group(alice, group, "/wallet")
    await alice.press(panel, "Fund with Stars")
    amounts = await group.wait_for_edit(panel, lambda m: "Choose an amount" in m.text)
    await alice.press(amounts, "$1.00 — 80 ⭐")
    invoice = await group.wait_for(lambda m: m.invoice is not None)
    # Anyone in the group may pay it; the Stars fund the group, not the payer.
    await bob.pay(invoice)
    paid = await group.wait_for(lambda m: "added $1.00 to the group wallet" in m.text)
    assert "Bob" in paid.text
    assert await group_balance(app) == 10_000
    assert [(e.kind, e.amount) for e in await group_entries(app)] == [("stars", 10_000)]
    [payment] = await app.repo.payments.list_for_user(1002)
    wallet = await app.repo.wallets.get_by_owner("group", GROUP_ID)
    assert wallet is not None
    assert payment.wallet_id == wallet.id
    await assert_books_balanced(app)


async def test_a_rate_limited_group_purchase_waits_in_line_privately(
    app: App, emulator: BotAPIEmulator, sandbox: Sandbox
) -> None:
    group, alice, _, _ = await team(emulator, app)
    dave, _ = await start(emulator, app, 1004, name="Dave", funds=0)
    group.add_member(dave, "member")
    await in_group(alice, group, "/fund 1")
    services = await in_group(dave, group, "/buy")
    await sandbox.control.add_fault("purchase", "error", code="RATE_LIMITED", seconds=2)
    before = group.messages[-1].message_id
    answer = await dave.press(services, SIGNAL)
    assert answer.text == "Buying…"
    said = await group.wait_for(lambda m: "in line" in m.text, after=before)
    assert "Dave is in line for a Signal number" in said.text
    place = await dave.wait_for(lambda m: "in line" in m.text)
    # Served after the pause: the place turns into the card, in Dave's private chat.
    card = await dave.wait_for_edit(place, lambda m: m.text.startswith("📱"), timeout=15)
    assert "+1940" in card.text
    assert await group_balance(app) == 10_000 - 6_000
    assert [(e.kind, e.amount) for e in await group_entries(app)] == [
        ("transfer_in", 10_000),
        ("purchase", -6_000),
    ]
    await assert_books_balanced(app)


async def test_a_group_upgraded_to_a_supergroup_keeps_its_wallet(
    app: App, emulator: BotAPIEmulator
) -> None:
    group, alice, _, _ = await team(emulator, app)
    await in_group(alice, group, "/fund 3")
    new_id = -1_000_000_100_500
    # What Telegram sends in the old group when it becomes a supergroup.
    update = emulator.push_update(
        {
            "message": {
                "message_id": 9_999,
                "date": int(time.time()),
                "chat": {"id": GROUP_ID, "type": "group", "title": "Team"},
                "from": alice.api_user,
                "migrate_to_chat_id": new_id,
            }
        }
    )
    await emulator.wait_confirmed(update["update_id"])

    async def moved() -> bool:
        wallet = await app.repo.wallets.get_by_owner("group", new_id)
        return wallet is not None and wallet.balance == 30_000

    await wait_until(moved, what="the wallet moved to the supergroup")
    assert await group_balance(app) == 0
    await assert_books_balanced(app)
