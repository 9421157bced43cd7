"""`daisybot run` as a real process: no DAISYSIM_API_KEY means the built-in sandbox, the menu
says SANDBOX, a new user gets play money, and Ctrl-C stops it cleanly without a traceback."""

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
        if not key.startswith(("DAISYSIM_", "BOT_", "TELEGRAM_", "DATABASE_", "MARKUP_"))
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


async def _press_and_wait(user: EmulatedUser, message: ChatMessage, label: str) -> ChatMessage:
    await user.press(message, label, timeout=10)
    return await user.wait_for_edit(message, timeout=10)
