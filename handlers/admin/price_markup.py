"""The price markup: shown with where it comes from (stored or the environment), set by a
typed value or `/markup <value>`, and reset to the environment's."""

from __future__ import annotations

from aiogram import F, Router
from aiogram.filters import Command, CommandObject
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message

from bot.config import Settings
from bot.services import admin as admin_service
from bot.telegram.admin_views import back_home
from bot.telegram.callbacks import AdminAction, AdminCb
from bot.telegram.i18n import Translator
from bot.telegram.keyboards import Rows, button, markup
from bot.telegram.replies import edit_or_send
from bot.telegram.states import AdminStates
from storage.db import Database
from storage.repo import Repo


def markup_text(t: Translator, current: admin_service.MarkupSetting) -> str:
    setting = current.markup
    return t(
        "admin-markup-text",
        percent=str(setting.percent),
        fixed=t.usd(setting.fixed_units),
        source=t.plain("admin-markup-stored" if current.stored else "admin-markup-env"),
        example=t.usd(setting.apply(10_000)),
    )


def markup_keyboard(t: Translator, stored: bool) -> InlineKeyboardMarkup:
    rows: Rows = []
    if stored:
        reset = AdminCb(action=AdminAction.MARKUP_RESET)
        rows.append([button(t.plain("admin-markup-reset-button"), reset)])
    rows.append(back_home(t))
    return markup(rows)


async def markup_button(
    query: CallbackQuery, state: FSMContext, t: Translator, repo: Repo, settings: Settings
) -> None:
    current = await admin_service.current_markup(repo, settings)
    await state.set_state(AdminStates.markup_value)
    await edit_or_send(query, markup_text(t, current), markup_keyboard(t, current.stored))


async def set_markup(
    message: Message, t: Translator, db: Database, repo: Repo, settings: Settings, text: str
) -> bool:
    try:
        setting = admin_service.parse_markup(text)
    except admin_service.BadMarkup:
        await message.answer(t("admin-markup-bad", text=text[:32]))
        return False
    await admin_service.store_markup(repo, setting)
    current = await admin_service.current_markup(repo, settings)
    await message.answer(
        f"{t('admin-markup-saved')}\n\n{markup_text(t, current)}",
        reply_markup=markup_keyboard(t, current.stored),
    )
    return True


async def markup_typed(
    message: Message,
    state: FSMContext,
    t: Translator,
    db: Database,
    repo: Repo,
    settings: Settings,
) -> None:
    if await set_markup(message, t, db, repo, settings, message.text or ""):
        await state.clear()


async def markup_command(
    message: Message,
    command: CommandObject,
    t: Translator,
    db: Database,
    repo: Repo,
    settings: Settings,
) -> None:
    args = (command.args or "").strip()
    if args.lower() == "reset":
        await admin_service.reset_markup(repo)
        args = ""
    if args:
        await set_markup(message, t, db, repo, settings, args)
        return
    current = await admin_service.current_markup(repo, settings)
    await message.answer(markup_text(t, current), reply_markup=markup_keyboard(t, current.stored))


async def markup_reset(
    query: CallbackQuery, t: Translator, db: Database, repo: Repo, settings: Settings
) -> None:
    await admin_service.reset_markup(repo)
    current = await admin_service.current_markup(repo, settings)
    await edit_or_send(
        query,
        f"{t('admin-markup-saved')}\n\n{markup_text(t, current)}",
        markup_keyboard(t, current.stored),
    )


def build_router() -> Router:
    router = Router(name=__name__)
    router.callback_query.register(markup_button, AdminCb.filter(F.action == AdminAction.MARKUP))
    router.message.register(
        markup_typed, AdminStates.markup_value, F.text & ~F.text.startswith("/")
    )
    router.message.register(markup_command, Command("markup"))
    router.callback_query.register(
        markup_reset, AdminCb.filter(F.action == AdminAction.MARKUP_RESET)
    )
    return router
