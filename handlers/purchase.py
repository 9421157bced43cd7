"""The button that buys, in a private chat: the one buy path pays from the user's own wallet
(or, for "Buy again", from the wallet that paid the card's purchase)."""

from __future__ import annotations

from aiogram import Router
from aiogram.types import CallbackQuery
from aiogram.utils.callback_answer import CallbackAnswer

from bot.telegram.buy_flow import BuyFlow
from bot.telegram.callbacks import BuyCb
from bot.telegram.i18n import Translator
from storage.models import User, Wallet


async def buy(
    query: CallbackQuery,
    callback_data: BuyCb,
    buy_flow: BuyFlow,
    user: User,
    wallet: Wallet,
    t: Translator,
    callback_answer: CallbackAnswer,
) -> None:
    await buy_flow.tap(
        query,
        callback_data,
        user=user,
        wallet=wallet,
        group=None,
        t=t,
        callback_answer=callback_answer,
    )


def build_router() -> Router:
    router = Router(name=__name__)
    router.callback_query.register(buy, BuyCb.filter())
    return router
