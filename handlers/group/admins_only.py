"""The answer to a member who is not a group admin and taps or sends what only group admins
may: the admin router before this one did not let them in."""

from __future__ import annotations

from collections.abc import Iterable

from aiogram import F, Router
from aiogram.filters import Command
from aiogram.types import CallbackQuery, Message
from aiogram.utils.callback_answer import CallbackAnswer

from bot.telegram.callbacks import GroupAction, GroupCb
from bot.telegram.i18n import Translator
from bot.telegram.replies import pressed_message


async def admins_only_button(
    query: CallbackQuery, t: Translator, callback_answer: CallbackAnswer
) -> None:
    if pressed_message(query) is None:
        return  # nothing to answer on
    callback_answer.text = t.plain("group-admins-only")
    callback_answer.show_alert = True


async def admins_only_command(message: Message, t: Translator) -> None:
    await message.reply(t("group-admins-only"))


def build_router(commands: Iterable[str], actions: Iterable[GroupAction]) -> Router:
    router = Router(name=__name__)
    router.callback_query.register(admins_only_button, GroupCb.filter(F.action.in_(set(actions))))
    router.message.register(admins_only_command, Command(*commands))
    return router
