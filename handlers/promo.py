"""Promo codes and invite links for users: the Balance screen's "🎁 Promo code" asks for a
code, a typed line that is one of our codes redeems it, and "👥 Invite friends" shows the
invite link, the friends who came through it and what they earned.

A typed line is only taken here when it IS a code in the database; anything else (a service
name) goes on to the search by typing, which must come after this router.
"""

from __future__ import annotations

from aiogram import Bot, F, Router
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, Message

from bot.services import promo as promo_service
from bot.services import referrals
from bot.telegram.callbacks import MenuAction, MenuCb
from bot.telegram.i18n import I18n, Translator
from bot.telegram.keyboards import button, markup, menu_row
from bot.telegram.outbox import OutboxSender
from bot.telegram.promo_views import bot_username, invite_view, redeem
from bot.telegram.replies import edit_or_send
from bot.telegram.states import UserStates
from storage.models import User, Wallet
from storage.repo import Repo


async def ask_code(query: CallbackQuery, state: FSMContext, t: Translator) -> None:
    await state.set_state(UserStates.promo_code)
    back = markup(
        [[button(t.plain("menu-balance"), MenuCb(action=MenuAction.BALANCE))], menu_row(t)]
    )
    await edit_or_send(query, t("promo-prompt"), back)


async def _redeem_typed(
    message: Message, repo: Repo, i18n: I18n, outbox: OutboxSender, user: User, wallet: Wallet
) -> None:
    # Telegram may deliver one message twice; its id makes it one redemption.
    refused = await redeem(
        repo=repo,
        i18n=i18n,
        outbox=outbox,
        user=user,
        wallet=wallet,
        code=" ".join((message.text or "").split()),
        key=f"promo:{message.chat.id}:{message.message_id}",
    )
    if refused is not None:
        await message.answer(refused)


async def code_asked(
    message: Message,
    state: FSMContext,
    repo: Repo,
    i18n: I18n,
    outbox: OutboxSender,
    user: User,
    wallet: Wallet,
) -> None:
    # One try per ask: a later line is a search again, not a code gone wrong.
    await state.clear()
    await _redeem_typed(message, repo, i18n, outbox, user, wallet)


async def is_promo_code(message: Message, repo: Repo) -> bool:
    return await promo_service.exists(repo, message.text or "")


async def code_typed(
    message: Message, repo: Repo, i18n: I18n, outbox: OutboxSender, user: User, wallet: Wallet
) -> None:
    await _redeem_typed(message, repo, i18n, outbox, user, wallet)


async def invite(query: CallbackQuery, bot: Bot, t: Translator, repo: Repo, user: User) -> None:
    info = await referrals.invite_info(repo, user.id)
    text, keyboard = invite_view(t, info, await bot_username(bot), user.id)
    await edit_or_send(query, text, keyboard)


def build_router() -> Router:
    router = Router(name=__name__)
    router.message.filter(F.chat.type == "private")
    router.callback_query.register(ask_code, MenuCb.filter(F.action == MenuAction.PROMO))
    router.callback_query.register(invite, MenuCb.filter(F.action == MenuAction.INVITE))
    text = F.text & ~F.text.startswith("/")
    router.message.register(code_asked, UserStates.promo_code, text)
    router.message.register(code_typed, text, is_promo_code)
    return router
