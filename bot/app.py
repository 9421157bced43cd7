"""Composition root: settings → storage → DaisySim client → services → Telegram edge →
dispatcher → scheduler.

Nothing here runs at import time. `create_app` builds one `App`, always the whole of it: the
handlers, the outbox sender, the poller with its jobs, the purchase queue and the notifiers
between the services and Telegram. `App.run()` takes updates until `App.stop()` (or a signal,
when asked to handle them): by long polling (`start_polling`), or in webhook mode when
WEBHOOK_URL is set (`start_webhook`); `run_bot` is `daisybot run`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import signal
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TextIO

from aiogram import Bot, Dispatcher
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.enums import ParseMode
from aiogram.exceptions import TelegramAPIError
from aiogram.fsm.storage.memory import SimpleEventIsolation
from aiogram.utils.callback_answer import CallbackAnswerMiddleware
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from bot import lazy_types
from bot.config import Settings
from bot.cryptopay import CryptoPayClient, network_url
from bot.daisysim import DaisySimClient, RateLimits
from bot.log_context import JsonFormatter
from bot.metrics import Metrics
from bot.services import admin as admin_service
from bot.services import referrals
from bot.services.backups import BACKUP_JOB_ID, DailyBackup
from bot.services.buying import Buying
from bot.services.catalogue import Catalogue
from bot.services.cryptopay import CryptoTopups
from bot.services.maintenance import Maintenance
from bot.services.notify import UncreditedCryptoPayment
from bot.services.poller import Poller
from bot.services.purchase_queue import PurchaseQueue
from bot.telegram.buy_flow import BuyFlow, membership
from bot.telegram.commands import set_admin_commands, set_default_commands
from bot.telegram.crypto import TelegramCryptoNotices, add_cryptopay_routes
from bot.telegram.flood import HandlerFloodMiddleware, UpdateContextMiddleware
from bot.telegram.i18n import I18n
from bot.telegram.limits import TelegramLimits
from bot.telegram.middlewares import (
    BotAPIMetricsMiddleware,
    DedupMiddleware,
    InflightMiddleware,
    UpdateMetricsMiddleware,
    UserMiddleware,
)
from bot.telegram.notifier import TelegramNotifier
from bot.telegram.ops_web import Ops, OpsServer
from bot.telegram.outbox import OutboxSender
from bot.telegram.queue_notify import QueueNotifier
from bot.telegram.webhook import WebhookServer
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
# How long one DaisySim request may take; a purchase that exceeds it is reconciled, not retried.
DAISYSIM_TIMEOUT_SECONDS = 15.0
# At shutdown, upstream calls in flight get the client's timeout plus this before they are
# cancelled: a call ends by itself (answered, or timed out and recorded `unknown`) first.
UPSTREAM_STOP_MARGIN_SECONDS = 1.0
# How long one Crypto Pay request may take; createInvoice is not retried (see the client).
CRYPTOPAY_TIMEOUT_SECONDS = 10.0
CRYPTOPAY_POLL_JOB_ID = "cryptopay-poll"


@dataclass(eq=False)
class Delivery:
    """The outbox sender and the poller that feeds it, started and stopped together: the
    sender first (messages left queued by the previous run go out while the poller
    reconciles) and last (it sends what the poller queued before it stopped)."""

    sender: OutboxSender
    poller: Poller
    notifier: TelegramNotifier
    _starting: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.sender.start()
        await self.poller.start()

    def start_soon(self) -> None:
        """Start without holding up the caller: reconciliation asks the upstream first."""
        self._starting = asyncio.get_running_loop().create_task(self.start(), name="delivery-start")

    async def stop(self, timeout: float = 10.0, *, flush: float | None = None) -> None:
        """The poller (its upstream calls get `timeout`), then the sender: it stops at once,
        or with `flush` keeps sending what is due for that many seconds first."""
        self.poller.remove_jobs()
        if self._starting is not None and not self._starting.done():
            await asyncio.wait({self._starting}, timeout=timeout)
        await self.poller.stop(timeout)
        if flush is None:
            await self.sender.stop(timeout)
        else:
            await self.sender.flush(flush)


def build_delivery(
    settings: Settings,
    *,
    repo: Repo,
    client: DaisySimClient,
    bot: Bot,
    i18n: I18n,
    metrics: Metrics | None = None,
    telegram_limits: TelegramLimits | None = None,
) -> Delivery:
    metrics = metrics or client.metrics
    sender = OutboxSender(
        repo=repo, bot=bot, metrics=metrics, limits=telegram_limits or TelegramLimits()
    )
    notifier = TelegramNotifier(repo=repo, i18n=i18n, sender=sender)
    poller = Poller.from_settings(
        settings, repo=repo, client=client, notifier=notifier, countdown=notifier, metrics=metrics
    )
    return Delivery(sender=sender, poller=poller, notifier=notifier)


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
    delivery: Delivery
    purchase_queue: PurchaseQueue
    queue_notifier: QueueNotifier
    # /metrics, /healthz, /readyz: `add_ops_routes(web_app, app.ops)` mounts them anywhere;
    # `ops_server` serves them on METRICS_LISTEN (None when unset).
    ops: Ops
    ops_server: OpsServer | None = None
    # Webhook mode (WEBHOOK_URL set): the server Telegram POSTs updates to, with the ops routes.
    webhook: WebhookServer | None = None
    # Requests to DaisySim time out after this; shutdown waits that long for calls in flight.
    upstream_timeout: float = DAISYSIM_TIMEOUT_SECONDS
    # The maintenance switch (bot/services/maintenance.py) and the daily backup (BACKUP_DIR).
    maintenance: Maintenance | None = None
    daily_backup: DailyBackup | None = None
    # Set once taking updates (polling or the webhook server) has ended.
    _serving: asyncio.Event | None = None
    # Webhook mode: set to make `start_webhook` return.
    _stop_webhook: asyncio.Event | None = None
    # Crypto Pay top-ups: None when off (no CRYPTOPAY_TOKEN outside sandbox mode).
    crypto: CryptoTopups | None = None
    _closed: bool = False

    @property
    def outbox(self) -> OutboxSender:
        return self.delivery.sender

    @property
    def poller(self) -> Poller:
        return self.delivery.poller

    @property
    def notifier(self) -> TelegramNotifier:
        return self.delivery.notifier

    async def run(self, *, handle_signals: bool = False) -> None:
        """Take updates until `stop()` (or SIGINT/SIGTERM when `handle_signals`): through the
        webhook server when WEBHOOK_URL is set, by long polling otherwise."""
        if self.webhook is not None:
            await self.start_webhook(handle_signals=handle_signals)
        else:
            await self.start_polling(handle_signals=handle_signals)

    async def start_polling(self, *, handle_signals: bool = False) -> None:
        """Poll Telegram until `stop()` (or SIGINT/SIGTERM when `handle_signals`)."""
        if self._closed:
            return  # stopped before polling began: nothing is left to poll with
        done = self._serving = asyncio.Event()
        try:
            await self._leave_webhook_mode()
            await self.dp.start_polling(
                self.bot,
                handle_signals=handle_signals,
                close_bot_session=False,
                polling_timeout=10,
            )
        finally:
            done.set()

    async def _leave_webhook_mode(self) -> None:
        # Telegram refuses getUpdates (409) while a webhook is set, e.g. after this bot ran in
        # webhook mode; the updates waiting for the webhook come by polling instead.
        try:
            await self.bot.delete_webhook(drop_pending_updates=False)
        except TelegramAPIError as exc:
            logger.warning("deleteWebhook failed (polling may be refused): %s", exc)

    async def start_webhook(self, *, handle_signals: bool = False) -> None:
        """Serve the webhook until `stop()` (or SIGINT/SIGTERM when `handle_signals`); returns
        once the server has stopped and the dispatcher's shutdown (`shut_down`) has run."""
        server = self.webhook
        if server is None:
            raise RuntimeError("WEBHOOK_URL is not set")
        if self._closed:
            return
        done = self._serving = asyncio.Event()
        stop = self._stop_webhook = asyncio.Event()
        loop = asyncio.get_running_loop()
        signals = (signal.SIGTERM, signal.SIGINT) if handle_signals else ()
        try:
            for signum in signals:
                loop.add_signal_handler(signum, stop.set)
            try:
                await server.start()
                await stop.wait()
            finally:
                await server.stop()
        finally:
            for signum in signals:
                loop.remove_signal_handler(signum)
            done.set()

    async def stop(self) -> None:
        """Stop taking updates, then the jobs, let running handlers finish, then close
        everything.

        Idempotent. Taking updates ends with the dispatcher's shutdown (`shut_down`: the
        updates in hand, the purchase queue, the poller, the outbox flush). The scheduler
        stops here (not in a dispatcher shutdown hook) so that it stops exactly once, after
        the updates and before the client and database close. The drain below only matters
        when updates were never taken: otherwise the shutdown hook has drained already.
        """
        if self._closed:
            return
        self._closed = True
        serving = self._serving
        if self._stop_webhook is not None:
            self._stop_webhook.set()
            if serving is not None:
                await serving.wait()
        while serving is not None and not serving.is_set():
            # RuntimeError: start_polling was called but has not begun (or already ended);
            # look again shortly rather than wait for a stop that was never requested.
            with contextlib.suppress(RuntimeError):
                await self.dp.stop_polling()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(serving.wait(), timeout=0.05)
        await self._stop_scheduler()
        await self.inflight.drain(self.settings.shutdown_grace_seconds)
        await self.ops.close()
        if self.crypto is not None:
            await self.crypto.stop(CRYPTOPAY_TIMEOUT_SECONDS)  # done already after polling
            await self.crypto.client.aclose()
        await self.client.aclose()
        await self.bot.session.close()
        await self.db.close()

    async def shut_down(self) -> None:
        """The dispatcher's shutdown, once polling or the webhook server has stopped taking
        updates (SIGTERM, SIGINT, `stop()`):
        no update is taken any more; nothing below loses money or a message.

        1. The updates in hand finish, for up to SHUTDOWN_GRACE_SECONDS, while the purchase
           queue, the poller and the outbox still run under them; the rest are cancelled.
           A purchase a cancelled handler was waiting for is not cancelled with it
           (`PurchaseQueue.outcome` shields it).
        2. The purchase queue serves no new head and waits for the calls in flight for
           longer than the client's timeout, so each ends answered (recorded) or timed out
           (recorded `unknown`, reconciled against the upstream's history at the next start;
           never sent again blindly). Queued purchases stay queued, their money held.
        3. The poller stops the same way (its cancels and checks end by themselves).
        4. The outbox sends what is due for up to OUTBOX_FLUSH_SECONDS; the rest stays in
           the table for the next start.
        """
        settings = self.settings
        running = self.inflight.running
        if running:
            logger.info("stopping: %d updates in hand", running)
        await self.inflight.drain(settings.shutdown_grace_seconds)
        upstream = self.upstream_timeout + UPSTREAM_STOP_MARGIN_SECONDS
        # The line first: its last served buyers' cards are written to the outbox, which
        # stops after the poller and sends what both queued.
        await self.purchase_queue.stop(upstream)
        await self.queue_notifier.stop()
        if self.crypto is not None:
            # Before the outbox: a poll that credits now queues its receipt for the flush.
            await self.crypto.stop(CRYPTOPAY_TIMEOUT_SECONDS + UPSTREAM_STOP_MARGIN_SECONDS)
        await self.delivery.stop(upstream, flush=settings.outbox_flush_seconds)
        if self.ops_server is not None:
            await self.ops_server.stop()
        logger.info("shutdown done: updates finished, purchases recorded, outbox flushed")

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
    telegram_limits: TelegramLimits | None = None,
    cryptopay_base_url_override: str | None = None,
    cryptopay_token_override: str | None = None,
) -> App:
    """Build the app; nothing talks to Telegram or DaisySim until `run`.

    `telegram_limits`: the budgets the bot keeps to for Telegram's flood limits (handler
    replies and the outbox); Telegram's own by default. Only a benchmark of the bot's own
    side (bench/webhook.py) lifts them. `cryptopay_*_override`: a local Crypto Pay (tests,
    the demo, sandbox mode without CRYPTOPAY_TOKEN); its invoices are booked under the
    network "sandbox"."""
    db = await Database.open(settings.database_path)
    # The app's own registry: every app in a test process counts only itself.
    metrics = Metrics()
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
            metrics=metrics,
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
    # Codes, refunds, alerts and card redraws reach people through the outbox.
    delivery = build_delivery(
        settings,
        repo=repo,
        client=client,
        bot=bot,
        i18n=i18n,
        metrics=metrics,
        telegram_limits=telegram_limits,
    )
    # Purchases beyond the upstream's rate limit wait in a fair line.
    purchase_queue = PurchaseQueue(
        repo,
        client,
        cancel_lock_seconds=settings.cancel_lock_seconds,
        max_places_per_wallet=settings.queue_max_places_per_wallet,
        time_scale=settings.daisysim_time_scale,
        metrics=metrics,
    )
    queue_notifier = QueueNotifier(
        repo=repo,
        i18n=i18n,
        settings=settings,
        queue=purchase_queue,
        sender=delivery.sender,
        notifier=delivery.notifier,
        time_scale=settings.daisysim_time_scale,
    )
    purchase_queue.listener = queue_notifier

    async def upstream_exhausted() -> None:
        # Our DaisySim account is empty: every purchase fails until it is topped up.
        await admin_service.alert_upstream_exhausted(repo, settings, delivery.notifier)

    async def crypto_alert(alert: UncreditedCryptoPayment, dedupe: str) -> int:
        return await admin_service.alert_admins(
            repo, settings, delivery.notifier, alert, dedupe=dedupe
        )

    crypto = _build_crypto(
        settings,
        repo,
        TelegramCryptoNotices(repo, i18n, delivery.sender),
        base_url_override=cryptopay_base_url_override,
        token_override=cryptopay_token_override,
    )
    if crypto is not None:
        crypto.alert = crypto_alert
    # Every path that stores a code credits referrals on the terms it reads in its own
    # transaction: the settings table carries this run's REFERRAL_PERCENT and cap to all.
    await referrals.store_terms(
        repo, referrals.ReferralTerms(settings.referral_percent, settings.referral_cap_units)
    )
    # Stored in the settings table, so it survives a restart; MAINTENANCE=1 forces it on.
    maintenance = Maintenance(repo, forced=settings.maintenance)
    # The one buy path: private chats, groups and Buy again.
    buying = Buying(
        repo,
        catalogue,
        purchase_queue,
        membership=membership(bot),
        upstream_exhausted=upstream_exhausted,
        maintenance=maintenance,
    )
    dp = Dispatcher(
        # One chat's updates are handled one after another, in the order Telegram sent
        # them (aiogram locks per user in chat): answers never overtake each other, and two
        # taps of one user never race in our handlers. Other chats still run side by side.
        events_isolation=SimpleEventIsolation(),
        settings=settings,
        db=db,
        repo=repo,
        daisysim=client,
        catalogue=catalogue,
        i18n=i18n,
        scheduler=scheduler,
        buy_flow=BuyFlow(
            buying=buying,
            bot=bot,
            repo=repo,
            catalogue=catalogue,
            settings=settings,
            queue=purchase_queue,
            notifier=queue_notifier,
        ),
        outbox=delivery.sender,
        notifier=delivery.notifier,
        purchase_queue=purchase_queue,
        queue_notifier=queue_notifier,
        maintenance=maintenance,
        crypto=crypto,
    )
    ops = Ops(
        metrics=metrics,
        repo=repo,
        client=client,
        poller=delivery.poller,
        sender=delivery.sender,
        time_scale=settings.daisysim_time_scale,
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
        delivery=delivery,
        purchase_queue=purchase_queue,
        queue_notifier=queue_notifier,
        ops=ops,
        # In webhook mode the routes are on the webhook server too; METRICS_LISTEN, when set,
        # still serves them on their own port (the container publishes both).
        ops_server=None
        if settings.metrics_listen is None
        else OpsServer(ops, settings.metrics_listen),
        webhook=None
        if settings.webhook_url is None or settings.webhook_secret is None
        else WebhookServer(
            dispatcher=dp,
            bot=bot,
            inflight=inflight,
            ops=ops,
            url=settings.webhook_url,
            path=settings.webhook_path,
            listen=settings.webhook_listen,
            secret=settings.webhook_secret.get_secret_value(),
        ),
        upstream_timeout=daisysim_timeout,
        maintenance=maintenance,
        daily_backup=None
        if settings.backup_dir is None
        else DailyBackup(repo, settings, delivery.notifier, settings.backup_dir),
        crypto=crypto,
    )
    webhook_path = settings.cryptopay_webhook_path
    if crypto is not None and webhook_path is not None:
        # On the Telegram webhook server in webhook mode (it is the one behind the proxy),
        # else on the METRICS_LISTEN server.
        server = app.webhook or app.ops_server
        if server is None:
            logger.warning(
                "CRYPTOPAY_WEBHOOK_PATH is set but neither WEBHOOK_URL nor METRICS_LISTEN is: "
                "no server takes the webhook; payments are still found by polling"
            )
        else:
            server.extra_routes.append(
                lambda web_app: add_cryptopay_routes(web_app, crypto, webhook_path)
            )
    dp.update.outer_middleware(inflight)
    # Before the metrics: an update delivered twice is counted once, as handled, plus once in
    # daisybot_updates_duplicate_total.
    dp.update.outer_middleware(DedupMiddleware(repo, metrics))
    dp.update.outer_middleware(UpdateMetricsMiddleware(metrics))
    dp.update.outer_middleware(UpdateContextMiddleware())
    # The outbox sender owns the one account of Telegram's limits; handler replies use it too.
    limiter = delivery.sender.limiter
    bot.session.middleware(HandlerFloodMiddleware(lambda: limiter))
    bot.session.middleware(BotAPIMetricsMiddleware(metrics))
    user_middleware = UserMiddleware()
    dp.message.outer_middleware(user_middleware)
    dp.callback_query.outer_middleware(user_middleware)
    dp.callback_query.middleware(CallbackAnswerMiddleware())
    dp.include_routers(*build_routers())

    async def on_startup(bot: Bot) -> None:
        if app.ops_server is not None:
            await app.ops_server.start()
        await purchase_queue.start()
        await queue_notifier.start()
        await set_default_commands(bot, i18n)
        await set_admin_commands(bot, i18n, repo, settings.admin_ids)
        delivery.poller.add_jobs(scheduler)
        if crypto is not None:
            # Polling is the default way to see payments (it needs no public URL); with a
            # webhook too, whichever sees a payment first credits it, once.
            scheduler.add_job(
                crypto.poll_job,
                "interval",
                seconds=settings.cryptopay_poll_seconds,
                id=CRYPTOPAY_POLL_JOB_ID,
                name="poll Crypto Pay for paid and expired invoices",
                max_instances=1,
                coalesce=True,
                replace_existing=True,
            )
        if app.daily_backup is not None:
            scheduler.add_job(
                app.daily_backup.run,
                "cron",
                hour=settings.backup_hour_utc,
                minute=0,
                id=BACKUP_JOB_ID,
                name="daily backup of the database into BACKUP_DIR",
                max_instances=1,
                coalesce=True,
                replace_existing=True,
            )
        delivery.start_soon()
        scheduler.start()
        logger.info(
            "bot started (%s mode, %s, upstream %s)",
            "sandbox" if settings.sandbox_mode else "live",
            "webhook" if settings.webhook_mode else "polling",
            client.base_url,
        )

    dp.startup.register(on_startup)
    dp.shutdown.register(app.shut_down)
    return app


