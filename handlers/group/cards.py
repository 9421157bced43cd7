"""The card buttons of a number bought in a group: its buyer, or an admin of the group it was
bought in, may refresh or cancel it."""

from __future__ import annotations

import logging

from aiogram import Bot, Router
from aiogram.types import CallbackQuery, Message
from aiogram.utils.callback_answer import CallbackAnswer

from bot.daisysim import DaisySimClient
from bot.services.notify import Notifier
from bot.telegram.callbacks import ActCb
from bot.telegram.card_actions import act_on_card
from bot.telegram.filters import is_group_admin
from bot.telegram.i18n import Translator
from storage.models import Activation, User
from storage.repo import Repo

logger = logging.getLogger(__name__)


async def may_act(bot: Bot, activation: Activation, user: User) -> bool:
    """The buyer, or an admin of the group the number was bought in."""
    if activation.user_id == user.id:
        return True
    if activation.chat_id is None or activation.chat_id >= 0:
        return False  # bought in a private chat: only its buyer
    return await is_group_admin(bot, activation.chat_id, user.id)


async def card_button(
    query: CallbackQuery,
    callback_data: ActCb,
    bot: Bot,
    repo: Repo,
    daisysim: DaisySimClient,
    notifier: Notifier,
    user: User,
    t: Translator,
    callback_answer: CallbackAnswer,
) -> None:
    message = query.message
    if not isinstance(message, Message):
        return
    activation = await repo.activations.get(callback_data.id)
    if activation is None:
        callback_answer.text = t.plain("card-not-found")
        return
    if not await may_act(bot, activation, user):
        logger.warning(
            "user %d pressed a card button of activation %d in group %d",
            user.id,
            activation.id,
            message.chat.id,
        )
        callback_answer.text = t.plain("group-card-not-yours")
        callback_answer.show_alert = True
        return
    await act_on_card(
        query,
        callback_data.action,
        activation,
        bot=bot,
        repo=repo,
        daisysim=daisysim,
        notifier=notifier,
        user=user,
        t=t,
        callback_answer=callback_answer,
        not_yours_key="group-card-not-yours",
        cancelled_key="group-card-cancelled",
    )


def build_router() -> Router:
    router = Router(name=__name__)
    router.callback_query.register(card_button, ActCb.filter())
    return router
