"""Fixtures shared by the end-to-end tests: the sandbox DaisySim, the Bot API emulator and the
real app polling the one and calling the other, all over loopback HTTP, with a temporary
SQLite file. Nothing of the project's code is replaced.

Two modes: the app polls the emulator (getUpdates), or in webhook mode the emulator POSTs
updates to the app's webhook server. A test marked `both_modes` runs once in each, with the same
body (`emulator` depends on `bot_mode`, and `make_settings` adds the webhook settings for an
emulator of a webhook-mode test); every other test polls, as before.

Time is scaled: the sandbox runs `TIME_SCALE` times faster than real time, the client's rate
limits shrink by the same factor, and the bot's cancel lock is the sandbox's lock in real
seconds, so "wait 3 minutes before cancelling" takes 3 seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import socket
import weakref
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

BOT_MODES = ("polling", "webhook")
WEBHOOK_SECRET = "e2e-webhook-secret_0"
WEBHOOK_PATH = "/tg/webhook"
# Webhook mode: an update the bot did not accept is POSTed again this soon (real seconds).
WEBHOOK_RETRY_AFTER = 0.05
# The emulators of the tests running in webhook mode (see `make_settings`).
_webhook_emulators: weakref.WeakSet[BotAPIEmulator] = weakref.WeakSet()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "both_modes: run the test once polling and once in webhook mode"
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if metafunc.definition.get_closest_marker("both_modes") and "bot_mode" in metafunc.fixturenames:
        metafunc.parametrize("bot_mode", BOT_MODES)


@pytest.fixture
def bot_mode() -> str:
    """How the app under test gets its updates; `both_modes` tests get each in turn."""
    return "polling"


def free_port() -> int:
    """A loopback port nothing listens on now (`running_app` retries should it be taken)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def webhook_settings(port: int | None = None) -> dict[str, Any]:
    """WEBHOOK_URL, WEBHOOK_SECRET and WEBHOOK_LISTEN for a webhook server on loopback."""
    port = free_port() if port is None else port
    return {
        "webhook_url": f"http://127.0.0.1:{port}{WEBHOOK_PATH}",
        "webhook_secret": WEBHOOK_SECRET,
        "webhook_listen": f"127.0.0.1:{port}",
    }


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
async def emulator(bot_mode: str) -> AsyncIterator[BotAPIEmulator]:
    # Flood limits off: a test taps faster than a person; the limits have their own tests.
    async with BotAPIEmulator(
        token=BOT_TOKEN, flood=FloodLimits.off(), webhook_retry_after=WEBHOOK_RETRY_AFTER
    ) as emu:
        if bot_mode == "webhook":
            _webhook_emulators.add(emu)
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
    if emulator in _webhook_emulators:
        values.update(webhook_settings())
    values.update(overrides)
    return Settings(_env_file=None, **values)


@contextlib.asynccontextmanager
async def running_app(
    settings: Settings, emulator: BotAPIEmulator, **create_kwargs: Any
) -> AsyncIterator[App]:
    """The real app, polling the emulator or serving its webhook (when the settings have
    WEBHOOK_URL), stopped cleanly (nothing left running) at the end."""
    create_kwargs.setdefault("daisysim_timeout", DAISYSIM_TIMEOUT)
    for attempt in range(3):
        app = await create_app(settings, **create_kwargs)
        ready: asyncio.Task[Any]
        if settings.webhook_mode:
            ready = asyncio.create_task(emulator.wait_webhook(timeout=10))
        else:
            ready = asyncio.create_task(emulator.wait_polling(timeout=10))
        task = asyncio.create_task(app.run())
        done, _ = await asyncio.wait({ready, task}, return_when=asyncio.FIRST_COMPLETED)
        if task in done and settings.webhook_mode and attempt < 2 and _port_taken(task):
            # The free port was taken between looking and binding: take another.
            ready.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ready
            await app.stop()
            settings = settings.model_copy(update=webhook_settings())
            continue
        break
    try:
        if task in done:
            task.result()
            raise RuntimeError("the app stopped taking updates before it started")
        ready.result()
        yield app
    finally:
        ready.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await ready
        await app.stop()
        await asyncio.wait_for(task, timeout=10)


def _port_taken(task: asyncio.Task[None]) -> bool:
    error = task.exception()
    return isinstance(error, OSError) and error.errno == errno.EADDRINUSE


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
