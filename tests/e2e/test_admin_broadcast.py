"""A broadcast to 500 users through the outbox, with the emulator's Telegram flood limits on:
everyone gets it exactly once and Telegram never has to answer 429. The run is bound by
Telegram's ~30 messages a second (and the share of it the outbox gives broadcasts)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.app import App
from bot.emulator import BotAPIEmulator, FloodLimits
from bot.sandbox import Sandbox
from tests.conftest import BOT_TOKEN, make_settings, running_app
from tests.fixtures.waiting import wait_until

ADMIN = 900
USERS = 500
FIRST_USER = 10_000
TEXT = "Maintenance tonight"


@pytest.fixture
async def flood_emulator() -> AsyncIterator[BotAPIEmulator]:
    # Off while 500 people start the bot (they would all write at once); on for the broadcast.
    async with BotAPIEmulator(token=BOT_TOKEN, flood=FloodLimits.off()) as emu:
        yield emu


@pytest.fixture
async def app(
    tmp_path: Path, sandbox: Sandbox, flood_emulator: BotAPIEmulator
) -> AsyncIterator[App]:
    settings = make_settings(tmp_path, sandbox, flood_emulator, admin_ids=str(ADMIN))
    async with running_app(settings, flood_emulator) as running:
        yield running


@pytest.mark.timeout(180)
async def test_a_broadcast_reaches_500_users_without_a_429(
    app: App, flood_emulator: BotAPIEmulator
) -> None:
    emu = flood_emulator
    admin = emu.user(ADMIN, "Root")
    people = [emu.user(FIRST_USER + i, f"User {i}") for i in range(USERS + 1)]
    # Everyone has started the bot (the bot may only write to those).
    sent = await asyncio.gather(*(p.send("/start") for p in [admin, *people]))
    for person, message in zip([admin, *people], sent, strict=True):
        await person.wait_for(after=message, timeout=30)
    blocked = people[-1]
    blocked.block()  # one of them has blocked the bot since: not a recipient

    async def blocked_known() -> bool:
        user = await app.repo.users.get(blocked.id)
        return user is not None and user.inactive

    await wait_until(blocked_known, what="the block noticed")
    reachable = people[:-1]

    emu.flood_limits = FloodLimits()
    prompt = await admin.send("/broadcast")
    await admin.wait_for(lambda m: "Send the message to broadcast" in m.text, after=prompt)
    draft = await admin.send(TEXT)
    preview = await admin.wait_for(lambda m: m.text == TEXT and bool(m.buttons), after=draft)
    # Everyone reachable but the author, whose preview is their copy.
    assert preview.button_texts[0][0] == f"✅ Send to {USERS} users"
    started = time.monotonic()
    answer = await admin.press(preview, "Send to")
    assert answer.text == f"📣 Queued for {USERS} users; it goes out at the pace Telegram allows."

    def delivered() -> int:
        return sum(1 for p in reachable if any(m.text == TEXT for m in p.history))

    await wait_until(
        lambda: delivered() == len(reachable), timeout=150, interval=0.2, what="the broadcast"
    )
    elapsed = time.monotonic() - started
    assert await app.outbox.wait_idle(30)
    for person in reachable:
        assert sum(1 for m in person.history if m.text == TEXT) == 1, person
    assert not any(m.text == TEXT for m in blocked.history)
    assert len([m for m in admin.history if m.from_bot and m.text == TEXT]) == 1  # the preview
    assert emu.flood_429_count == 0
    states = await app.repo.outbox.count_by_state()
    assert states == {"sent": USERS}
    sends = sorted(
        c.at for c in emu.calls if c.method == "sendMessage" and c.at >= started and c.ok
    )
    rate = len(sends) / max(sends[-1] - sends[0], 1e-9)
    print(f"broadcast to {USERS} users: {elapsed:.1f}s, {rate:.1f} messages/s, no 429")
