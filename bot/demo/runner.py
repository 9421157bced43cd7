"""The demo's world in one process: a sandbox DaisySim, a Bot API emulator, the real bot between
them, and the web chat in front of the emulator. All on 127.0.0.1.

The bot is the production one — the same `create_app` with its dispatcher, handlers, poller and
outbox — only pointed at the emulator through TELEGRAM_API_URL and at the sandbox as its
upstream, in sandbox mode so every demo person starts with play money.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import sqlite3
import tempfile
import time
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, Self

if TYPE_CHECKING:
    from bot.app import App
    from bot.config import Settings
    from bot.cryptopay_sandbox import CryptoPaySandbox
    from bot.demo.server import DemoGroup, DemoPerson, DemoWeb
    from bot.emulator import BotAPIEmulator
    from bot.sandbox import Sandbox

logger = logging.getLogger(__name__)

# A token of the demo's own: the emulator accepts exactly this one, and it is no secret.
DEMO_BOT_TOKEN: Final = "7000000001:daisysim-demo-local"
DEMO_BOT_NAME: Final = "DaisySim Bot"
DEMO_BOT_USERNAME: Final = "daisysim_demo_bot"
# The sandbox accepts any key; this one only names the demo's upstream account.
DEMO_SANDBOX_KEY: Final = "demo-local"
# The upstream account pays for every demo purchase: make sure play money runs out first.
DEMO_UPSTREAM_UNITS: Final = 1_000_000 * 10_000

ALICE_ID: Final = 1001
BORIS_ID: Final = 1002
ADMIN_ID: Final = 1000
GROUP_ID: Final = -1001000000001

# The upstream's durations, in upstream seconds; the bot's settings get them in real seconds.
UPSTREAM_CANCEL_LOCK: Final = 180.0
UPSTREAM_AUTO_CANCEL_AFTER: Final = 600.0
# How long start() waits for the bot's first getUpdates before calling the start a failure.
BOT_READY_TIMEOUT: Final = 20.0


class DemoError(Exception):
    """The demo cannot start: one line for the person who ran it."""


@dataclass(frozen=True)
class DemoConfig:
    port: int = 8080
    # The sandbox clock runs this many times faster: 6 makes the 180 s cancel lock 30 s, short
    # enough to try a cancel, while codes still take their natural 8-25 real seconds.
    time_scale: float = 6.0
    code_after: tuple[float, float] | None = (8.0, 25.0)
    # With every number getting its code before the lock ends, nobody could try a cancel; so
    # some numbers never get one, as on the real service.
    code_probability: float = 0.7
    database_path: Path | None = None  # None: a temporary file removed at stop
    log_level: str = "INFO"
    configure_logging: bool = False  # the CLI sets up logging; tests leave pytest's alone
    start_balance_usd: Decimal = Decimal(10)
    # Overrides for tests (e.g. a faster poll cadence); keys are Settings field names.
    settings_overrides: dict[str, Any] = field(default_factory=dict)

    @property
    def cancel_lock_seconds(self) -> float:
        return UPSTREAM_CANCEL_LOCK / self.time_scale

    @property
    def auto_cancel_after_seconds(self) -> float:
        return UPSTREAM_AUTO_CANCEL_AFTER / self.time_scale


def demo_people() -> tuple[DemoPerson, ...]:
    from bot.demo.server import DemoPerson

    return (
        DemoPerson(
            ALICE_ID,
            "Alice",
            "en",
            "user · English · group admin",
            "alice",
            "пользователь · английский · админ группы",
        ),
        DemoPerson(
            BORIS_ID,
            "Boris",
            "ru",
            "user · Russian · group member",
            "boris",
            "пользователь · русский · участник группы",
        ),
        DemoPerson(ADMIN_ID, "Admin", "en", "bot admin", "admin", "админ бота"),
    )


def demo_groups() -> tuple[DemoGroup, ...]:
    from bot.demo.server import DemoGroup

    return (DemoGroup(GROUP_ID, "Daisy Team", ((ALICE_ID, "creator"), (BORIS_ID, "member"))),)


class Demo:
    """`async with Demo(DemoConfig(port=0)) as demo:` then open `demo.url`."""

    def __init__(self, config: DemoConfig | None = None) -> None:
        self.config = config or DemoConfig()
        self.people = demo_people()
        self.groups = demo_groups()
        self._stack: contextlib.AsyncExitStack | None = None
        self._sandbox: Sandbox | None = None
        self._crypto: CryptoPaySandbox | None = None
        self._emulator: BotAPIEmulator | None = None
        self._web: DemoWeb | None = None
        self._app: App | None = None
        self._settings: Settings | None = None
        self._bot_task: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------ parts

    @property
    def sandbox(self) -> Sandbox:
        if self._sandbox is None:
            raise RuntimeError("the demo is not started")
        return self._sandbox

    @property
    def crypto(self) -> CryptoPaySandbox:
        if self._crypto is None:
            raise RuntimeError("the demo is not started")
        return self._crypto

    @property
    def emulator(self) -> BotAPIEmulator:
        if self._emulator is None:
            raise RuntimeError("the demo is not started")
        return self._emulator

    @property
    def web(self) -> DemoWeb:
        if self._web is None:
            raise RuntimeError("the demo is not started")
        return self._web

    @property
    def app(self) -> App:
        if self._app is None:
            raise RuntimeError("the demo is not started")
        return self._app

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            raise RuntimeError("the demo is not started")
        return self._settings

    @property
    def url(self) -> str:
        return self.web.url

    @property
    def bot_task(self) -> asyncio.Task[None]:
        """Ends only if the bot stops polling on its own (an error): the demo is then over."""
        if self._bot_task is None:
            raise RuntimeError("the demo is not started")
        return self._bot_task

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        if self._stack is not None:
            raise RuntimeError("the demo is already started")
        stack = contextlib.AsyncExitStack()
        await stack.__aenter__()
        try:
            await self._start(stack)
        except BaseException as exc:
            await stack.__aexit__(type(exc), exc, exc.__traceback__)
            self._reset()
            raise
        self._stack = stack

    async def _start(self, stack: contextlib.AsyncExitStack) -> None:
        from bot.cryptopay_sandbox import CryptoPaySandbox
        from bot.demo.server import DemoWeb
        from bot.emulator import BotAPIEmulator
        from bot.sandbox import Sandbox

        config = self.config
        emulator = BotAPIEmulator(
            token=DEMO_BOT_TOKEN,
            bot_first_name=DEMO_BOT_NAME,
            bot_username=DEMO_BOT_USERNAME,
            # The bot records every update_id it handled (a redelivery is skipped); a demo
            # that keeps its database (--db) must not start again at update 1.
            first_update_id=time.time_ns() // 1_000_000,
        )
        await emulator.start()
        stack.push_async_callback(emulator.stop)
        self._emulator = emulator

        # The web chat binds its port before anything slow starts, so a busy port fails fast.
        web = DemoWeb(emulator, self.people, self.groups, info=self._info(), port=config.port)
        try:
            await web.start()
        except OSError as exc:
            reason = "the port is in use" if exc.errno == errno.EADDRINUSE else exc.strerror
            raise DemoError(
                f"cannot listen on 127.0.0.1:{config.port}: {reason} (choose another with --port)"
            ) from exc
        stack.push_async_callback(web.stop)
        self._web = web
        for group in self.groups:
            chat = emulator.group(group.id, group.title)
            for user_id, status in group.members:
                chat.add_member(emulator.user(user_id), status)

        sandbox = Sandbox(
            time_scale=config.time_scale,
            start_balance_units=DEMO_UPSTREAM_UNITS,
            auto_code_after=config.code_after,
            auto_code_probability=config.code_probability,
        )
        await sandbox.start()
        stack.push_async_callback(sandbox.stop)
        self._sandbox = sandbox

        # A local Crypto Pay: the 💎 Crypto top-up's pay button opens its page, which plays
        # the payer (a button per asset), with play money.
        crypto = CryptoPaySandbox(time_scale=config.time_scale)
        await crypto.start()
        stack.push_async_callback(crypto.stop)
        self._crypto = crypto

        db_path = config.database_path
        if db_path is None:
            tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="daisybot-demo-"))
            db_path = Path(tmp) / "demo.sqlite3"
        else:
            try:
                db_path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise DemoError(f"cannot create the folder of {db_path}: {exc.strerror}") from exc
        settings = self._settings = self._make_settings(emulator.api_url, sandbox.base_url, db_path)
        if config.configure_logging:
            from bot.app import configure_logging

            configure_logging(settings)

        from bot.app import create_app

        # The same composition as `daisybot run` (bot.app._run), poller and outbox included:
        # codes, refunds and card redraws reach people only through them.
        try:
            app = await create_app(
                settings,
                daisysim_base_url_override=sandbox.base_url,
                daisysim_api_key_override=DEMO_SANDBOX_KEY,
                cryptopay_base_url_override=crypto.base_url,
                cryptopay_token_override=crypto.token,
            )
        except (OSError, sqlite3.Error) as exc:
            raise DemoError(f"cannot open the database {db_path}: {exc}") from exc
        self._app = app
        polls = asyncio.ensure_future(emulator.wait_polling(timeout=BOT_READY_TIMEOUT))
        bot_task = asyncio.create_task(app.start_polling(), name="demo-bot-polling")
        self._bot_task = bot_task
        stack.push_async_callback(self._stop_bot, app, bot_task)
        done, _ = await asyncio.wait({polls, bot_task}, return_when=asyncio.FIRST_COMPLETED)
        if bot_task in done:
            polls.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await polls
            bot_task.result()  # its error, if it has one
            raise DemoError("the bot stopped right after it started")
        try:
            polls.result()
        except TimeoutError as exc:
            raise DemoError("the bot did not start polling the emulator") from exc

        # Added once the bot polls, so the bot sees the my_chat_member update like in Telegram.
        for group in self.groups:
            chat = emulator.group(group.id, group.title)
            creator = next(uid for uid, status in group.members if status == "creator")
            await chat.add_bot(by=emulator.user(creator))

    @staticmethod
    async def _stop_bot(app: App, task: asyncio.Task[None]) -> None:
        # The production way out: stop polling, let handlers finish, close the database.
        await app.stop()
        if not task.done():
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    def _make_settings(self, api_url: str, upstream_url: str, db_path: Path) -> Settings:
        from pydantic import ValidationError

        from bot.config import Settings, describe_validation_error

        config = self.config
        values: dict[str, Any] = {
            "bot_token": DEMO_BOT_TOKEN,
            "telegram_api_url": api_url,
            # No key: sandbox mode, so demo people get play money and the menu says SANDBOX.
            "daisysim_api_key": None,
            "daisysim_base_url": upstream_url,
            "database_path": db_path,
            "admin_ids": frozenset({ADMIN_ID}),
            "markup_percent": Decimal(0),
            "markup_fixed": Decimal(0),
            "daisysim_time_scale": config.time_scale,
            "cancel_lock_seconds": config.cancel_lock_seconds,
            "auto_cancel_after_seconds": config.auto_cancel_after_seconds,
            "sandbox_start_balance_usd": config.start_balance_usd,
            "log_level": config.log_level,
            # The payer pays on the local Crypto Pay page: the receipt follows within a second.
            "cryptopay_poll_seconds": 1.0,
        }
        values.update(config.settings_overrides)
        # _env_file=None: a developer's .env (a real token, a real DaisySim key) must never leak
        # into the demo; every value that matters is given here.
        try:
            return Settings(_env_file=None, **values)
        except ValidationError as exc:
            raise DemoError(describe_validation_error(exc)) from None

    def _info(self) -> dict[str, Any]:
        config = self.config
        lock = config.cancel_lock_seconds
        money = config.start_balance_usd
        parts = [
            "Everything runs on this computer: a sandbox DaisySim with play money "
            f"(${money} for each person), a Telegram Bot API emulator and the real bot.",
        ]
        parts_ru = [
            "Всё работает на этом компьютере: песочница DaisySim с игровыми деньгами "
            f"(${money} у каждого), эмулятор Telegram Bot API и настоящий бот.",
        ]
        if config.code_after is not None and config.code_probability > 0:
            low, high = config.code_after
            percent = round(config.code_probability * 100)
            every = config.code_probability >= 1
            share = "every number" if every else f"about {percent}% of numbers"
            share_ru = "каждого номера" if every else f"примерно {percent}% номеров"
            parts.append(f"An SMS code arrives {low:g}–{high:g} s after a purchase for {share}.")
            parts_ru.append(
                f"SMS-код приходит через {low:g}–{high:g} с после покупки для {share_ru}."
            )
        parts.append(
            f"A number can be cancelled for a refund {lock:g} s after purchase "
            f"(DaisySim's {UPSTREAM_CANCEL_LOCK:g} s, with the clock ×{config.time_scale:g})."
        )
        parts_ru.append(
            f"Номер можно отменить с возвратом денег через {lock:g} с после покупки "
            f"({UPSTREAM_CANCEL_LOCK:g} с у DaisySim, часы ускорены ×{config.time_scale:g})."
        )
        parts.append(
            "Balance → Top up → 💎 Crypto makes a Crypto Pay invoice; its Pay button opens a "
            "local Crypto Pay page where you play the payer."
        )
        parts_ru.append(
            "Баланс → Пополнить → 💎 Крипто создаёт счёт Crypto Pay; его кнопка оплаты открывает "
            "местную страницу Crypto Pay, где вы играете плательщика."
        )
        return {
            "text": " ".join(parts),
            # The page shows this one to a Russian-speaking person (or with ?lang=ru).
            "text_ru": " ".join(parts_ru),
            "time_scale": config.time_scale,
            "cancel_lock_seconds": lock,
            "code_after": list(config.code_after) if config.code_after else None,
            "code_probability": config.code_probability,
        }

    async def stop(self) -> None:
        stack, self._stack = self._stack, None
        if stack is None:
            return
        try:
            # The page goes first: no press or payment may reach a bot that is shutting down.
            if self._web is not None:
                await self._web.stop()
            await stack.aclose()
        finally:
            self._reset()

    def _reset(self) -> None:
        self._sandbox = self._emulator = self._web = self._app = None
        self._crypto = None
        self._settings = None
        self._bot_task = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    def banner(self) -> str:
        lock = self.config.cancel_lock_seconds
        return "\n".join(
            [
                "",
                "  DaisySim Bot demo is running — open this in a browser:",
                "",
                f"      {self.url}",
                "",
                "  The real bot, a local Telegram emulator and a sandbox DaisySim with play money.",
                "  Be Alice (English), Boris (Russian) or the bot's Admin; try the group chat too.",
                f"  Numbers can be cancelled {lock:g} s after purchase. Press Ctrl-C to stop.",
                "",
            ]
        )
