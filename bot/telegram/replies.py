"""Answering a button press with a message: edit the pressed one, or send to its chat."""

from __future__ import annotations

import logging

from aiogram.exceptions import TelegramBadRequest
from aiogram.types import CallbackQuery, InaccessibleMessage, InlineKeyboardMarkup, Message

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
