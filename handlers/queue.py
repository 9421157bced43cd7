"""A place in the purchase queue: the message that shows it, and the button that leaves it."""

from __future__ import annotations

import logging
import time

from aiogram import Bot, F, Router
from aiogram.exceptions import TelegramBadRequest
from aiogram.types import CallbackQuery
from aiogram.utils.callback_answer import CallbackAnswer

from bot.money import format_usd
from bot.services.errors import NotYourActivation
from bot.services.purchase_queue import LEFT_QUEUE, NotQueued, PurchaseQueue, Queued
from bot.telegram.callbacks import QueueAction, QueueCb
from bot.telegram.i18n import Translator
from bot.telegram.queue_notify import QueueNotifier, render_place
from bot.telegram.texts import render_card
from handlers.common import edit_card, is_not_modified

logger = logging.getLogger(__name__)


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


def build_router() -> Router:
    router = Router(name=__name__)

    @router.callback_query(QueueCb.filter(F.action == QueueAction.LEAVE))
    async def leave(
        query: CallbackQuery,
        callback_data: QueueCb,
        purchase_queue: PurchaseQueue,
        t: Translator,
        callback_answer: CallbackAnswer,
    ) -> None:
        try:
            activation = await purchase_queue.leave(callback_data.id, query.from_user.id)
        except NotYourActivation:
            callback_answer.text = t.plain("card-not-yours")
            return
        except NotQueued as exc:
            if exc.activation.error_code == LEFT_QUEUE:
                callback_answer.text = t.plain("queue-already-left-answer")
                return
            # Its call went out already: show where it stands instead of a stale place.
            callback_answer.text = t.plain("queue-not-queued-answer")
            if exc.activation.state != "purchasing":
                await edit_card(query, exc.activation, t)
            return
        callback_answer.text = t.plain("queue-left-answer", price=format_usd(activation.user_price))
        await edit_card(query, activation, t)

    return router
