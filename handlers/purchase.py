"""The button that buys, in a private chat: the one buy path pays from the user's own wallet
(or, for "Buy again", from the wallet that paid the card's purchase)."""

from __future__ import annotations

from aiogram import Bot, Router
from aiogram.types import CallbackQuery, Message
from aiogram.utils.callback_answer import CallbackAnswer

from bot.config import Settings
from bot.services.buying import Buying
from bot.services.catalogue import Catalogue
from bot.services.purchase_queue import PurchaseQueue
from bot.telegram.buy_flow import BuyView, handle_buy_tap
from bot.telegram.callbacks import BuyCb
from bot.telegram.i18n import Translator
from bot.telegram.queue_notify import QueueNotifier
from storage.models import User, Wallet
from storage.repo import Repo


async def buy(
    query: CallbackQuery,
    callback_data: BuyCb,
    bot: Bot,
    repo: Repo,
    catalogue: Catalogue,
    settings: Settings,
    buying: Buying,
    purchase_queue: PurchaseQueue,
    queue_notifier: QueueNotifier,
    user: User,
    wallet: Wallet,
    t: Translator,
    callback_answer: CallbackAnswer,
) -> None:
    message = query.message
    if not isinstance(message, Message):
        return
    view = BuyView(
        query,
        message,
        bot=bot,
        repo=repo,
        catalogue=catalogue,
        settings=settings,
        queue=purchase_queue,
        notifier=queue_notifier,
        user=user,
        t=t,
        callback_answer=callback_answer,
    )
    await handle_buy_tap(view, buying, callback_data, wallet=wallet, group=None)


def build_router() -> Router:
    router = Router(name=__name__)
    router.callback_query.register(buy, BuyCb.filter())
    return router
