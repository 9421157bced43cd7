"""/start (with its invite and promo start links) and the main menu: Buy, My numbers, Balance,
Help, Language."""

from __future__ import annotations

import logging

from aiogram import Bot, F, Router
from aiogram.filters import Command, CommandObject, CommandStart
from aiogram.types import CallbackQuery, Message
from aiogram.utils.callback_answer import CallbackAnswer

from bot.config import Settings
from bot.services import promo as promo_service
from bot.services import referrals
from bot.telegram.callbacks import LangCb, MenuAction, MenuCb
from bot.telegram.commands import set_chat_commands
from bot.telegram.i18n import I18n, Translator
from bot.telegram.keyboards import back_to_menu, language_keyboard, main_menu
from bot.telegram.menu import help_text, menu_text
from bot.telegram.outbox import OutboxSender
from bot.telegram.promo_views import redeem
from bot.telegram.replies import edit_or_send
from storage.models import User, Wallet
from storage.repo import Repo

logger = logging.getLogger(__name__)


def _is_admin(settings: Settings, user_id: int | None) -> bool:
    return user_id is not None and user_id in settings.admin_ids


async def start(
    message: Message,
    bot: Bot,
    command: CommandObject,
    t: Translator,
    settings: Settings,
    wallet: Wallet,
    user: User,
    repo: Repo,
    i18n: I18n,
    outbox: OutboxSender,
    user_created: bool = False,
) -> None:
    """The menu; a start link's payload first: `ref_<id>` ties a new user to who invited
    them, `promo_<code>` redeems a code (its receipt follows the menu)."""
    payload = (command.args or "").strip()
    if payload.startswith(referrals.REF_PREFIX):
        outcome = await referrals.tie(
            repo, referee_id=user.id, payload=payload, new_user=user_created
        )
        logger.info("start link %s for user %d: %s", payload[:24], user.id, outcome)
    await message.answer(menu_text(t, settings, wallet), reply_markup=main_menu(t))
    if payload.startswith(promo_service.PROMO_PREFIX):
        code = promo_service.code_from_payload(payload) or payload.removeprefix("promo_")
        refused = await redeem(
            repo=repo,
            i18n=i18n,
            outbox=outbox,
            user=user,
            wallet=wallet,
            code=code,
            # Telegram may deliver one /start twice; its message id makes it one redemption.
            key=f"start:{message.chat.id}:{message.message_id}",
        )
        if refused is not None:
            await message.answer(refused)
    if _is_admin(settings, message.chat.id):
        # An admin who had not started the bot when it did had no chat to set a menu for.
        await set_chat_commands(bot, message.chat.id, t, admin=True)


async def help_command(message: Message, t: Translator, settings: Settings) -> None:
    admin = _is_admin(settings, message.from_user.id if message.from_user else None)
    await message.answer(help_text(t, settings, admin=admin), reply_markup=back_to_menu(t))


async def menu(query: CallbackQuery, t: Translator, settings: Settings, wallet: Wallet) -> None:
    await edit_or_send(query, menu_text(t, settings, wallet), main_menu(t))


async def help_button(query: CallbackQuery, t: Translator, settings: Settings) -> None:
    admin = _is_admin(settings, query.from_user.id)
    await edit_or_send(query, help_text(t, settings, admin=admin), back_to_menu(t))


async def language_menu(query: CallbackQuery, t: Translator) -> None:
    await edit_or_send(query, t("language-text"), language_keyboard(t))


async def set_language(
    query: CallbackQuery,
    bot: Bot,
    callback_data: LangCb,
    user: User,
    wallet: Wallet,
    repo: Repo,
    i18n: I18n,
    settings: Settings,
    callback_answer: CallbackAnswer,
) -> None:
    if callback_data.lang not in i18n.languages:
        callback_data = LangCb(lang=i18n.translator(None).lang)
    await repo.users.set_language(user.id, callback_data.lang)
    t = i18n.translator(callback_data.lang)
    callback_answer.text = t.plain("language-set")
    await edit_or_send(query, menu_text(t, settings, wallet), main_menu(t))
    # The command menu follows: Telegram would go on showing the client language's list.
    await set_chat_commands(bot, user.id, t, admin=_is_admin(settings, user.id))


def build_router() -> Router:
    router = Router(name=__name__)
    router.message.filter(F.chat.type == "private")
    router.message.register(start, CommandStart())
    router.message.register(help_command, Command("help"))
    router.callback_query.register(menu, MenuCb.filter(F.action == MenuAction.MAIN))
    router.callback_query.register(help_button, MenuCb.filter(F.action == MenuAction.HELP))
    router.callback_query.register(language_menu, MenuCb.filter(F.action == MenuAction.LANGUAGE))
    router.callback_query.register(set_language, LangCb.filter())
    return router
