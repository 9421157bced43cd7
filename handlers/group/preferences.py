"""Where the number and code of a purchase made in a group go (`/settings`, a private chat):
to the buyer privately, or to the group."""

from __future__ import annotations

from aiogram import Router
from aiogram.filters import Command
from aiogram.types import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Message
from aiogram.utils.callback_answer import CallbackAnswer

from bot.telegram.callbacks import PrefCb
from bot.telegram.i18n import Translator
from bot.telegram.keyboards import button, markup
from bot.telegram.replies import edit_or_send
from storage.models import User
from storage.repo import Repo


def prefs_view(t: Translator, where: str) -> tuple[str, InlineKeyboardMarkup]:
    def choice(value: str, key: str) -> InlineKeyboardButton:
        mark = "✓ " if value == where else ""
        return button(mark + t.plain(key), PrefCb(group_codes=value))

    keyboard = markup(
        [[choice("private", "prefs-private-button")], [choice("group", "prefs-group-button")]]
    )
    return t("prefs-text"), keyboard


async def settings_command(message: Message, repo: Repo, user: User, t: Translator) -> None:
    text, keyboard = prefs_view(t, await repo.users.group_codes(user.id))
    await message.answer(text, reply_markup=keyboard)


async def set_pref(
    query: CallbackQuery,
    callback_data: PrefCb,
    repo: Repo,
    user: User,
    t: Translator,
    callback_answer: CallbackAnswer,
) -> None:
    where = (
        callback_data.group_codes
        if callback_data.group_codes in ("private", "group")
        else "private"
    )
    await repo.users.set_group_codes(user.id, where)
    callback_answer.text = t.plain("prefs-saved")
    text, keyboard = prefs_view(t, where)
    await edit_or_send(query, text, keyboard)


def build_router() -> Router:
    router = Router(name=__name__)
    router.message.register(settings_command, Command("settings"))
    router.callback_query.register(set_pref, PrefCb.filter())
    return router
