"""The ledger export: a CSV document of the ledger, all of it or `/export <days>`."""

from __future__ import annotations

import logging
import time

from aiogram import Bot, F, Router
from aiogram.exceptions import TelegramAPIError
from aiogram.filters import Command, CommandObject
from aiogram.types import BufferedInputFile, CallbackQuery, Message
from aiogram.utils.callback_answer import CallbackAnswer

from bot.services import admin as admin_service
from bot.telegram.callbacks import AdminAction, AdminCb
from bot.telegram.i18n import Translator
from storage.repo import Repo

logger = logging.getLogger(__name__)


async def send_export(bot: Bot, chat_id: int, t: Translator, repo: Repo, days: int | None) -> None:
    since = time.time() - days * 86_400 if days else None
    export = await admin_service.export_ledger(repo, since=since)
    caption = t("admin-export-caption", entries=export.entries, total=t.usd(export.total_units))
    try:
        await bot.send_document(
            chat_id,
            BufferedInputFile(export.data, filename=export.filename),
            caption=caption,
        )
    except TelegramAPIError as exc:
        logger.warning("ledger export could not be sent: %s", exc)
        await bot.send_message(chat_id, t("admin-export-failed"))


async def export_button(
    query: CallbackQuery, bot: Bot, t: Translator, repo: Repo, callback_answer: CallbackAnswer
) -> None:
    if query.message is None:
        return
    callback_answer.text = t.plain("admin-export-started")
    await send_export(bot, query.message.chat.id, t, repo, None)


async def export_command(
    message: Message, command: CommandObject, bot: Bot, t: Translator, repo: Repo
) -> None:
    args = (command.args or "").strip()
    days = int(args) if args.isdigit() and 0 < int(args) <= 3650 else None
    if args and days is None:
        await message.answer(t("admin-export-usage"))
        return
    await send_export(bot, message.chat.id, t, repo, days)


def build_router() -> Router:
    router = Router(name=__name__)
    router.callback_query.register(export_button, AdminCb.filter(F.action == AdminAction.EXPORT))
    router.message.register(export_command, Command("export"))
    return router
