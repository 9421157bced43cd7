"""A real bot process (`python -m bot run`) is killed with SIGKILL right after a Refresh tap
stored a code, before its message went out: Telegram was holding the chat back with a 429, so
the message was still waiting in the outbox. After the restart the user gets the code, once.

Before issue 13 the Refresh path sent the code message directly after its transaction; a
crash (or a 429) there lost it, and nothing re-sent it. The test waits for conditions (the
sandbox's request counters, the database, the emulator's 429 counter), never a fixed time.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from pathlib import Path

import pytest

from bench.chaos import KEY, TOKEN, BotProcess, provision_users
from bot.emulator import BotAPIEmulator, EmulatedUser
from bot.emulator.flood import FloodLimits
from bot.emulator.models import ChatMessage
from bot.ledger_check import check_ledger
from bot.sandbox import Sandbox
from storage.db import Database
from storage.models import Activation
from storage.repo import Repo
from tests.fixtures.waiting import wait_until

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="needs SIGKILL")

ROOT = Path(__file__).resolve().parent.parent
SCALE = 30.0
BUY_LABEL = "Signal —"
REFRESH = "Refresh"


def _env(sb: Sandbox, emu: BotAPIEmulator, db_path: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DAISYSIM_", "BOT_", "TELEGRAM_", "DATABASE_", "MARKUP_", "POLL_"))
    }
    env.update(
        {
            "PYTHONPATH": str(ROOT),
            "BOT_TOKEN": TOKEN,
            "TELEGRAM_API_URL": emu.api_url,
            "DAISYSIM_API_KEY": KEY,
            "DAISYSIM_BASE_URL": sb.base_url,
            "DATABASE_PATH": str(db_path),
            "DAISYSIM_TIME_SCALE": f"{SCALE:g}",
            # After its first look the poller leaves the number alone: the code is found by
            # the user's Refresh, not by a poll.
            "POLL_MIN_INTERVAL_SECONDS": "3600",
            "CANCEL_LOCK_SECONDS": f"{180.0 / SCALE:g}",
            "AUTO_CANCEL_AFTER_SECONDS": "3600",
            "LOG_LEVEL": "INFO",
        }
    )
    return env


async def _activation(db_path: Path, user_id: int) -> Activation | None:
    """The user's one number, as the bot process last stored it."""
    db = await Database.open(db_path, readonly=True)
    try:
        found = await Repo(db).activations.last_for_user(user_id, 1)
    finally:
        await db.close()
    return found[0] if found and found[0].upstream_id is not None else None


def _code_messages(user: EmulatedUser, card: ChatMessage, code: str) -> list[ChatMessage]:
    """Messages announcing the code: any bot message with it but the number's own card."""
    return [
        m
        for m in user.messages
        if m.from_bot and m.message_id != card.message_id and code in m.text
    ]


async def test_a_code_stored_by_refresh_reaches_the_user_after_a_sigkill(
    tmp_path: Path,
) -> None:
    db_path = tmp_path / "bot.sqlite3"
    [user_id] = await provision_users(db_path, 1)
    async with (
        Sandbox(time_scale=SCALE, start_balance_units=10**9) as sb,
        BotAPIEmulator(token=TOKEN, flood=FloodLimits.off()) as emu,
    ):
        bot = BotProcess(_env(sb, emu, db_path), tmp_path, emu)
        await bot.start()
        try:
            user = emu.user(user_id, "Ann", language_code="en")
            await user.wait_for(after=await user.send("/start"), timeout=30)
            sent = await user.send("/buy")
            services = await user.wait_for(
                lambda m: any(BUY_LABEL in b.text for b in m.all_buttons), after=sent
            )
            await user.press(services, BUY_LABEL, timeout=30)
            card = await user.wait_for(
                lambda m: any(REFRESH in b.text for b in m.all_buttons), after=services
            )
            bought = await wait_until(
                lambda: _activation(db_path, user_id), what="the purchase stored"
            )
            assert bought is not None
            assert bought.upstream_id is not None
            await wait_until(
                lambda: _checked_once(sb), timeout=30, what="the poller's first look at it"
            )

            code = await sb.control.deliver_code(bought.upstream_id)
            # From now on Telegram answers every message to this chat with a 429.
            emu.flood_limits = FloodLimits(chat_per_second=0.2, chat_burst=0)
            held_back = emu.flood_429_count
            tap = asyncio.ensure_future(user.press(card, REFRESH, timeout=30))
            try:

                async def stored_and_held() -> bool:
                    now = await _activation(db_path, user_id)
                    stored = now is not None and now.state == "completed" and now.code == code
                    return stored and emu.flood_429_count > held_back

                await wait_until(stored_and_held, timeout=30, what="the code stored, held back")
                assert _code_messages(user, card, code) == []
                await bot.kill()
            finally:
                with contextlib.suppress(Exception):
                    await tap

            emu.flood_limits = FloodLimits.off()
            await bot.start()
            await wait_until(
                lambda: _code_messages(user, card, code),
                timeout=30,
                what="the code message after the restart",
            )
            assert await bot.stop() == 0
            assert len(_code_messages(user, card, code)) == 1
        finally:
            if bot.running:
                await bot.kill()
    db = await Database.open(db_path, readonly=True)
    try:
        assert await check_ledger(Repo(db)) == []
    finally:
        await db.close()


async def _checked_once(sb: Sandbox) -> bool:
    stats = await sb.control.stats()
    return stats.requests.get("check-all", 0) + stats.requests.get("check", 0) >= 1
