"""The per-member daily spending limit (group admins only): the presets or `/limit <amount>`,
`/limit off` for none."""

from __future__ import annotations

from aiogram import F, Router
from aiogram.filters import Command, CommandObject
from aiogram.types import CallbackQuery, Message
from aiogram.utils.callback_answer import CallbackAnswer

from bot.money import UNITS_PER_USD
from bot.services import groups as group_service
from bot.services.topup import BadAmount
from bot.telegram.callbacks import GroupAction, GroupCb
from bot.telegram.group_views import (
    back_row,
    command_amount,
    group_context,
    limit_text,
    show_panel,
)
from bot.telegram.i18n import Translator
from bot.telegram.keyboards import button, markup
from bot.telegram.replies import edit_or_send, pressed_message
from storage.db import Database
from storage.models import User
from storage.repo import Repo

LIMIT_PRESETS_USD = (1, 2, 5, 10, 25)


async def limit_choices(query: CallbackQuery, t: Translator) -> None:
    presets = [
        button(
            t.usd(usd * UNITS_PER_USD),
            GroupCb(action=GroupAction.LIMIT_SET, units=usd * UNITS_PER_USD),
        )
        for usd in LIMIT_PRESETS_USD
    ]
    rows = [presets[:3], presets[3:]]
    none = GroupCb(action=GroupAction.LIMIT_SET, units=-1)
    rows.append([button(t.plain("group-limit-none-button"), none)])
    rows.append(back_row(t))
    await edit_or_send(query, t("group-limit-text"), markup(rows))


async def set_limit(
    db: Database, repo: Repo, message: Message, units: int | None, t: Translator
) -> str:
    await group_context(repo, message)
    chat = await group_service.set_member_limit(repo, message.chat.id, units)
    return t("group-limit-set", limit=limit_text(t, chat.member_daily_limit_units))


async def limit_button(
    query: CallbackQuery,
    callback_data: GroupCb,
    db: Database,
    repo: Repo,
    user: User,
    t: Translator,
    callback_answer: CallbackAnswer,
) -> None:
    message = pressed_message(query)
    if message is None:
        return
    units = None if callback_data.units < 0 else callback_data.units
    try:
        note = await set_limit(db, repo, message, units, t)
    except (BadAmount, ValueError):
        callback_answer.text = t.plain("stale-answer")
        return
    await show_panel(query, db, repo, message, user, t, note)


async def limit_command(
    message: Message,
    command: CommandObject,
    db: Database,
    repo: Repo,
    t: Translator,
) -> None:
    args = (command.args or "").strip().lower()
    if not args:
        chat, _ = await group_context(repo, message)
        await message.reply(
            t("group-limit-usage", limit=limit_text(t, chat.member_daily_limit_units))
        )
        return
    units: int | None
    if args in ("off", "none", "no", "нет", "выкл"):
        units = None
    elif args in ("0", "$0"):
        units = 0
    else:
        units = await command_amount(message, args, t)
        if units is None:
            return
    await message.reply(await set_limit(db, repo, message, units, t))


def build_router() -> Router:
    router = Router(name=__name__)
    router.callback_query.register(limit_choices, GroupCb.filter(F.action == GroupAction.LIMIT))
    router.callback_query.register(limit_button, GroupCb.filter(F.action == GroupAction.LIMIT_SET))
    router.message.register(limit_command, Command("limit"))
    return router
