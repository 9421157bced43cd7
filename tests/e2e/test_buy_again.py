""" "Buy again" pays from the wallet that paid the card's purchase: a number the group's wallet
bought is bought again on the group's money, within the member's daily limit, even when the
button is pressed in the private chat the card was sent to. Real app, Bot API emulator,
sandbox, SQLite; asserts on what the member sees and on both wallets' ledgers.
"""

from __future__ import annotations

from bot.app import App
from bot.emulator import BotAPIEmulator, ChatMessage, EmulatedGroup, EmulatedUser
from bot.sandbox import Sandbox
from tests.e2e.helpers import assert_books_balanced, balance, no_traceback, start

GROUP_ID = -100700
SIGNAL = "Signal — $0.60"


async def _group_balance(app: App) -> int:
    wallet = await app.repo.wallets.get_by_owner("group", GROUP_ID)
    assert wallet is not None
    return wallet.balance


async def _in_group(user: EmulatedUser, group: EmulatedGroup, text: str) -> ChatMessage:
    sent = await user.send(text, chat=group)
    return await group.wait_for(after=sent)


def _buy_again_label(card: ChatMessage) -> str:
    return next(label for row in card.button_texts for label in row if "Buy again" in label)


async def _code_for_last_purchase(
    app: App, sandbox: Sandbox, user: EmulatedUser, card: ChatMessage
) -> ChatMessage:
    """Deliver the code of the user's newest number; the card then offers "Buy again"."""
    [activation] = await app.repo.activations.last_for_user(user.id, 1)
    assert activation.upstream_id is not None
    await sandbox.control.deliver_code(activation.upstream_id)
    return await user.wait_for_edit(card, lambda m: "Buy again" in str(m.button_texts))


async def _group_number(
    app: App, emulator: BotAPIEmulator, sandbox: Sandbox, *, limit: str | None = None
) -> tuple[EmulatedUser, EmulatedGroup, ChatMessage]:
    """Alice's group with $5 on its wallet; Dave (with $10 of his own, none of which may pay
    for the group's numbers) bought a Signal number there, got its card privately and its
    code. Returns Dave, the group and the finished card, which offers "Buy again"."""
    alice, _ = await start(emulator, app, 1001, name="Alice", funds=100_000)
    dave, _ = await start(emulator, app, 1004, name="Dave", funds=100_000)
    group = emulator.group(GROUP_ID, "Team")
    group.add_member(alice, "creator")
    group.add_member(dave, "member")
    await group.add_bot(by=alice)
    await group.wait_for(lambda m: "own wallet" in m.text)
    await _in_group(alice, group, "/fund 5")
    if limit is not None:
        await _in_group(alice, group, f"/limit {limit}")
    services = await _in_group(dave, group, "/buy")
    await dave.press(services, SIGNAL)
    # Dave started the bot, so his card comes to the private chat.
    card = await dave.wait_for(lambda m: m.text.startswith("📱"))
    assert "group wallet" in card.text
    return dave, group, await _code_for_last_purchase(app, sandbox, dave, card)


async def test_buy_again_on_a_group_paid_card_pays_from_the_group_within_the_limit(
    bot_app: App, emulator: BotAPIEmulator, sandbox: Sandbox
) -> None:
    app = bot_app
    # A limit of $1.20: two Signal numbers a day.
    dave, _, finished = await _group_number(app, emulator, sandbox, limit="1.20")
    again_label = _buy_again_label(finished)
    assert "group" in again_label
    assert await _group_balance(app) == 50_000 - 6_000

    # Pressed in the private chat: the group pays, Dave's own wallet does not.
    before = dave.messages[-1].message_id
    await dave.press(finished, again_label)
    second = await dave.wait_for(lambda m: m.text.startswith("📱"), after=before)
    assert "group wallet" in second.text
    assert await _group_balance(app) == 50_000 - 2 * 6_000
    assert await balance(app, 1004) == 100_000
    bought = await app.repo.activations.last_for_user(1004, 10)
    group_wallet = await app.repo.wallets.get_by_owner("group", GROUP_ID)
    assert group_wallet is not None
    assert [a.wallet_id for a in bought] == [group_wallet.id, group_wallet.id]
    assert all(a.chat_id == GROUP_ID for a in bought)

    # The limit holds for "Buy again" too: a third Signal today is refused, nothing charged.
    finished = await _code_for_last_purchase(app, sandbox, dave, second)
    again_label = _buy_again_label(finished)
    before = dave.messages[-1].message_id
    await dave.press(finished, again_label)
    refused = await dave.wait_for(lambda m: "daily limit" in m.text, after=before)
    assert "$1.20" in refused.text
    assert await _group_balance(app) == 50_000 - 2 * 6_000
    assert await balance(app, 1004) == 100_000
    assert len(await app.repo.activations.last_for_user(1004, 10)) == 2
    await assert_books_balanced(app)
    no_traceback(dave)


async def test_buy_again_of_a_group_number_after_leaving_the_group_buys_nothing(
    bot_app: App, emulator: BotAPIEmulator, sandbox: Sandbox
) -> None:
    app = bot_app
    dave, group, finished = await _group_number(app, emulator, sandbox)
    again_label = _buy_again_label(finished)

    group.add_member(dave, "left")
    before = dave.messages[-1].message_id
    await dave.press(finished, again_label)
    refused = await dave.wait_for(lambda m: "no longer a member" in m.text, after=before)
    assert "Team" in refused.text
    assert await _group_balance(app) == 50_000 - 6_000
    assert await balance(app, 1004) == 100_000
    assert len(await app.repo.activations.last_for_user(1004, 10)) == 1
    await assert_books_balanced(app)
    no_traceback(dave)
