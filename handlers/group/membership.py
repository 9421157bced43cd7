"""The bot in groups: added (the group's wallet opens, the group is greeted), removed, a group
that became a supergroup (its money moves along), and the command menu groups see. Also a
private chat blocked or unblocked, which Telegram reports the same way."""

from __future__ import annotations

import logging

from aiogram import Bot, F, Router
from aiogram.exceptions import TelegramAPIError
from aiogram.types import (
    BotCommand,
    BotCommandScopeAllChatAdministrators,
    BotCommandScopeAllGroupChats,
    ChatMemberUpdated,
    Message,
)

from bot.services import groups as group_service
from bot.telegram.i18n import LANGUAGES, I18n, language_for
from storage.db import Database
from storage.repo import Repo

logger = logging.getLogger(__name__)

GROUP_TYPES = frozenset({"group", "supergroup"})
PRESENT_STATUSES = frozenset({"creator", "administrator", "member", "restricted"})
# Members get the commands they may use; admins' menu (Telegram shows the admin scope to chat
# administrators instead of the all-group one) adds the admin-only ones.
GROUP_COMMANDS = ("buy", "wallet", "help")
GROUP_ADMIN_COMMANDS = ("buy", "wallet", "fund", "limit", "spending", "help")


async def set_group_commands(bot: Bot, i18n: I18n) -> None:
    for lang in LANGUAGES:
        t = i18n.translator(lang)
        for names, scope in (
            (GROUP_COMMANDS, BotCommandScopeAllGroupChats()),
            (GROUP_ADMIN_COMMANDS, BotCommandScopeAllChatAdministrators()),
        ):
            commands = [
                BotCommand(command=name, description=t.plain(f"group-cmd-{name}")) for name in names
            ]
            try:
                await bot.set_my_commands(
                    commands, scope=scope, language_code=None if lang == "en" else lang
                )
            except TelegramAPIError as exc:
                logger.warning("setMyCommands for groups (%s) failed: %s", lang, exc)


async def membership(
    event: ChatMemberUpdated, bot: Bot, db: Database, repo: Repo, i18n: I18n
) -> None:
    status = event.new_chat_member.status
    was = event.old_chat_member.status
    if event.chat.type == "private":
        # A user blocked (kicked) or unblocked the bot: broadcasts skip blocked users.
        await repo.users.set_inactive(event.chat.id, status == "kicked")
        return
    if event.chat.type not in GROUP_TYPES:
        return
    if status in PRESENT_STATUSES and was not in PRESENT_STATUSES:
        _, wallet, _ = await group_service.ensure_group(
            repo, event.chat.id, chat_type=event.chat.type, title=event.chat.title
        )
        stored = await repo.users.get(event.from_user.id)
        lang = stored.language if stored else language_for(event.from_user.language_code)
        t = i18n.translator(lang)
        try:
            await bot.send_message(event.chat.id, t("group-welcome"))
        except TelegramAPIError as exc:
            logger.info("cannot greet group %d: %s", event.chat.id, exc)
        logger.info("added to group %d (wallet %d)", event.chat.id, wallet.id)
    elif status not in PRESENT_STATUSES:
        logger.info("removed from group %d (%s)", event.chat.id, status)


async def migrated(message: Message, repo: Repo) -> None:
    # A group that became a supergroup gets a new id: its money and limit move along.
    new_id = message.migrate_to_chat_id
    assert new_id is not None
    moved = await group_service.migrate_group(
        repo, message.chat.id, new_id, title=message.chat.title
    )
    logger.info("group %d became %d; %d units moved", message.chat.id, new_id, moved)


def build_router() -> Router:
    router = Router(name=__name__)
    router.startup.register(set_group_commands)
    router.my_chat_member.register(membership)
    router.message.register(migrated, F.chat.type.in_(GROUP_TYPES), F.migrate_to_chat_id)
    return router
