"""The activation card's buttons: Refresh, Cancel and refund, and reopening a card.

Callback data only names an activation; whose it is comes from the database, so a forged id
of someone else's activation is refused before anything is read from or sent upstream.
"""

from __future__ import annotations

import logging

from aiogram import Bot, F, Router
from aiogram.types import CallbackQuery
from aiogram.utils.callback_answer import CallbackAnswer

from bot.daisysim import DaisySimClient
from bot.services.notify import Notifier
from bot.telegram.callbacks import ActAction, ActCb
from bot.telegram.card_actions import act_on_card
from bot.telegram.i18n import Translator
from storage.models import Activation, User
from storage.repo import Repo

logger = logging.getLogger(__name__)


async def owned(
    repo: Repo, callback_data: ActCb, user: User, t: Translator, answer: CallbackAnswer
) -> Activation | None:
    activation = await repo.activations.get(callback_data.id)
    if activation is None:
        answer.text = t.plain("card-not-found")
        return None
    if activation.user_id != user.id:
        logger.warning(
            "user %d pressed a button of activation %d, which is not theirs",
            user.id,
            activation.id,
        )
        answer.text = t.plain("card-not-yours")
        answer.show_alert = True
        return None
    return activation


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
    activation = await owned(repo, callback_data, user, t, callback_answer)
    if activation is None:
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
    )


def build_router() -> Router:
    router = Router(name=__name__)
    router.callback_query.register(
        card_button,
        ActCb.filter(F.action.in_({ActAction.REFRESH, ActAction.CANCEL, ActAction.SHOW})),
    )
    return router
