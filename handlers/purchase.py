"""The button that buys: check the shown price still holds, buy once, send the card.

Every failure ends in a message with a next step (other pools, try again, balance), and says
whether the user was charged: the purchase service has already refunded a definite rejection
by the time it raises.
"""

from __future__ import annotations

import logging

from aiogram import Bot, Router
from aiogram.exceptions import TelegramAPIError
from aiogram.types import CallbackQuery
from aiogram.utils.callback_answer import CallbackAnswer

from bot.config import Settings
from bot.daisysim import DaisySimClient
from bot.money import format_usd
from bot.services.admin import alert_upstream_exhausted
from bot.services.catalogue import Catalogue, Quote
from bot.services.errors import (
    DailyLimitExceeded,
    InsufficientFunds,
    PurchasePending,
    PurchaseRejected,
    UpstreamBalanceExhausted,
)
from bot.services.purchase import PurchaseRequest, purchase
from bot.services.purchase_queue import PurchaseQueue, Queued, QueueFull
from bot.telegram.callbacks import BuyCb
from bot.telegram.i18n import Translator
from bot.telegram.keyboards import (
    confirm_price_keyboard,
    insufficient_keyboard,
    pools_keyboard,
    retry_keyboard,
    services_button_keyboard,
)
from bot.telegram.middlewares import KeyedLocks
from bot.telegram.notifier import TelegramNotifier
from bot.telegram.queue_notify import QueueNotifier
from handlers.common import send_card, send_to_chat_of
from handlers.queue import show_place
from storage.db import Database
from storage.models import Activation, User, Wallet
from storage.repo import Repo

logger = logging.getLogger(__name__)

_RETRY_SECONDS_FALLBACK = 10


def topup_howto(t: Translator, settings: Settings) -> str:
    return t("balance-topup-sandbox" if settings.sandbox_mode else "balance-topup-admin")


def build_router() -> Router:
    router = Router(name=__name__)

    @router.callback_query(BuyCb.filter())
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
        notifier: TelegramNotifier,
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
                await _repeated_tap(
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
                await _insufficient(query, t, settings, country, quote.price_units, wallet.balance)
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
                await _insufficient(query, t, settings, country, exc.needed, exc.balance)
                return
            except DailyLimitExceeded:
                await _insufficient(query, t, settings, country, quote.price_units, wallet.balance)
                return
            except PurchaseRejected as exc:
                if isinstance(exc, UpstreamBalanceExhausted):
                    # Our DaisySim account is empty: every purchase fails until it is topped up.
                    await alert_upstream_exhausted(db, settings, notifier)
                await _rejected(query, exc, quote, catalogue, t, country)
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

    return router


async def start_purchase(
    query: CallbackQuery,
    request: PurchaseRequest,
    t: Translator,
    callback_answer: CallbackAnswer,
    db: Database,
    daisysim: DaisySimClient,
    settings: Settings,
    purchase_queue: PurchaseQueue | None,
) -> Activation | Queued:
    """Through the purchase queue when the app has one: straight through when nobody waits
    and the upstream's rate limit allows, else a place in line (PRODUCT.md section 7)."""
    if purchase_queue is None:
        # The purchase may wait behind the upstream's rate limit: stop the spinner now.
        await query.answer(t.plain("buy-started"))
        callback_answer.disable()
        return await purchase(
            db, daisysim, request, cancel_lock_seconds=settings.cancel_lock_seconds
        )
    # Joined before the tap is answered, so the line keeps the order of the taps.
    ticket = await purchase_queue.join(request)
    if ticket.queued is not None:
        toast = t.plain("queue-joined-answer", place=ticket.queued.place)
    else:
        toast = t.plain("buy-started")
    callback_answer.disable()
    try:
        await query.answer(toast)
    except TelegramAPIError as exc:
        # Only the toast is lost; the purchase is under way and its message follows.
        logger.info("could not answer the buy tap: %s", exc)
    return await purchase_queue.outcome(ticket)


async def _repeated_tap(
    bot: Bot,
    repo: Repo,
    chat_id: int,
    existing: Activation,
    t: Translator,
    callback_answer: CallbackAnswer,
    purchase_queue: PurchaseQueue | None = None,
) -> None:
    """The same button again (a double tap, or a tap on an old message): buy nothing."""
    if existing.state == "failed":
        callback_answer.text = t.plain("buy-failed")
        return
    if existing.state in ("purchasing", "unknown"):
        queued = None if purchase_queue is None else await purchase_queue.place_of(existing.id)
        if queued is not None:
            callback_answer.text = t.plain("queue-already-answer", place=queued.place)
        else:
            callback_answer.text = t.plain("buy-already-pending")
        return
    callback_answer.text = t.plain("buy-already")
    if existing.card_message_id is None:
        # The first tap bought but never showed the card (it crashed or was stopped).
        await send_card(bot, repo, chat_id, existing, t)


async def _insufficient(
    query: CallbackQuery,
    t: Translator,
    settings: Settings,
    country: str,
    price: int,
    balance: int,
) -> None:
    text = t(
        "buy-insufficient",
        price=format_usd(price),
        balance=format_usd(balance),
        howto=topup_howto(t, settings),
    )
    await send_to_chat_of(query, text, insufficient_keyboard(t, country))


async def _rejected(
    query: CallbackQuery,
    exc: PurchaseRejected,
    quote: Quote,
    catalogue: Catalogue,
    t: Translator,
    country: str,
) -> None:
    service = quote.service
    code = exc.upstream_code
    logger.info("purchase of %s rejected: %s", service.code, code)
    if isinstance(exc, UpstreamBalanceExhausted):
        await send_to_chat_of(query, t("buy-unavailable"), services_button_keyboard(t, country))
        return
    if code == "OUT_OF_STOCK":
        # Stock moved: look again, so the alternatives offered are ones that exist now.
        catalogue.invalidate(country)
        fresh = await catalogue.find(country, service.ref) or service
        if quote.provider_id is not None:
            text = t("buy-out-of-stock-pool", pool=quote.provider_id, name=fresh.name)
            keyboard = pools_keyboard(t, fresh, country=country, excluding=quote.provider_id)
        else:
            text = t("buy-out-of-stock", name=fresh.name)
            keyboard = retry_keyboard(t, country, fresh, None, fresh.price_units)
        await send_to_chat_of(query, text, keyboard)
        return
    if code == "PRICE_VERIFICATION_FAILED":
        catalogue.invalidate(country)
        await send_to_chat_of(
            query, t("buy-price-verification"), services_button_keyboard(t, country)
        )
        return
    retry = retry_keyboard(t, country, service, quote.provider_id, quote.price_units)
    if code == "RATE_LIMITED":
        seconds = round(exc.retry_after) if exc.retry_after else _RETRY_SECONDS_FALLBACK
        await send_to_chat_of(query, t("buy-rate-limited", seconds=max(1, seconds)), retry)
        return
    if code in ("PROVIDER_ERROR", "SERVER_ERROR", "CONCURRENT_ERROR", "UPSTREAM_UNREACHABLE"):
        await send_to_chat_of(query, t("buy-provider-error"), retry)
        return
    if not exc.retryable:
        await send_to_chat_of(query, t("buy-unavailable"), services_button_keyboard(t, country))
        return
    await send_to_chat_of(query, t("buy-failed"), retry)
