"""Promo codes for the admins: `/promo` lists the codes with their uses, `/promo add CODE
AMOUNT [uses=N] [days=N] [repeat]` creates one, `/promo batch N AMOUNT [days=N]` creates N
one-use codes and sends them as a CSV document; the panel's "🎁 Promo codes" does the same
with buttons and a typed line."""

from __future__ import annotations

import logging
import time

from aiogram import Bot, F, Router
from aiogram.exceptions import TelegramAPIError
from aiogram.filters import Command, CommandObject
from aiogram.fsm.context import FSMContext
from aiogram.types import BufferedInputFile, CallbackQuery, InlineKeyboardMarkup, Message

from bot.services import promo as promo_service
from bot.services.promo import BadPromoSpec
from bot.telegram.callbacks import AdminAction, AdminCb
from bot.telegram.i18n import Translator
from bot.telegram.keyboards import button, markup
from bot.telegram.promo_views import bot_username, codes_text, created_text, spec_problem
from bot.telegram.replies import edit_or_send
from bot.telegram.states import AdminStates
from storage.models import User
from storage.repo import Repo

logger = logging.getLogger(__name__)
LISTED = 20


def promo_keyboard(t: Translator) -> InlineKeyboardMarkup:
    return markup(
        [
            [
                button(t.plain("admin-promo-new-button"), AdminCb(action=AdminAction.PROMO_NEW)),
                button(
                    t.plain("admin-promo-batch-button"), AdminCb(action=AdminAction.PROMO_BATCH)
                ),
            ],
            [button(t.plain("admin-home-button"), AdminCb(action=AdminAction.HOME))],
        ]
    )


async def _codes(t: Translator, repo: Repo) -> str:
    return codes_text(t, await repo.promo.listing(limit=LISTED), time.time())


async def create(bot: Bot, t: Translator, repo: Repo, user: User, text: str) -> str:
    try:
        spec = promo_service.parse_spec(text)
        code = await promo_service.create_code(repo, spec, admin_id=user.id)
    except BadPromoSpec as exc:
        return spec_problem(t, exc)
    return created_text(t, code, await bot_username(bot), time.time())


async def batch(bot: Bot, chat_id: int, t: Translator, repo: Repo, user: User, text: str) -> None:
    try:
        count, units, days = promo_service.parse_batch(text)
    except BadPromoSpec as exc:
        await bot.send_message(chat_id, spec_problem(t, exc))
        return
    made = await promo_service.create_batch(
        repo,
        count=count,
        amount_units=units,
        days=days,
        admin_id=user.id,
        bot_username=await bot_username(bot),
    )
    expiry = made.codes[0]
    caption = t(
        "admin-promo-batch-caption",
        count=len(made.codes),
        amount=t.usd(units),
        expiry=t.plain("admin-promo-never")
        if expiry.expires_at is None
        else t.plain("admin-promo-until", date=t.when(expiry.expires_at)),
    )
    try:
        await bot.send_document(
            chat_id, BufferedInputFile(made.data, filename=made.filename), caption=caption
        )
    except TelegramAPIError as exc:
        logger.warning("promo codes file could not be sent: %s", exc)
        await bot.send_message(chat_id, t("admin-promo-batch-failed"))


async def promo_command(
    message: Message, command: CommandObject, bot: Bot, t: Translator, repo: Repo, user: User
) -> None:
    verb, _, rest = (command.args or "").strip().partition(" ")
    if verb.lower() == "add":
        await message.answer(await create(bot, t, repo, user, rest))
    elif verb.lower() == "batch":
        await batch(bot, message.chat.id, t, repo, user, rest)
    elif not verb:
        await message.answer(await _codes(t, repo), reply_markup=promo_keyboard(t))
    else:
        await message.answer(t("admin-promo-usage"))


async def promo_screen(query: CallbackQuery, state: FSMContext, t: Translator, repo: Repo) -> None:
    await state.clear()
    await edit_or_send(query, await _codes(t, repo), promo_keyboard(t))


async def ask_spec(query: CallbackQuery, state: FSMContext, t: Translator) -> None:
    await state.set_state(AdminStates.promo_spec)
    back = markup([[button(t.plain("admin-back-button"), AdminCb(action=AdminAction.PROMO))]])
    await edit_or_send(query, t("admin-promo-new-prompt"), back)


async def ask_batch(query: CallbackQuery, state: FSMContext, t: Translator) -> None:
    await state.set_state(AdminStates.promo_batch)
    back = markup([[button(t.plain("admin-back-button"), AdminCb(action=AdminAction.PROMO))]])
    await edit_or_send(query, t("admin-promo-batch-prompt"), back)


async def spec_typed(
    message: Message, state: FSMContext, bot: Bot, t: Translator, repo: Repo, user: User
) -> None:
    await state.clear()
    await message.answer(
        await create(bot, t, repo, user, message.text or ""), reply_markup=promo_keyboard(t)
    )


async def batch_typed(
    message: Message, state: FSMContext, bot: Bot, t: Translator, repo: Repo, user: User
) -> None:
    await state.clear()
    await batch(bot, message.chat.id, t, repo, user, message.text or "")


def build_router() -> Router:
    router = Router(name=__name__)
    router.message.register(promo_command, Command("promo"))
    router.callback_query.register(promo_screen, AdminCb.filter(F.action == AdminAction.PROMO))
    router.callback_query.register(ask_spec, AdminCb.filter(F.action == AdminAction.PROMO_NEW))
    router.callback_query.register(ask_batch, AdminCb.filter(F.action == AdminAction.PROMO_BATCH))
    text = F.text & ~F.text.startswith("/")
    router.message.register(spec_typed, AdminStates.promo_spec, text)
    router.message.register(batch_typed, AdminStates.promo_batch, text)
    return router
