"""Finding a user (by id or @username) and their card; ban and unban."""

from __future__ import annotations

from aiogram import F, Router
from aiogram.filters import Command, CommandObject
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, Message

from bot.config import Settings
from bot.services import admin as admin_service
from bot.telegram.admin_views import back_home, card_view
from bot.telegram.callbacks import AdminAction, AdminCb
from bot.telegram.i18n import Translator
from bot.telegram.keyboards import markup
from bot.telegram.replies import edit_or_send
from bot.telegram.states import AdminStates
from storage.repo import Repo


async def find_prompt(query: CallbackQuery, state: FSMContext, t: Translator) -> None:
    await state.set_state(AdminStates.find_user)
    await edit_or_send(query, t("admin-find-prompt"), markup([back_home(t)]))


async def show_user(message: Message, t: Translator, repo: Repo, ref: str) -> None:
    try:
        user = await admin_service.find_user(repo, ref)
    except admin_service.UnknownUser:
        await message.answer(
            t("admin-user-unknown", ref=ref[:64]), reply_markup=markup([back_home(t)])
        )
        return
    text, keyboard = await card_view(t, repo, user.id)
    await message.answer(text, reply_markup=keyboard)


async def find_typed(message: Message, state: FSMContext, t: Translator, repo: Repo) -> None:
    await state.clear()
    await show_user(message, t, repo, message.text or "")


async def user_command(message: Message, command: CommandObject, t: Translator, repo: Repo) -> None:
    if not command.args:
        await message.answer(t("admin-user-usage"))
        return
    await show_user(message, t, repo, command.args)


async def user_button(
    query: CallbackQuery, callback_data: AdminCb, state: FSMContext, t: Translator, repo: Repo
) -> None:
    await state.clear()
    text, keyboard = await card_view(t, repo, callback_data.id)
    await edit_or_send(query, text, keyboard)


async def ban(t: Translator, repo: Repo, settings: Settings, user_id: int, banned: bool) -> str:
    try:
        changed = await admin_service.set_banned(repo, settings, user_id, banned)
    except admin_service.CannotBanAdmin:
        return t("admin-ban-admin")
    if banned:
        return t("admin-banned" if changed else "admin-already-banned")
    return t("admin-unbanned" if changed else "admin-already-unbanned")


async def ban_button(
    query: CallbackQuery,
    callback_data: AdminCb,
    t: Translator,
    repo: Repo,
    settings: Settings,
) -> None:
    note = await ban(t, repo, settings, callback_data.id, callback_data.action == AdminAction.BAN)
    text, keyboard = await card_view(t, repo, callback_data.id, note)
    await edit_or_send(query, text, keyboard)


async def ban_command(
    message: Message,
    command: CommandObject,
    t: Translator,
    repo: Repo,
    settings: Settings,
) -> None:
    if not command.args:
        await message.answer(t("admin-ban-usage"))
        return
    try:
        user = await admin_service.find_user(repo, command.args)
    except admin_service.UnknownUser:
        await message.answer(t("admin-user-unknown", ref=command.args[:64]))
        return
    note = await ban(t, repo, settings, user.id, command.command == "ban")
    text, keyboard = await card_view(t, repo, user.id, note)
    await message.answer(text, reply_markup=keyboard)


def build_router() -> Router:
    router = Router(name=__name__)
    router.callback_query.register(find_prompt, AdminCb.filter(F.action == AdminAction.FIND))
    router.message.register(find_typed, AdminStates.find_user, F.text & ~F.text.startswith("/"))
    router.message.register(user_command, Command("user"))
    router.callback_query.register(user_button, AdminCb.filter(F.action == AdminAction.USER))
    router.callback_query.register(
        ban_button, AdminCb.filter(F.action.in_({AdminAction.BAN, AdminAction.UNBAN}))
    )
    router.message.register(ban_command, Command("ban", "unban"))
    return router
