"""A place in the purchase queue: the message that shows it, and the button that leaves it."""

from __future__ import annotations

from aiogram import F, Router
from aiogram.types import CallbackQuery
from aiogram.utils.callback_answer import CallbackAnswer

from bot.services.errors import NotYourActivation
from bot.services.purchase_queue import LEFT_QUEUE, NotQueued, PurchaseQueue
from bot.telegram.callbacks import QueueAction, QueueCb
from bot.telegram.cards import edit_card
from bot.telegram.i18n import Translator


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
    callback_answer.text = t.plain("queue-left-answer", price=t.usd(activation.user_price))
    await edit_card(query, activation, t)


def build_router() -> Router:
    router = Router(name=__name__)
    router.callback_query.register(leave, QueueCb.filter(F.action == QueueAction.LEAVE))
    return router
