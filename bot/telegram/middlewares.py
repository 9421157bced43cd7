"""Per-update plumbing: who is asking (user, wallet, language), and which updates are running.

`UserMiddleware` is an outer middleware on messages and callback queries: it loads or creates
the user and their wallet before any filter runs, so every handler declares `user`, `wallet`
and `t` as typed parameters, and a banned user is stopped here with one polite line (except a
payment Telegram has already taken, which is credited).

`DedupMiddleware` (outer, on every update) records each update_id before anything handles it
and skips one seen before: Telegram redelivers a webhook update it thinks failed.
`UpdateMetricsMiddleware` (outer, on every update) counts and times updates by type and binds
the update and user ids for the log lines written while handling it; `BotAPIMetricsMiddleware`
(on the bot's session) counts what Telegram refuses, 429s apart.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import BaseMiddleware, Bot
from aiogram.client.session.middlewares.base import (
    BaseRequestMiddleware,
    NextRequestMiddlewareType,
)
from aiogram.exceptions import TelegramRetryAfter
from aiogram.methods import TelegramMethod
from aiogram.methods.base import Response, TelegramType
from aiogram.types import CallbackQuery, Message, TelegramObject, Update
from aiogram.types import User as TgUser

from bot.config import Settings
from bot.log_context import bound
from bot.metrics import Metrics
from bot.services import wallet as wallet_service
from bot.telegram.i18n import I18n, language_for
from storage.repo import Repo

logger = logging.getLogger(__name__)

Handler = Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]]


class UserMiddleware(BaseMiddleware):
    """Puts `user`, `wallet` and `t` (a Translator in the user's language) into handler data."""

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        tg_user: TgUser | None = data.get("event_from_user")
        if tg_user is None or tg_user.is_bot:
            return await handler(event, data)
        repo: Repo = data["repo"]
        settings: Settings = data["settings"]
        i18n: I18n = data["i18n"]
        user, created = await repo.users.upsert(
            tg_user.id,
            username=tg_user.username,
            first_name=tg_user.first_name,
            language=language_for(tg_user.language_code),
        )
        if created:
            logger.info("new user %d", user.id)
        t = i18n.translator(user.language)
        data["t"] = t
        if user.banned and not _is_payment(event):
            await _refuse(event, t.plain("banned"))
            return None
        bonus = settings.sandbox_start_balance_units if settings.sandbox_mode else 0
        data["user"] = user
        # True only for the update that created the user's row: the one /start that may tie
        # a new user to whoever invited them.
        data["user_created"] = created
        data["wallet"] = await wallet_service.get_or_create_user_wallet(
            repo, user.id, sandbox_bonus_units=bonus
        )
        return await handler(event, data)


def _is_payment(event: TelegramObject) -> bool:
    """A successful_payment: Telegram has taken the Stars (pre-checkout refuses a banned payer,
    but a ban can land between the two), so it is credited whatever the user's standing."""
    return isinstance(event, Message) and event.successful_payment is not None


async def _refuse(event: TelegramObject, text: str) -> None:
    if isinstance(event, CallbackQuery):
        await event.answer(text, show_alert=True)
    elif isinstance(event, Message) and event.chat.type == "private":
        await event.answer(text, parse_mode=None)


class InflightMiddleware(BaseMiddleware):
    """Tracks the tasks handling updates, so shutdown can let them finish before the
    database closes under them (aiogram does not wait for them when polling stops)."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        try:
            return await handler(event, data)
        finally:
            if task is not None:
                self._tasks.discard(task)

    def track(self, task: asyncio.Task[Any]) -> None:
        """Count `task` from now on, before it reaches this middleware: a webhook update's task
        exists before its 200 is sent, and a shutdown right after must wait for it too."""
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    @property
    def running(self) -> int:
        return len(self._tasks)

    async def drain(self, timeout: float) -> None:
        """Wait up to `timeout` s for running updates, then cancel the rest and wait for them."""
        current = asyncio.current_task()
        tasks = {t for t in self._tasks if t is not current and not t.done()}
        if not tasks:
            return
        _, pending = await asyncio.wait(tasks, timeout=timeout)
        for task in pending:
            logger.warning("cancelling an update still running at shutdown")
            task.cancel()
        for task in pending:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


# Handled update ids are kept this long (seconds): Telegram stops redelivering far sooner.
HANDLED_UPDATES_KEPT_SECONDS = 86_400.0
# Pruning runs at most this often (seconds), from the middleware itself: no job to schedule.
HANDLED_UPDATES_PRUNE_EVERY = 3_600.0


class DedupMiddleware(BaseMiddleware):
    """Handles each update_id once: the id is recorded (handled_updates) before the update is
    handled, and an update whose id is already there is acknowledged and skipped.

    Telegram redelivers a webhook update it got no 2xx for (a timeout, a restart mid-request),
    with the same update_id; whatever the handler did (a purchase, a reply) must not happen
    twice. Recording first means an update whose handler then failed is not retried either:
    the same as polling, where aiogram confirms an update however its handler ended. In
    polling mode this never finds a duplicate; it costs one insert per update.
    """

    def __init__(
        self,
        repo: Repo,
        metrics: Metrics,
        *,
        keep_seconds: float = HANDLED_UPDATES_KEPT_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._repo = repo
        self._metrics = metrics
        self._keep = keep_seconds
        self._clock = clock
        self._pruned_at: float | None = None

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        if not isinstance(event, Update):
            return await handler(event, data)
        now = self._clock()
        if not await self._repo.updates.claim(event.update_id, now=now):
            self._metrics.updates_duplicate.inc()
            logger.info("update %d was delivered again; handled once already", event.update_id)
            return None
        if self._pruned_at is None or now - self._pruned_at >= HANDLED_UPDATES_PRUNE_EVERY:
            self._pruned_at = now
            await self._repo.updates.prune(now - self._keep)
        return await handler(event, data)


class UpdateMetricsMiddleware(BaseMiddleware):
    """Counts and times each update by its type (message, callback_query, ...) and whether it
    raised, and tags the log lines written meanwhile with the update and user ids. Outer, on
    `dp.update`, after aiogram's own context middleware has found the user."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        if not isinstance(event, Update):
            return await handler(event, data)
        kind = event.event_type
        tg_user: TgUser | None = data.get("event_from_user")
        started = time.monotonic()
        outcome = "error"
        with bound(update_id=event.update_id, user_id=tg_user.id if tg_user else None):
            try:
                result = await handler(event, data)
                outcome = "ok"
                return result
            finally:
                self._metrics.updates.labels(kind, outcome).inc()
                self._metrics.update_seconds.labels(kind).observe(time.monotonic() - started)


class BotAPIMetricsMiddleware(BaseRequestMiddleware):
    """Every Bot API request, handlers' replies and the outbox's alike: failures by method
    and error class, 429s (flood control) among them and also on their own."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    async def __call__(
        self,
        make_request: NextRequestMiddlewareType[TelegramType],
        bot: Bot,
        method: TelegramMethod[TelegramType],
    ) -> Response[TelegramType]:
        try:
            return await make_request(bot, method)
        except Exception as exc:
            name = method.__api_method__
            self._metrics.telegram_errors.labels(name, type(exc).__name__).inc()
            if isinstance(exc, TelegramRetryAfter):
                self._metrics.telegram_rate_limited.labels(name).inc()
            raise
