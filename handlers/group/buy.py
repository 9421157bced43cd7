"""Buying in a group: `/buy` and the service list (paid by the group wallet, within the
member's daily limit), the pool picker, and the buy button itself.

The buy step (`buy`) is moved here as it was; a shared buy service is to replace it.
"""

from __future__ import annotations

from aiogram import Bot, F, Router
from aiogram.filters import Command
from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message
from aiogram.utils.callback_answer import CallbackAnswer

from bot.config import Settings
from bot.daisysim import DaisySimClient
from bot.money import format_usd
from bot.services import groups as group_service
from bot.services.catalogue import Catalogue, page_of
from bot.services.errors import (
    DailyLimitExceeded,
    InsufficientFunds,
    PurchasePending,
    PurchaseRejected,
    UpstreamBalanceExhausted,
)
from bot.services.purchase import PurchaseRequest
from bot.services.purchase_queue import PurchaseQueue, QueueFull
from bot.telegram.admin_alerts import alert_upstream_exhausted
from bot.telegram.callbacks import BuyCb, ServiceAction, ServiceCb, ServicesCb
from bot.telegram.group_views import group_context
from bot.telegram.i18n import I18n, Translator
from bot.telegram.keyboards import confirm_price_keyboard, group_services_keyboard, pools_keyboard
from bot.telegram.middlewares import KeyedLocks
from bot.telegram.outbox import OutboxSender
from bot.telegram.purchase_views import (
    deliver_in_group,
    show_rejected_in_group,
    start_purchase,
)
from bot.telegram.queue_notify import QueueNotifier
from bot.telegram.replies import edit_or_send
from storage.db import Database
from storage.models import Chat, User, Wallet
from storage.repo import Repo


async def services_view(
    t: Translator,
    repo: Repo,
    catalogue: Catalogue,
    chat: Chat,
    wallet: Wallet,
    user: User,
    country: str,
    page: int,
) -> tuple[str, InlineKeyboardMarkup]:
    services = await catalogue.services(country)
    shown, page, pages = page_of(services, page)
    today = await group_service.member_today(repo, chat, wallet, user.id)
    current = await repo.wallets.get(wallet.id) or wallet
    text = t(
        "group-services",
        balance=format_usd(current.balance),
        left=(
            t.plain("group-no-limit") if today.remaining is None else format_usd(today.remaining)
        ),
    )
    if pages > 1:
        text += "\n" + t("services-page", page=page + 1, pages=pages)
    return text, group_services_keyboard(t, shown, country=country, page=page, pages=pages)


async def buy_command(
    message: Message,
    db: Database,
    repo: Repo,
    catalogue: Catalogue,
    user: User,
    t: Translator,
) -> None:
    chat, wallet = await group_context(db, repo, message)
    country = await catalogue.default_country()
    text, keyboard = await services_view(t, repo, catalogue, chat, wallet, user, country, 0)
    await message.answer(text, reply_markup=keyboard)


async def services_page(
    query: CallbackQuery,
    callback_data: ServicesCb,
    db: Database,
    repo: Repo,
    catalogue: Catalogue,
    user: User,
    t: Translator,
) -> None:
    if not isinstance(query.message, Message):
        return
    chat, wallet = await group_context(db, repo, query.message)
    text, keyboard = await services_view(
        t, repo, catalogue, chat, wallet, user, callback_data.country, callback_data.page
    )
    await edit_or_send(query, text, keyboard)


async def open_service(
    query: CallbackQuery, callback_data: ServiceCb, t: Translator, catalogue: Catalogue
) -> None:
    service = await catalogue.find(callback_data.country, callback_data.ref)
    if service is None:
        await edit_or_send(query, t("buy-gone", name=callback_data.ref))
        return
    key = "pools-text" if service.available else "pools-none"
    await edit_or_send(
        query,
        t(key, name=service.name),
        pools_keyboard(t, service, country=callback_data.country, page=callback_data.page),
    )


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
    i18n: I18n,
    user: User,
    t: Translator,
    callback_answer: CallbackAnswer,
    outbox: OutboxSender | None = None,
    purchase_queue: PurchaseQueue | None = None,
    queue_notifier: QueueNotifier | None = None,
) -> None:
    message = query.message
    if not isinstance(message, Message):
        return
    chat, wallet = await group_context(db, repo, message)
    key = f"{user.id}:{callback_data.nonce}"
    async with buy_locks.hold(key):
        existing = await repo.activations.get_by_key(key)
        if existing is not None:
            queued = (
                await purchase_queue.place_of(existing.id) if purchase_queue is not None else None
            )
            if queued is not None:
                callback_answer.text = t.plain("queue-already-answer", place=queued.place)
            elif existing.state in ("purchasing", "unknown"):
                callback_answer.text = t.plain("buy-already-pending")
            else:
                callback_answer.text = t.plain(
                    "buy-failed" if existing.state == "failed" else "buy-already"
                )
            return
        country = callback_data.country
        pool = callback_data.pool or None
        quote = await catalogue.quote(country, callback_data.ref, pool)
        if quote is None:
            await message.answer(t("buy-gone", name=callback_data.ref))
            return
        if quote.price_units != callback_data.price:
            await message.answer(
                t(
                    "buy-price-changed",
                    name=quote.service.name,
                    price=format_usd(quote.price_units),
                    old=format_usd(callback_data.price),
                ),
                reply_markup=confirm_price_keyboard(
                    t, country, quote.service, pool, quote.price_units
                ),
            )
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
            chat_id=chat.id,
            # Checked by the purchase service in the transaction that holds the money.
            member_daily_limit=chat.member_daily_limit_units,
        )
        try:
            # The group's members wait in the same fair line as everyone else.
            result = await start_purchase(
                query, request, t, callback_answer, db, daisysim, settings, purchase_queue
            )
        except QueueFull as exc:
            await message.answer(t("queue-full", limit=exc.limit))
            return
        except InsufficientFunds as exc:
            await message.answer(
                t(
                    "group-insufficient",
                    name=user.first_name,
                    price=format_usd(exc.needed),
                    balance=format_usd(exc.balance),
                )
            )
            return
        except DailyLimitExceeded as exc:
            await message.answer(
                t(
                    "group-limit-reached",
                    name=user.first_name,
                    limit=format_usd(exc.limit),
                    spent=format_usd(exc.spent),
                    price=format_usd(exc.needed),
                )
            )
            return
        except PurchaseRejected as exc:
            if isinstance(exc, UpstreamBalanceExhausted):
                await alert_upstream_exhausted(db, settings, i18n, outbox)
            await show_rejected_in_group(
                message, exc, quote.service, quote.provider_id, country, t, catalogue
            )
            return
        except PurchasePending as exc:
            await message.answer(t("buy-pending", name=quote.service.name))
            await deliver_in_group(bot, repo, chat.id, exc.activation, user, t)
            return
        await deliver_in_group(bot, repo, chat.id, result, user, t, purchase_queue, queue_notifier)


def build_router() -> Router:
    router = Router(name=__name__)
    router.message.register(buy_command, Command("buy"))
    router.callback_query.register(services_page, ServicesCb.filter())
    router.callback_query.register(open_service, ServiceCb.filter(F.action == ServiceAction.OPEN))
    router.callback_query.register(buy, BuyCb.filter())
    return router
