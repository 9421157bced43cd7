"""`daisybot run` as a real process: no DAISYSIM_API_KEY means the built-in sandbox, the menu
says SANDBOX, a new user gets play money, crypto top-ups go to a local Crypto Pay, and Ctrl-C
stops it cleanly without a traceback."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

from bot.emulator import BotAPIEmulator, ChatMessage, EmulatedUser
from tests.conftest import BOT_TOKEN


async def test_daisybot_run_in_sandbox_mode_then_ctrl_c(
    tmp_path: Path, emulator: BotAPIEmulator
) -> None:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(
            ("DAISYSIM_", "BOT_", "TELEGRAM_", "DATABASE_", "MARKUP_", "CRYPTOPAY_")
        )
    }
    env.update(
        {
            "BOT_TOKEN": BOT_TOKEN,
            "TELEGRAM_API_URL": emulator.api_url,
            "DATABASE_PATH": str(tmp_path / "data" / "bot.sqlite3"),
            "SANDBOX_START_BALANCE_USD": "10",
            "LOG_LEVEL": "DEBUG",
        }
    )
    polled = asyncio.create_task(emulator.wait_polling(timeout=30))
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        "run",
        cwd=tmp_path,  # no .env here
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        await polled
        alice = emulator.user(8001, "Alice", language_code="en")
        sent = await alice.send("/start")
        menu = await alice.wait_for(after=sent, timeout=10)
        assert "SANDBOX" in menu.text
        assert "Balance: $10.00" in menu.text
        services = await _press_and_wait(alice, menu, "Buy a number")
        assert "WhatsApp — $1.85" in services.button_texts[0][0]
        commands = {c["command"] for c in emulator.commands(language_code="ru")}
        assert "buy" in commands
        # No CRYPTOPAY_TOKEN in sandbox mode: the local Crypto Pay makes a real invoice.
        await alice.send("/balance")
        screen = await alice.wait_for(lambda m: "Balance:" in m.text, timeout=10)
        amounts = await _press_and_wait(alice, screen, "Top up")
        crypto = await _press_and_wait(alice, amounts, "💎 Crypto")
        before = alice.messages[-1].message_id
        await alice.press(crypto, "$5.00", timeout=10)
        invoice = await alice.wait_for(
            lambda m: m.text.startswith("💎 Invoice for"), after=before, timeout=10
        )
        [pay] = [b for b in invoice.all_buttons if b.url]
        assert pay.url is not None
        assert pay.url.startswith("http://127.0.0.1:")
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGINT)
        stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=20)
    log = stderr.decode()
    assert process.returncode == 0, log
    assert "Traceback" not in log
    assert "TEST-token" not in log
    assert "TEST-token" not in stdout.decode()
    assert "built-in sandbox" in log
    assert "local Crypto Pay" in log


async def _press_and_wait(user: EmulatedUser, message: ChatMessage, label: str) -> ChatMessage:
    await user.press(message, label, timeout=10)
    return await user.wait_for_edit(message, timeout=10)
