"""Buying in a group: `/buy` and the service list (paid by the group wallet, within the
member's daily limit), the pool picker, and the buy button itself.

The buy button goes through the one buy path (`bot.telegram.buy_flow`), like a private chat's.
"""

from __future__ import annotations

from aiogram import F, Router
from aiogram.filters import Command
from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message
from aiogram.utils.callback_answer import CallbackAnswer

from bot.services import groups as group_service
from bot.services.catalogue import Catalogue, page_of
from bot.telegram.buy_flow import BuyFlow
from bot.telegram.callbacks import BuyCb, ServiceAction, ServiceCb, ServicesCb
from bot.telegram.group_views import group_context
from bot.telegram.i18n import Translator
from bot.telegram.keyboards import group_services_keyboard, pools_keyboard
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
        balance=t.usd(current.balance),
        left=(t.plain("group-no-limit") if today.remaining is None else t.usd(today.remaining)),
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
    chat, wallet = await group_context(repo, message)
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
    chat, wallet = await group_context(repo, query.message)
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
    repo: Repo,
    buy_flow: BuyFlow,
    user: User,
    t: Translator,
    callback_answer: CallbackAnswer,
) -> None:
    if not isinstance(query.message, Message):
        return
    chat, wallet = await group_context(repo, query.message)
    # The group's wallet pays, within the member's daily limit (the one buy path).
    await buy_flow.tap(
        query,
        callback_data,
        user=user,
        wallet=wallet,
        group=chat,
        t=t,
        callback_answer=callback_answer,
    )


def build_router() -> Router:
    router = Router(name=__name__)
    router.message.register(buy_command, Command("buy"))
    router.callback_query.register(services_page, ServicesCb.filter())
    router.callback_query.register(open_service, ServiceCb.filter(F.action == ServiceAction.OPEN))
    router.callback_query.register(buy, BuyCb.filter())
    return router
