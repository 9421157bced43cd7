"""Fixtures shared by the end-to-end tests: the sandbox DaisySim, the Bot API emulator and the
real app polling the one and calling the other, all over loopback HTTP, with a temporary
SQLite file. Nothing of the project's code is replaced.

Time is scaled: the sandbox runs `TIME_SCALE` times faster than real time, the client's rate
limits shrink by the same factor, and the bot's cancel lock is the sandbox's lock in real
seconds, so "wait 3 minutes before cancelling" takes 3 seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from bot.app import App, create_app
from bot.config import Settings
from bot.emulator import BotAPIEmulator, FloodLimits
from bot.sandbox import Sandbox
from storage.db import Database

TIME_SCALE = 60.0
UPSTREAM_CANCEL_LOCK = 180.0
CANCEL_LOCK_SECONDS = UPSTREAM_CANCEL_LOCK / TIME_SCALE
BOT_TOKEN = "4242:TEST-token"
DAISYSIM_KEY = "e2e-key"
# Short, so a purchase whose answer never comes turns "unknown" in a test-sized wait.
DAISYSIM_TIMEOUT = 2.0

AppFactory = Callable[..., contextlib.AbstractAsyncContextManager[App]]


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    """A fresh SQLite file with every migration applied, closed at the end."""
    database = await Database.open(tmp_path / "bot.sqlite3")
    try:
        yield database
    finally:
        await database.close()


@pytest.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    async with Sandbox(time_scale=TIME_SCALE, cancel_lock_seconds=UPSTREAM_CANCEL_LOCK) as sb:
        yield sb


@pytest.fixture
async def emulator() -> AsyncIterator[BotAPIEmulator]:
    # Flood limits off: a test taps faster than a person; the limits have their own tests.
    async with BotAPIEmulator(token=BOT_TOKEN, flood=FloodLimits.off()) as emu:
        yield emu


def make_settings(
    tmp_path: Path, sandbox: Sandbox, emulator: BotAPIEmulator, **overrides: Any
) -> Settings:
    values: dict[str, Any] = {
        "bot_token": BOT_TOKEN,
        "telegram_api_url": emulator.api_url,
        "daisysim_api_key": DAISYSIM_KEY,
        "daisysim_base_url": sandbox.base_url,
        "database_path": tmp_path / "bot.sqlite3",
        "cancel_lock_seconds": CANCEL_LOCK_SECONDS,
        "daisysim_time_scale": TIME_SCALE,
        "poll_min_interval_seconds": 0.1,
        "log_level": "DEBUG",
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)


@contextlib.asynccontextmanager
async def running_app(
    settings: Settings, emulator: BotAPIEmulator, **create_kwargs: Any
) -> AsyncIterator[App]:
    """The real app, polling the emulator, stopped cleanly (nothing left running) at the end."""
    create_kwargs.setdefault("daisysim_timeout", DAISYSIM_TIMEOUT)
    app = await create_app(settings, **create_kwargs)
    polled = asyncio.create_task(emulator.wait_polling(timeout=10))
    task = asyncio.create_task(app.start_polling())
    try:
        done, _ = await asyncio.wait({polled, task}, return_when=asyncio.FIRST_COMPLETED)
        if task in done:
            task.result()
            raise RuntimeError("polling ended before it started")
        polled.result()
        yield app
    finally:
        polled.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await polled
        await app.stop()
        await asyncio.wait_for(task, timeout=10)


@pytest.fixture
def app_factory(tmp_path: Path, sandbox: Sandbox, emulator: BotAPIEmulator) -> AppFactory:
    """`async with app_factory(markup_percent=10) as app:` — the app with other settings."""

    def factory(**overrides: Any) -> contextlib.AbstractAsyncContextManager[App]:
        create_kwargs = {
            k: overrides.pop(k)
            for k in ("daisysim_base_url_override", "daisysim_api_key_override", "daisysim_timeout")
            if k in overrides
        }
        settings = make_settings(tmp_path, sandbox, emulator, **overrides)
        return running_app(settings, emulator, **create_kwargs)

    return factory


@pytest.fixture
async def bot_app(app_factory: AppFactory) -> AsyncIterator[App]:
    async with app_factory() as app:
        yield app