def _build_crypto(
    settings: Settings,
    repo: Repo,
    notices: TelegramCryptoNotices,
    *,
    base_url_override: str | None,
    token_override: str | None,
) -> CryptoTopups | None:
    token = token_override or (
        settings.cryptopay_token.get_secret_value() if settings.cryptopay_token else None
    )
    if token is None:
        return None
    client = CryptoPayClient(
        base_url_override or network_url(settings.cryptopay_network),
        token,
        timeout=CRYPTOPAY_TIMEOUT_SECONDS,
    )
    return CryptoTopups(
        repo,
        client,
        network="sandbox" if base_url_override else settings.cryptopay_network,
        assets=settings.cryptopay_assets,
        expires_in=settings.cryptopay_invoice_minutes * 60,
        notices=notices,
    )


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


class _RedactingJsonFormatter(_RedactingFormatter, JsonFormatter):
    """LOG_FORMAT=json: one object a line, redacted like the text lines (neither secret has a
    character JSON escapes, so it shows in the line exactly as in the settings)."""


def log_formatter(settings: Settings) -> logging.Formatter:
    secrets = [
        s.get_secret_value()
        for s in (
            settings.bot_token,
            settings.daisysim_api_key,
            settings.webhook_secret,
            settings.cryptopay_token,
        )
        if s is not None
    ]
    if settings.log_format == "json":
        return _RedactingJsonFormatter("%(message)s", secrets)
    return _RedactingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s", secrets)


