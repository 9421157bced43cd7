"""Composition root: settings → storage → DaisySim client → bot and dispatcher → scheduler.

Nothing here runs at import time. `create_app` builds one `App`; `App.start_polling()` runs it
until `App.stop()` (or a signal, when asked to handle them); `run_bot` is `daisybot run`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiogram import Bot, Dispatcher
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.enums import ParseMode
from aiogram.exceptions import TelegramAPIError
from aiogram.types import BotCommand
from aiogram.utils.callback_answer import CallbackAnswerMiddleware
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from bot import lazy_types
from bot.config import Settings
from bot.daisysim import DaisySimClient, RateLimits
from bot.services import admin as admin_service
from bot.services.buying import Buying
from bot.services.catalogue import Catalogue
from bot.telegram import queue_notify
from bot.telegram.buy_flow import membership
from bot.telegram.flood import HandlerFloodMiddleware, UpdateContextMiddleware
from bot.telegram.i18n import LANGUAGES, I18n
from bot.telegram.limits import TelegramLimiter
from bot.telegram.middlewares import InflightMiddleware, UserMiddleware
from bot.telegram.outbox import OutboxSender
from handlers import build_routers
from storage.db import Database
from storage.repo import Repo

logger = logging.getLogger(__name__)

# The key the in-process sandbox gets in sandbox mode; it accepts any key.
SANDBOX_API_KEY = "sandbox-local"
# Upstream money of the in-process sandbox account: enough that play money runs out first.
SANDBOX_ACCOUNT_UNITS = 10_000_000 * 10_000
# In sandbox mode a code arrives on its own after this many real seconds (min, max).
SANDBOX_AUTO_CODE_AFTER = (8.0, 25.0)
# How long `stop()` lets handlers that are mid-update finish before cancelling them.
STOP_GRACE_SECONDS = 10.0
# How long one DaisySim request may take; a purchase that exceeds it is reconciled, not retried.
DAISYSIM_TIMEOUT_SECONDS = 15.0

# What an installer returns (e.g. the objects it built) is ignored.
JobInstaller = Callable[["App"], object]


@dataclass(eq=False)
class App:
    """Everything long-lived, built once. Handlers get the parts as workflow data."""

    settings: Settings
    db: Database
    repo: Repo
    client: DaisySimClient
    bot: Bot
    dp: Dispatcher
    scheduler: AsyncIOScheduler
    catalogue: Catalogue
    i18n: I18n
    inflight: InflightMiddleware
    # Functions that add jobs (poller, outbox, ...) to `scheduler`; they run at start-up, when
    # the event loop runs, so a job can take `app` and find everything through it.
    job_installers: list[JobInstaller] = field(default_factory=list)
    _polling: asyncio.Event | None = None
    _closed: bool = False

    def add_job_installer(self, installer: JobInstaller) -> None:
        self.job_installers.append(installer)

    async def start_polling(self, *, handle_signals: bool = False) -> None:
        """Poll Telegram until `stop()` (or SIGINT/SIGTERM when `handle_signals`)."""
        if self._closed:
            return  # stopped before polling began: nothing is left to poll with
        done = self._polling = asyncio.Event()
        try:
            await self.dp.start_polling(
                self.bot,
                handle_signals=handle_signals,
                close_bot_session=False,
                polling_timeout=10,
            )
        finally:
            done.set()

    async def stop(self) -> None:
        """Stop polling, then the jobs, let running handlers finish, then close everything.

        Idempotent. The scheduler stops here (not in a dispatcher shutdown hook) so that it
        stops exactly once, after polling and before the client and database close.
        """
        if self._closed:
            return
        self._closed = True
        polling = self._polling
        while polling is not None and not polling.is_set():
            # RuntimeError: start_polling was called but has not begun (or already ended);
            # look again shortly rather than wait for a stop that was never requested.
            with contextlib.suppress(RuntimeError):
                await self.dp.stop_polling()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(polling.wait(), timeout=0.05)
        await self._stop_scheduler()
        await self.inflight.drain(STOP_GRACE_SECONDS)
        await self.client.aclose()
        await self.bot.session.close()
        await self.db.close()

    async def _stop_scheduler(self) -> None:
        if not self.scheduler.running:
            return
        self.scheduler.shutdown(wait=False)
        # AsyncIOScheduler shuts down in a callback on the loop; let it run so no job starts
        # after this returns (a few loop turns at most).
        for _ in range(100):
            if not self.scheduler.running:
                return
            await asyncio.sleep(0)
        logger.warning("the scheduler did not report stopping")


async def create_app(
    settings: Settings,
    *,
    daisysim_base_url_override: str | None = None,
    daisysim_api_key_override: str | None = None,
    daisysim_timeout: float = DAISYSIM_TIMEOUT_SECONDS,
    job_installers: Sequence[JobInstaller] = (),
) -> App:
    """Build the app; nothing talks to Telegram or DaisySim until `start_polling`."""
    db = await Database.open(settings.database_path)
    try:
        repo = Repo(db)
        api_key = daisysim_api_key_override or (
            settings.daisysim_api_key.get_secret_value() if settings.daisysim_api_key else ""
        )
        if not api_key:
            raise ValueError("DAISYSIM_API_KEY is empty and no sandbox key was given")
        client = DaisySimClient(
            daisysim_base_url_override or settings.daisysim_base_url,
            api_key,
            timeout=daisysim_timeout,
            limits=RateLimits().scaled(settings.daisysim_time_scale),
        )
    except BaseException:
        await db.close()
        raise
    if settings.bot_token is None:
        await client.aclose()
        await db.close()
        raise ValueError("BOT_TOKEN is required")
    lazy_types.warm_up()
    bot = Bot(
        token=settings.bot_token.get_secret_value(),
        session=AiohttpSession(api=TelegramAPIServer.from_base(settings.telegram_api_url)),
        default=DefaultBotProperties(parse_mode=ParseMode.HTML),
    )
    i18n = I18n()
    catalogue = Catalogue(client, repo, settings)
    scheduler = AsyncIOScheduler(timezone="UTC")
    inflight = InflightMiddleware()
    dp = Dispatcher(
        settings=settings,
        db=db,
        repo=repo,
        daisysim=client,
        catalogue=catalogue,
        i18n=i18n,
        scheduler=scheduler,
    )
    app = App(
        settings=settings,
        db=db,
        repo=repo,
        client=client,
        bot=bot,
        dp=dp,
        scheduler=scheduler,
        catalogue=catalogue,
        i18n=i18n,
        inflight=inflight,
        job_installers=list(job_installers),
    )
    dp["app"] = app
    # Purchases beyond the upstream's rate limit wait in a fair line (`purchase_queue`).
    queue, _ = queue_notify.install(app)

    async def upstream_exhausted() -> None:
        # Our DaisySim account is empty: every purchase fails until it is topped up.
        if await admin_service.alert_upstream_exhausted(db, settings, i18n):
            sender = dp.get("outbox")
            if isinstance(sender, OutboxSender):
                sender.wake()

    dp["buying"] = Buying(
        repo, catalogue, queue, membership=membership(bot), upstream_exhausted=upstream_exhausted
    )
    dp.update.outer_middleware(inflight)
    dp.update.outer_middleware(UpdateContextMiddleware())

    def outbox_limiter() -> TelegramLimiter | None:
        # The outbox sender (installed with the poller) owns the one account of Telegram's
        # limits; without it (a test app with no jobs) replies are not paced.
        limiter = getattr(dp.get("outbox"), "limiter", None)
        return limiter if isinstance(limiter, TelegramLimiter) else None

    bot.session.middleware(HandlerFloodMiddleware(outbox_limiter))
    user_middleware = UserMiddleware()
    dp.message.outer_middleware(user_middleware)
    dp.callback_query.outer_middleware(user_middleware)
    dp.callback_query.middleware(CallbackAnswerMiddleware())
    dp.include_routers(*build_routers())

    async def on_startup(bot: Bot) -> None:
        await _set_commands(bot, i18n)
        for install in app.job_installers:
            install(app)
        scheduler.start()
        logger.info(
            "bot started (%s mode, upstream %s)",
            "sandbox" if settings.sandbox_mode else "live",
            client.base_url,
        )

    dp.startup.register(on_startup)
    return app


async def _set_commands(bot: Bot, i18n: I18n) -> None:
    for lang in LANGUAGES:
        t = i18n.translator(lang)
        commands = [
            BotCommand(command=name, description=t.plain(f"cmd-{name}"))
            # /paysupport and /terms: Telegram asks every seller of Stars to have them.
            for name in (
                "start",
                "buy",
                "numbers",
                "balance",
                "help",
                "settings",
                "paysupport",
                "terms",
            )
        ]
        # English is also the default for every language without its own list.
        try:
            await bot.set_my_commands(commands, language_code=None if lang == "en" else lang)
        except TelegramAPIError as exc:
            # A missing command menu is cosmetic; it must not keep the bot from starting.
            logger.warning("setMyCommands (%s) failed: %s", lang, exc)


# --- `daisybot run` ----------------------------------------------------------------------


class _RedactingFormatter(logging.Formatter):
    """Belt and braces: whatever a library logs, the token and the API key never show."""

    def __init__(self, fmt: str, secrets: Sequence[str]) -> None:
        super().__init__(fmt)
        self._secrets = [s for s in secrets if s]

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text


def configure_logging(settings: Settings) -> None:
    secrets = [
        s.get_secret_value()
        for s in (settings.bot_token, settings.daisysim_api_key)
        if s is not None
    ]
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        _RedactingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s", secrets)
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level)
    # Per-request lines from the HTTP libraries drown the bot's own log at INFO.
    for noisy in (
        "httpx",
        "httpcore",
        "aiosqlite",
        "aiohttp.access",
        "apscheduler.executors.default",
    ):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))


async def _run(settings: Settings) -> None:
    sandbox: Any = None
    base_url: str | None = None
    api_key: str | None = None
    if settings.sandbox_mode:
        from bot.sandbox import Sandbox

        sandbox = Sandbox(
            time_scale=settings.daisysim_time_scale,
            start_balance_units=SANDBOX_ACCOUNT_UNITS,
            auto_code_after=SANDBOX_AUTO_CODE_AFTER,
            seed=random.SystemRandom().randrange(1 << 30),
        )
        await sandbox.start()
        base_url, api_key = sandbox.base_url, SANDBOX_API_KEY
        logger.info("no DAISYSIM_API_KEY: running against the built-in sandbox (play money)")
    # Codes, refunds and card redraws reach people through the poller and the outbox.
    from bot.services import poller

    try:
        app = await create_app(
            settings,
            daisysim_base_url_override=base_url,
            daisysim_api_key_override=api_key,
            job_installers=[poller.install],
        )
        try:
            await app.start_polling(handle_signals=True)
        finally:
            await app.stop()
    finally:
        if sandbox is not None:
            await sandbox.stop()


def run_bot(settings: Settings) -> int:
    """`daisybot run`: configure logging once, run until Ctrl-C or SIGTERM, exit 0."""
    configure_logging(settings)
    try:
        asyncio.run(_run(settings))
    except KeyboardInterrupt:
        # Ctrl-C before the dispatcher installed its own signal handlers: still a clean stop.
        logger.info("interrupted")
    except Exception:
        logger.exception("the bot stopped because of an error")
        return 1
    logger.info("bye")
    return 0
