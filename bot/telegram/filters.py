"""Scoping filters, set on a router (`router.message.filter(...)`), so every handler under it
is reached only by those the router is for."""

from __future__ import annotations

import logging

from aiogram import Bot
from aiogram.exceptions import TelegramAPIError
from aiogram.filters import Filter
from aiogram.types import CallbackQuery, Message, TelegramObject
from aiogram.types import User as TgUser

from bot.config import Settings
from bot.services import admin as admin_service

logger = logging.getLogger(__name__)

ADMIN_STATUSES = frozenset({"creator", "administrator"})


class IsAdmin(Filter):
    """The update comes from one of ADMIN_IDS."""

    async def __call__(
        self, event: TelegramObject, settings: Settings, event_from_user: TgUser | None = None
    ) -> bool:
        return admin_service.is_admin(settings, event_from_user.id if event_from_user else None)


async def is_group_admin(bot: Bot, chat_id: int, user_id: int) -> bool:
    """Whether Telegram says the user is an admin of the group, asked every time: a demoted
    admin must lose the group's money at once, and one getChatMember per tap is cheap."""
    try:
        member = await bot.get_chat_member(chat_id, user_id)
    except TelegramAPIError as exc:
        # Fail closed: without Telegram's word nobody moves the group's money.
        logger.warning("getChatMember(%d, %d) failed: %s", chat_id, user_id, exc)
        return False
    return member.status in ADMIN_STATUSES


class IsGroupAdmin(Filter):
    """The sender is an admin of the group the message, or the pressed button, is in.

    A button on a message the bot can no longer see (InaccessibleMessage) does not pass:
    there is nothing to answer on.
    """

    async def __call__(
        self, event: TelegramObject, bot: Bot, event_from_user: TgUser | None = None
    ) -> bool:
        if event_from_user is None:
            return False
        if isinstance(event, CallbackQuery):
            message = event.message
            if not isinstance(message, Message):
                return False
            return await is_group_admin(bot, message.chat.id, event_from_user.id)
        if isinstance(event, Message):
            return await is_group_admin(bot, event.chat.id, event_from_user.id)
        return False
