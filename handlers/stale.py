"""Catch-alls for what no feature router took: old or forged buttons, unknown commands."""

from __future__ import annotations

import logging

from aiogram import F, Router
from aiogram.types import CallbackQuery, Message
from aiogram.utils.callback_answer import CallbackAnswer

from bot.config import Settings
from bot.telegram.i18n import Translator
from bot.telegram.keyboards import main_menu
from bot.telegram.menu import menu_text
from storage.models import Wallet

logger = logging.getLogger(__name__)


async def stale_button(
    query: CallbackQuery,
    t: Translator,
    settings: Settings,
    wallet: Wallet,
    callback_answer: CallbackAnswer,
) -> None:
    # A button from an older layout (or forged data): explain, and offer a fresh menu.
    logger.info("stale or unknown callback data %r", query.data)
    callback_answer.text = t.plain("stale-answer")
    if query.message is not None:
        bot = query.bot
        assert bot is not None
        text = f"{t('stale-button')}\n\n{menu_text(t, settings, wallet)}"
        await bot.send_message(query.message.chat.id, text, reply_markup=main_menu(t))


async def anything_else(
    message: Message, t: Translator, settings: Settings, wallet: Wallet
) -> None:
    # An unknown /command, a sticker, a photo: the menu is the way forward.
    await message.answer(menu_text(t, settings, wallet), reply_markup=main_menu(t))


def build_router() -> Router:
    router = Router(name=__name__)
    router.callback_query.register(stale_button)
    router.message.register(anything_else, F.chat.type == "private")
    return router