def configure_logging(settings: Settings, stream: TextIO | None = None) -> None:
    """The root logger writes to `stream` (stderr) in LOG_FORMAT, at LOG_LEVEL."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(log_formatter(settings))
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
    crypto_sandbox: Any = None
    base_url: str | None = None
    api_key: str | None = None
    crypto_url: str | None = None
    crypto_token: str | None = None
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
        if settings.cryptopay_token is None:
            crypto_sandbox = await _start_crypto_sandbox()
            crypto_url, crypto_token = crypto_sandbox.base_url, crypto_sandbox.token
            logger.info("no CRYPTOPAY_TOKEN: crypto top-ups go to a local Crypto Pay (play money)")
    try:
        app = await create_app(
            settings,
            daisysim_base_url_override=base_url,
            daisysim_api_key_override=api_key,
            cryptopay_base_url_override=crypto_url,
            cryptopay_token_override=crypto_token,
        )
        try:
            await app.run(handle_signals=True)
        finally:
            await app.stop()
    finally:
        if crypto_sandbox is not None:
            await crypto_sandbox.stop()
        if sandbox is not None:
            await sandbox.stop()


async def _start_crypto_sandbox() -> Any:
    """The local Crypto Pay of sandbox mode. Its invoice ids start from the clock, so those
    of an earlier run (still in the database) are not handed out again."""
    from bot.cryptopay_sandbox import CryptoPaySandbox

    crypto_sandbox = CryptoPaySandbox(first_invoice_id=int(time.time()))
    await crypto_sandbox.start()
    return crypto_sandbox


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
