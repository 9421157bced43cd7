"""The activation card as a message: sending it, redrawing it, and a place in the purchase
queue (the message that becomes the card once the purchase is served)."""

from __future__ import annotations

import logging
import time

from aiogram import Bot
from aiogram.exceptions import TelegramBadRequest
from aiogram.types import CallbackQuery, Message

from bot.services.purchase_queue import PurchaseQueue, Queued
from bot.telegram.i18n import Translator
from bot.telegram.queue_notify import QueueNotifier, render_place
from bot.telegram.replies import is_not_modified, pressed_message
from bot.telegram.texts import render_card
from storage.models import Activation
from storage.repo import Repo

logger = logging.getLogger(__name__)


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


async def show_place(
    bot: Bot,
    queue: PurchaseQueue,
    notifier: QueueNotifier | None,
    chat_id: int,
    queued: Queued,
    t: Translator,
) -> None:
    """Send the buyer their place in line; the message becomes the card once served."""
    text, markup = render_place(queued.activation, queued.place, queued.wait, t)
    message = await bot.send_message(chat_id, text, reply_markup=markup)
    settled = await queue.attach_message(queued.activation.id, chat_id, message.message_id)
    if settled is None:
        if notifier is not None:
            notifier.shown(queued.activation.id, queued.place, queued.wait)
        return
    # Served (and settled) in the moment before its message existed: draw the card on it now.
    card, card_markup = render_card(settled, t, time.time())
    try:
        await message.edit_text(card, reply_markup=card_markup)
    except TelegramBadRequest as exc:
        if not is_not_modified(exc):
            logger.info("cannot turn activation %d's place into its card: %s", settled.id, exc)
