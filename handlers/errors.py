"""The last word on any exception a handler raised: no traceback ever reaches a chat.

Expected failures (the AppError family, the DaisySim errors) become a friendly line with the
next step; anything else is logged with a short reference the user can quote, and the user is
told their money is safe (the purchase service never loses a held amount: it is refunded or
reconciled).

A tap that could not be answered (too old, answered already) is no error to the user: the
handler did its work, only the toast is lost, and what happened is on the card.
"""

from __future__ import annotations

import logging
import secrets

from aiogram import Bot, Router
from aiogram.exceptions import TelegramAPIError
from aiogram.methods import AnswerCallbackQuery
from aiogram.types import ErrorEvent, InlineKeyboardButton, InlineKeyboardMarkup

from bot.config import Settings
from bot.daisysim import DaisySimError, RateLimited
from bot.services.errors import (
    ActivationNotActive,
    ActivationNotFound,
    AppError,
    CancelTooEarly,
    InsufficientFunds,
    NotYourActivation,
    PurchasePending,
    PurchaseRejected,
    UpstreamBusy,
    UpstreamUnavailable,
)
from bot.telegram.i18n import I18n, Translator, language_for
from bot.telegram.keyboards import back_to_menu
from bot.telegram.menu import topup_howto
from bot.telegram.texts import format_countdown
from storage.repo import Repo

logger = logging.getLogger(__name__)


def describe(exc: Exception, t: Translator, settings: Settings) -> str | None:
    """The friendly text for an expected failure, or None for a bug."""
    if isinstance(exc, InsufficientFunds):
        return t(
            "buy-insufficient",
            price=t.usd(exc.needed),
            balance=t.usd(exc.balance),
            howto=topup_howto(t, settings),
        )
    if isinstance(exc, NotYourActivation):
        return t("card-not-yours")
    if isinstance(exc, ActivationNotFound):
        return t("card-not-found")
    if isinstance(exc, ActivationNotActive):
        return t("card-finished")
    if isinstance(exc, CancelTooEarly):
        return t("card-cancel-wait", time=format_countdown(exc.seconds_left))
    if isinstance(exc, UpstreamBusy):
        return t("error-busy", seconds=max(1, round(exc.retry_after)))
    if isinstance(exc, RateLimited):
        return t("error-busy", seconds=max(1, round(exc.retry_after)))
    if isinstance(exc, PurchasePending):
        return t("buy-pending", name=exc.activation.service_name)
    if isinstance(exc, PurchaseRejected):
        return t("buy-failed")
    if isinstance(exc, UpstreamUnavailable | DaisySimError):
        return t("error-upstream")
    if isinstance(exc, AppError):
        return t("buy-failed")
    return None


async def on_error(event: ErrorEvent, bot: Bot, i18n: I18n, repo: Repo, settings: Settings) -> bool:
    update = event.update
    exc = event.exception
    if isinstance(exc, TelegramAPIError) and isinstance(exc.method, AnswerCallbackQuery):
        logger.info("update %d: the tap could not be answered: %s", update.update_id, exc)
        return True
    tg_user = None
    chat_id: int | None = None
    if update.message is not None:
        tg_user = update.message.from_user
        chat_id = update.message.chat.id
    elif update.callback_query is not None:
        tg_user = update.callback_query.from_user
        message = update.callback_query.message
        chat_id = message.chat.id if message is not None else tg_user.id
    lang = language_for(tg_user.language_code if tg_user else None)
    if tg_user is not None:
        stored = await _stored_language(repo, tg_user.id)
        lang = stored or lang
    t = i18n.translator(lang)
    text = describe(exc, t, settings)
    if text is None:
        ref = secrets.token_hex(4)
        logger.error(
            "unhandled error in update %d (ref %s)",
            update.update_id,
            ref,
            exc_info=(type(exc), exc, exc.__traceback__),
        )
        text = t("error-generic", ref=ref)
    else:
        logger.info("update %d ended with %r", update.update_id, exc)
    if chat_id is None:
        return True
    markup: InlineKeyboardMarkup = back_to_menu(t)
    query = update.callback_query
    if query is not None and query.data:
        # The next step is the same tap again: every button is safe to repeat (a buy
        # button carries its idempotency nonce), and the menu is always a way out.
        retry = InlineKeyboardButton(text=t.plain("retry-button"), callback_data=query.data)
        markup = InlineKeyboardMarkup(inline_keyboard=[[retry], *markup.inline_keyboard])
    try:
        await bot.send_message(chat_id, text, reply_markup=markup)
    except TelegramAPIError as send_error:
        logger.warning("could not tell chat %d about an error: %s", chat_id, send_error)
    return True


def build_router() -> Router:
    router = Router(name=__name__)
    router.errors.register(on_error)
    return router


async def _stored_language(repo: Repo, user_id: int) -> str | None:
    try:
        user = await repo.users.get(user_id)
    except Exception:  # the database itself may be what failed
        logger.warning("could not read the language of user %d", user_id, exc_info=True)
        return None
    return user.language if user is not None else None
