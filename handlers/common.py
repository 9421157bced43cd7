"""Small helpers the feature routers share (no handlers in here)."""

from __future__ import annotations

import logging
import time

from aiogram import Bot
from aiogram.exceptions import TelegramBadRequest
from aiogram.types import CallbackQuery, InaccessibleMessage, InlineKeyboardMarkup, Message

from bot.telegram.i18n import Translator
from bot.telegram.texts import render_card
from storage.models import Activation
from storage.repo import Repo

logger = logging.getLogger(__name__)


def is_not_modified(exc: TelegramBadRequest) -> bool:
    return "message is not modified" in exc.message


async def edit_or_send(
    query: CallbackQuery, text: str, markup: InlineKeyboardMarkup | None = None
) -> Message | None:
    """Show `text` in place of the pressed message; a message Telegram no longer lets us edit
    (too old, deleted) gets a fresh one instead, so a press is never a dead end."""
    message = query.message
    if isinstance(message, Message):
        try:
            edited = await message.edit_text(text, reply_markup=markup)
        except TelegramBadRequest as exc:
            if is_not_modified(exc):
                return message
            logger.info("cannot edit message %d: %s", message.message_id, exc.message)
        else:
            return edited if isinstance(edited, Message) else message
    if message is None:
        return None
    bot = query.bot
    assert bot is not None
    return await bot.send_message(message.chat.id, text, reply_markup=markup)


async def send_to_chat_of(
    query: CallbackQuery, text: str, markup: InlineKeyboardMarkup | None = None
) -> Message | None:
    """A new message in the chat the pressed button lives in."""
    message = query.message
    if message is None:
        return None
    bot = query.bot
    assert bot is not None
    return await bot.send_message(message.chat.id, text, reply_markup=markup)


def pressed_message(query: CallbackQuery) -> Message | None:
    message = query.message
    if message is None or isinstance(message, InaccessibleMessage):
        return None
    return message


async def send_card(
    bot: Bot, repo: Repo, chat_id: int, activation: Activation, t: Translator
) -> Message:
    """Send a new card and remember it on the activation, so the poller edits this one."""
    text, markup = render_card(activation, t, time.time())
    message = await bot.send_message(chat_id, text, reply_markup=markup)
    await repo.activations.set_card(activation.id, chat_id, message.message_id)
    return message


async def edit_card(
    query: CallbackQuery,
    activation: Activation,
    t: Translator,
    *,
    cancel_in: float | None = None,
) -> None:
    """Redraw the card the button was pressed on (it may be an older copy of the card)."""
    message = pressed_message(query)
    if message is None:
        return
    text, markup = render_card(activation, t, time.time(), cancel_in=cancel_in)
    try:
        await message.edit_text(text, reply_markup=markup)
    except TelegramBadRequest as exc:
        if not is_not_modified(exc):
            logger.info("cannot redraw card of activation %d: %s", activation.id, exc.message)
