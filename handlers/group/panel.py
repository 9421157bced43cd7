"""Help in a group, and the group wallet's panel (`/wallet`), which any member may open."""

from __future__ import annotations

from aiogram import F, Router
from aiogram.filters import Command
from aiogram.types import CallbackQuery, Message

from bot.telegram.callbacks import GroupAction, GroupCb
from bot.telegram.group_views import group_context, panel_view, show_panel
from bot.telegram.i18n import Translator
from storage.db import Database
from storage.models import User
from storage.repo import Repo


async def group_help(message: Message, t: Translator) -> None:
    await message.answer(t("group-help"))


async def wallet_command(
    message: Message, db: Database, repo: Repo, t: Translator, user: User
) -> None:
    chat, wallet = await group_context(repo, message)
    text, keyboard = await panel_view(t, repo, chat, wallet, user)
    await message.answer(text, reply_markup=keyboard)


async def panel(query: CallbackQuery, db: Database, repo: Repo, t: Translator, user: User) -> None:
    if not isinstance(query.message, Message):
        return
    await show_panel(query, db, repo, query.message, user, t)


def build_router() -> Router:
    router = Router(name=__name__)
    router.message.register(group_help, Command("start", "help"))
    router.message.register(wallet_command, Command("wallet", "group"))
    router.callback_query.register(panel, GroupCb.filter(F.action == GroupAction.PANEL))
    return router
