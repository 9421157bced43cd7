"""Handler replies and the outbox share one account of Telegram's flood limits.

The emulator enforces Telegram-like limits here (the other e2e tests switch them off): a
user tapping faster than Telegram lets the bot answer in one chat, then a code arriving for
them through the outbox, must see every reply and the code, with no 429 served.
"""

from __future__ import annotations

from pathlib import Path

from bot.emulator import BotAPIEmulator, FloodLimits
from bot.sandbox import Sandbox
from tests.conftest import BOT_TOKEN, make_settings, running_app
from tests.e2e.helpers import (
    assert_books_balanced,
    buy_from,
    is_code_message,
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
            # Twelve star toggles in a row: each is an edit of the same message, far above
            # Telegram's one a second (with a short burst) for a private chat.
            for _ in range(12):
                row = next(r for r in services.buttons if r[0].text.startswith("Signal"))
                answer = await alice.press(services, data=row[1].callback_data, timeout=15)
                assert answer is not None
                services = await alice.wait_for_edit(services, timeout=15)
            assert "★" not in "".join(b.text for row in services.buttons for b in row)

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
