"""What a buy tap shows: its start (through the purchase queue or straight), a repeated tap,
a balance too low, a rejection with its next step, and where a group purchase's card goes.

The buy steps themselves stay in their handlers (handlers.purchase, handlers.group.buy);
these are the parts of the screen they share or that a buy service can reuse as they are.
"""

from __future__ import annotations

import logging

from aiogram import Bot
from aiogram.exceptions import TelegramAPIError, TelegramBadRequest, TelegramForbiddenError
from aiogram.types import CallbackQuery, Message
from aiogram.utils.callback_answer import CallbackAnswer

from bot.config import Settings
from bot.daisysim import DaisySimClient
from bot.money import format_usd
from bot.services.catalogue import Catalogue, Quote, Service
from bot.services.errors import PurchaseRejected, UpstreamBalanceExhausted
from bot.services.purchase import PurchaseRequest, purchase
from bot.services.purchase_queue import PurchaseQueue, Queued
from bot.telegram.cards import send_card, show_place
from bot.telegram.i18n import Translator
from bot.telegram.keyboards import (
    insufficient_keyboard,
    pools_keyboard,
    retry_keyboard,
    services_button_keyboard,
)
from bot.telegram.queue_notify import QueueNotifier
from bot.telegram.replies import send_to_chat_of
from storage.db import Database
from storage.models import Activation, User
from storage.repo import Repo

logger = logging.getLogger(__name__)

_RETRY_SECONDS_FALLBACK = 10


def topup_howto(t: Translator, settings: Settings) -> str:
    return t("balance-topup-sandbox" if settings.sandbox_mode else "balance-topup-admin")


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


async def answer_repeated_tap(
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


async def show_insufficient(
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


async def show_rejected(
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


async def show_rejected_in_group(
    message: Message,
    exc: PurchaseRejected,
    service: Service,
    provider_id: str | None,
    country: str,
    t: Translator,
    catalogue: Catalogue,
) -> None:
    code = exc.upstream_code
    if code == "OUT_OF_STOCK":
        catalogue.invalidate(country)
        fresh = await catalogue.find(country, service.ref) or service
        if provider_id is not None:
            await message.answer(
                t("buy-out-of-stock-pool", pool=provider_id, name=fresh.name),
                reply_markup=pools_keyboard(t, fresh, country=country, excluding=provider_id),
            )
        else:
            await message.answer(
                t("buy-out-of-stock", name=fresh.name),
                reply_markup=retry_keyboard(t, country, fresh, None, fresh.price_units),
            )
        return
    if code == "PRICE_VERIFICATION_FAILED":
        catalogue.invalidate(country)
        await message.answer(t("buy-price-verification"))
        return
    if isinstance(exc, UpstreamBalanceExhausted) or not exc.retryable:
        await message.answer(t("buy-unavailable"))
        return
    await message.answer(
        t("buy-failed"),
        reply_markup=retry_keyboard(t, country, service, provider_id, service.price_units),
    )


async def deliver_in_group(
    bot: Bot,
    repo: Repo,
    group_id: int,
    result: Activation | Queued,
    user: User,
    t: Translator,
    queue: PurchaseQueue | None = None,
    notifier: QueueNotifier | None = None,
) -> None:
    """The card of a group purchase (or its place in line, which becomes the card) goes to
    the buyer privately when they want it so and can be written to (they started the bot),
    otherwise to the group. The code follows the card (the poller sends it where it is)."""

    async def show(chat_id: int) -> None:
        if isinstance(result, Queued):
            assert queue is not None
            await show_place(bot, queue, notifier, chat_id, result, t)
        else:
            await send_card(bot, repo, chat_id, result, t)

    activation = result.activation if isinstance(result, Queued) else result
    if await repo.users.group_codes(user.id) == "private":
        try:
            await show(user.id)
        except (TelegramForbiddenError, TelegramBadRequest) as exc:
            logger.info("user %d cannot get the card privately: %s", user.id, exc.message)
        else:
            key = "group-queued-private" if isinstance(result, Queued) else "group-bought-private"
            await bot.send_message(
                group_id, t(key, name=user.first_name, service=activation.service_name)
            )
            return
        await bot.send_message(group_id, t("group-start-hint", name=user.first_name))
    await show(group_id)
