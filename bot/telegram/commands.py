"""The command menus Telegram shows beside the message field, per audience and language.

Telegram picks the most specific list it has for a chat: a list for that very chat
(`BotCommandScopeChat`) over the default one for the user's client language. So everyone gets
the user commands in their client's language; an admin of the bot and a user who chose a
language other than their client's get a list of their own chat, in the language they chose
(the admins' list adds their tools, so that /admin is found without reading a manual).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from aiogram import Bot
from aiogram.exceptions import TelegramAPIError
from aiogram.types import BotCommand, BotCommandScopeChat

from bot.telegram.i18n import LANGUAGES, I18n, Translator, language_for
from storage.repo import Repo

logger = logging.getLogger(__name__)

# /paysupport and /terms: Telegram asks every seller of Stars to have them.
USER_COMMANDS = ("start", "buy", "numbers", "balance", "help", "settings", "paysupport", "terms")
ADMIN_COMMANDS = (
    "admin",
    "user",
    "topup",
    "refund",
    "ban",
    "unban",
    "markup",
    "stats",
    "export",
    "broadcast",
    "promo",
)


def command_list(t: Translator, *, admin: bool = False) -> list[BotCommand]:
    names: Iterable[str] = USER_COMMANDS + ADMIN_COMMANDS if admin else USER_COMMANDS
    return [BotCommand(command=name, description=t.plain(f"cmd-{name}")) for name in names]


async def set_default_commands(bot: Bot, i18n: I18n) -> None:
    for lang in LANGUAGES:
        commands = command_list(i18n.translator(lang))
        # English is also the default for every language without its own list.
        try:
            await bot.set_my_commands(commands, language_code=None if lang == "en" else lang)
        except TelegramAPIError as exc:
            # A missing command menu is cosmetic; it must not keep the bot from starting.
            logger.warning("setMyCommands (%s) failed: %s", lang, exc)


async def set_chat_commands(bot: Bot, chat_id: int, t: Translator, *, admin: bool) -> None:
    """This private chat's own menu, in `t`'s language (the admins' with their tools)."""
    try:
        await bot.set_my_commands(
            command_list(t, admin=admin), scope=BotCommandScopeChat(chat_id=chat_id)
        )
    except TelegramAPIError as exc:
        # Cosmetic, as above; e.g. an admin who never started the bot has no chat yet.
        logger.info("setMyCommands for chat %d failed: %s", chat_id, exc)


async def set_admin_commands(bot: Bot, i18n: I18n, repo: Repo, admin_ids: Iterable[int]) -> None:
    """Each admin's menu, in the language they chose (English until they start the bot)."""
    for admin_id in sorted(admin_ids):
        stored = await repo.users.get(admin_id)
        lang = stored.language if stored and stored.language else language_for(None)
        await set_chat_commands(bot, admin_id, i18n.translator(lang), admin=True)
