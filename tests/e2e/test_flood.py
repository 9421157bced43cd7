"""Handler replies and the outbox share one account of Telegram's flood limits.

The emulator enforces Telegram-like limits here (the other e2e tests switch them off): a
user tapping faster than Telegram lets the bot answer in one chat, then a code arriving for
them through the outbox, must see every reply and the code, with no 429 served.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from bot.emulator import BotAPIEmulator, ChatMessage, FloodLimits
from bot.sandbox import Sandbox
from tests.conftest import BOT_TOKEN, make_settings, running_app
from tests.e2e.helpers import (
    assert_books_balanced,
    buy_from,
    is_code_message,
    no_traceback,
    open_services,
    start,
    with_card,
)


async def test_fast_taps_and_a_code_get_through_without_a_429(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    async with BotAPIEmulator(token=BOT_TOKEN, flood=FloodLimits()) as emu:
        settings = make_settings(tmp_path, sandbox, emu)
        async with running_app(settings, emu) as app:
            alice, menu = await start(emu, app, 7001)
            services = await open_services(alice, menu)
            await alice.press(services, "⭐ Favourites")
            editor = await alice.wait_for_edit(services, lambda m: m.text.startswith("Favourites"))
            # Twelve star toggles in a row: each is an edit of the same message, far above
            # Telegram's one a second (with a short burst) for a private chat.
            for _ in range(12):
                row = next(r for r in editor.buttons if r[0].text.endswith(" Signal"))
                answer = await alice.press(editor, data=row[0].callback_data, timeout=15)
                assert answer is not None
                editor = await alice.wait_for_edit(editor, timeout=15)
            assert "⭐ Signal" not in [b.text for row in editor.buttons for b in row]
            await alice.press(editor, "✅ Done")
            services = await alice.wait_for_edit(editor, lambda m: m.text.startswith("Choose"))

            card = await buy_from(alice, services, "Signal")
            activation = await with_card(app, 7001, card)
            assert activation.upstream_id is not None
            await sandbox.control.deliver_code(activation.upstream_id, "424242")
            code = await alice.wait_for(
                lambda m: is_code_message(m) and "424242" in m.text, timeout=15
            )
            assert code is not None
            assert emu.flood_429_count == 0
            await assert_books_balanced(app)


# What a user types, half a second apart, and a word that only the answer to it contains.
EIGHT_MESSAGES = [
    ("/balance", "Balance"),
    ("/numbers", "My numbers"),
    ("whats", "WhatsApp"),
    ("tele", "Telegram"),
    ("/help", "How it works"),
    ("/settings", "Settings"),
    ("/terms", "Terms"),
    ("/paysupport", "Payment"),
]


async def test_eight_messages_half_a_second_apart_are_answered_in_order_and_at_once(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    # Telegram's real limits in the emulator: one message a second to a private chat with
    # short bursts. The bot must not hold its answers back below them, nor reorder them.
    async with BotAPIEmulator(token=BOT_TOKEN, flood=FloodLimits()) as emu:
        settings = make_settings(tmp_path, sandbox, emu)
        async with running_app(settings, emu) as app:
            alice, menu = await start(emu, app, 7101)
            sent = []
            for text, _ in EIGHT_MESSAGES:
                sent.append(await alice.send(text))
                # The user's own rhythm, not a wait for the bot: the next message is typed
                # whether or not the last one was answered.
                await asyncio.sleep(0.5)
            last_sent = time.monotonic() - 0.5

            def all_answered(_: ChatMessage) -> bool:
                return len(answers_after(alice.history, menu)) >= len(EIGHT_MESSAGES)

            await alice.wait_for(all_answered, after=menu, timeout=10)
            answers = answers_after(alice.history, menu)
            assert [a.received_at - last_sent <= 1.0 for a in answers] == [True] * 8, [
                round(a.received_at - last_sent, 2) for a in answers
            ]
            # Each answer comes after the message it answers and before the next one's.
            for (text, word), answer in zip(EIGHT_MESSAGES, answers, strict=True):
                shown = " ".join([answer.text, *(b.text for b in answer.all_buttons)])
                assert word in shown, (text, shown)
            assert emu.flood_429_count == 0
            no_traceback(alice)


def answers_after(history: list[ChatMessage], menu: ChatMessage) -> list[ChatMessage]:
    """The bot's messages after `menu`, in the order the chat shows them."""
    return [m for m in history if m.from_bot and m.message_id > menu.message_id]
