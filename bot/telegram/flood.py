"""One account of Telegram's flood limits for everything the bot sends.

The outbox sender paces codes, notices and broadcasts with a TelegramLimiter; replies that
handlers send straight away (a menu, an edited card) would otherwise be invisible to it, so a
burst of taps followed by a queued code could get a 429 from Telegram and the tap's reply would
be lost. A request middleware on the bot's session counts handler replies in the same limiter
and waits, briefly, for a slot instead.

Only requests made while an update is being handled are paced here: the sender takes its own
permits before it calls the API, and counting those twice would halve its budget.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from typing import Any

from aiogram import BaseMiddleware, Bot
from aiogram.client.session.middlewares.base import (
    BaseRequestMiddleware,
    NextRequestMiddlewareType,
)
from aiogram.exceptions import TelegramRetryAfter
from aiogram.methods import (
    EditMessageReplyMarkup,
    EditMessageText,
    SendDocument,
    SendInvoice,
    SendMessage,
    TelegramMethod,
)
from aiogram.methods.base import Response, TelegramType
from aiogram.types import TelegramObject

from bot.telegram.limits import TelegramLimiter

logger = logging.getLogger(__name__)

_IN_UPDATE: ContextVar[bool] = ContextVar("daisybot_in_update", default=False)

# The methods Telegram counts against its per-chat and global message limits.
_PACED: frozenset[type[TelegramMethod[Any]]] = frozenset(
    {SendMessage, EditMessageText, EditMessageReplyMarkup, SendDocument, SendInvoice}
)
# A slot that is busy only because a request is still in flight frees when its answer comes;
# look again this soon.
_IN_FLIGHT_RECHECK = 0.05


class UpdateContextMiddleware(BaseMiddleware):
    """Marks the handling of one update, so requests made inside it are paced as replies."""

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        token = _IN_UPDATE.set(True)
        try:
            return await handler(event, data)
        finally:
            _IN_UPDATE.reset(token)


class HandlerFloodMiddleware(BaseRequestMiddleware):
    """Paces handler replies with the outbox's limiter; retries one short `retry_after`.

    `max_wait` bounds how long a reply waits for a slot: past it the request goes anyway,
    because a late answer Telegram may refuse is still better than a handler that hangs. It
    is long enough for a crowd: 300 users who all write within a second need 10 s of
    Telegram's 30 messages a second, and a reply sent early only earns a 429 and waits longer.
    """

    def __init__(
        self,
        limiter: Callable[[], TelegramLimiter | None],
        *,
        max_wait: float = 20.0,
    ) -> None:
        self._limiter = limiter
        self._max_wait = max_wait

    async def __call__(
        self,
        make_request: NextRequestMiddlewareType[TelegramType],
        bot: Bot,
        method: TelegramMethod[TelegramType],
    ) -> Response[TelegramType]:
        limiter = self._limiter()
        chat_id = getattr(method, "chat_id", None)
        if (
            limiter is None
            or not _IN_UPDATE.get()
            or type(method) not in _PACED
            or not isinstance(chat_id, int)
        ):
            return await make_request(bot, method)
        for attempt in range(2):
            await self._wait_for_slot(limiter, chat_id)
            permit = limiter.take(chat_id)
            try:
                return await make_request(bot, method)
            except TelegramRetryAfter as exc:
                limiter.pause_chat(chat_id, exc.retry_after)
                if attempt or exc.retry_after > self._max_wait:
                    raise
                logger.info("reply to chat %s paused %ss by Telegram", chat_id, exc.retry_after)
            finally:
                limiter.release(permit)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _wait_for_slot(self, limiter: TelegramLimiter, chat_id: int) -> None:
        deadline = time.monotonic() + self._max_wait
        while True:
            wait = limiter.wait_time(chat_id)
            if wait == 0:
                return
            step = _IN_FLIGHT_RECHECK if wait is None else wait
            if time.monotonic() + step > deadline:
                return
            await asyncio.sleep(step)
