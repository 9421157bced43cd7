"""A private-chat button (menu, favourites, top-up) pressed in a group: it belongs elsewhere.
The catch-all of the group's buttons, so it comes after every other group router."""

from __future__ import annotations

import logging

from aiogram import Router
from aiogram.types import CallbackQuery
from aiogram.utils.callback_answer import CallbackAnswer

from bot.telegram.callbacks import QueueCb
from bot.telegram.i18n import Translator

logger = logging.getLogger(__name__)


async def other_button(
    query: CallbackQuery, t: Translator, callback_answer: CallbackAnswer
) -> None:
    logger.info("group button %r not handled in groups", query.data)
    callback_answer.text = t.plain("group-private-button")


def build_router() -> Router:
    router = Router(name=__name__)
    # Leaving the purchase queue works anywhere (its handler checks the buyer).
    router.callback_query.register(other_button, ~QueueCb.filter())
    return router
