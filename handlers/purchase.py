"""The button that buys: check the shown price still holds, buy once, send the card.

The buy step (`buy`) is kept as it was; a shared buy service is to replace it. What it shows
for each outcome lives in bot.telegram.purchase_views.

Every failure ends in a message with a next step (other pools, try again, balance), and says
whether the user was charged: the purchase service has already refunded a definite rejection
by the time it raises.
"""

from __future__ import annotations

from aiogram import Bot, Router
from aiogram.types import CallbackQuery
from aiogram.utils.callback_answer import CallbackAnswer

from bot.config import Settings
from bot.daisysim import DaisySimClient
from bot.money import format_usd
from bot.services.catalogue import Catalogue
from bot.services.errors import (
    DailyLimitExceeded,
    InsufficientFunds,
    PurchasePending,
    PurchaseRejected,
    UpstreamBalanceExhausted,
)
from bot.services.purchase import PurchaseRequest
from bot.services.purchase_queue import PurchaseQueue, Queued, QueueFull
from bot.telegram.admin_alerts import alert_upstream_exhausted
from bot.telegram.callbacks import BuyCb
from bot.telegram.cards import send_card, show_place
from bot.telegram.i18n import I18n, Translator
from bot.telegram.keyboards import (
    confirm_price_keyboard,
    services_button_keyboard,
)
from bot.telegram.middlewares import KeyedLocks
from bot.telegram.outbox import OutboxSender
from bot.telegram.purchase_views import (
    answer_repeated_tap,
    show_insufficient,
    show_rejected,
    start_purchase,
)
from bot.telegram.queue_notify import QueueNotifier
from bot.telegram.replies import send_to_chat_of
from storage.db import Database
from storage.models import User, Wallet
from storage.repo import Repo


async def buy(
    query: CallbackQuery,
    callback_data: BuyCb,
    bot: Bot,
    db: Database,
    repo: Repo,
    daisysim: DaisySimClient,
    catalogue: Catalogue,
    settings: Settings,
    buy_locks: KeyedLocks,
    user: User,
    wallet: Wallet,
    t: Translator,
    callback_answer: CallbackAnswer,
    i18n: I18n,
    outbox: OutboxSender | None = None,
    purchase_queue: PurchaseQueue | None = None,
    queue_notifier: QueueNotifier | None = None,
) -> None:
    if query.message is None:
        return
    chat_id = query.message.chat.id
    key = f"{user.id}:{callback_data.nonce}"
    async with buy_locks.hold(key):
        existing = await repo.activations.get_by_key(key)
        if existing is not None:
            await answer_repeated_tap(
                bot, repo, chat_id, existing, t, callback_answer, purchase_queue
            )
            return
        country = callback_data.country
        pool = callback_data.pool or None
        quote = await catalogue.quote(country, callback_data.ref, pool)
        if quote is None:
            await send_to_chat_of(
                query,
                t("buy-gone", name=callback_data.ref),
                services_button_keyboard(t, country),
            )
            return
        if quote.price_units != callback_data.price:
            # Never charge a number the user did not see: show the new one and ask.
            await send_to_chat_of(
                query,
                t(
                    "buy-price-changed",
                    name=quote.service.name,
                    price=format_usd(quote.price_units),
                    old=format_usd(callback_data.price),
                ),
                confirm_price_keyboard(t, country, quote.service, pool, quote.price_units),
            )
            return
        if wallet.balance < quote.price_units:
            await show_insufficient(query, t, settings, country, quote.price_units, wallet.balance)
            return
        request = PurchaseRequest(
            user_id=user.id,
            wallet_id=wallet.id,
            service_code=quote.service.code,
            service_name=quote.service.name,
            user_price=callback_data.price,
            upstream_price=quote.upstream_units,
            idempotency_key=key,
            country=country,
            provider_id=quote.provider_id,
            chat_id=chat_id,
        )
        try:
            bought = await start_purchase(
                query, request, t, callback_answer, db, daisysim, settings, purchase_queue
            )
        except QueueFull as exc:
            await send_to_chat_of(query, t("queue-full", limit=exc.limit))
            return
        except InsufficientFunds as exc:
            await show_insufficient(query, t, settings, country, exc.needed, exc.balance)
            return
        except DailyLimitExceeded:
            await show_insufficient(query, t, settings, country, quote.price_units, wallet.balance)
            return
        except PurchaseRejected as exc:
            if isinstance(exc, UpstreamBalanceExhausted):
                # Our DaisySim account is empty: every purchase fails until it is topped up.
                await alert_upstream_exhausted(db, settings, i18n, outbox)
            await show_rejected(query, exc, quote, catalogue, t, country)
            return
        except PurchasePending as exc:
            await send_to_chat_of(query, t("buy-pending", name=quote.service.name))
            await send_card(bot, repo, chat_id, exc.activation, t)
            return
        if isinstance(bought, Queued):
            assert purchase_queue is not None
            await show_place(bot, purchase_queue, queue_notifier, chat_id, bought, t)
            return
        await send_card(bot, repo, chat_id, bought, t)


def build_router() -> Router:
    router = Router(name=__name__)
    router.callback_query.register(buy, BuyCb.filter())
    return router
