"""Broadcasts: a text (typed, or after `/broadcast`) shown as a preview with its recipient
count, then queued on the outbox once confirmed, or cancelled."""

from __future__ import annotations

import logging

from aiogram import F, Router
from aiogram.exceptions import TelegramBadRequest
from aiogram.filters import Command, CommandObject
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, Message
from aiogram.utils.callback_answer import CallbackAnswer

from bot.services import admin as admin_service
from bot.telegram.admin_views import back_home
from bot.telegram.callbacks import AdminAction, AdminCb
from bot.telegram.i18n import Translator
from bot.telegram.keyboards import button, markup
from bot.telegram.notifier import TelegramNotifier
from bot.telegram.replies import edit_or_send
from bot.telegram.states import AdminStates
from storage.repo import Repo

logger = logging.getLogger(__name__)


async def broadcast_prompt(query: CallbackQuery, state: FSMContext, t: Translator) -> None:
    await state.set_state(AdminStates.broadcast_text)
    await edit_or_send(query, t("admin-broadcast-prompt"), markup([back_home(t)]))


async def preview(message: Message, t: Translator, repo: Repo, html_text: str) -> None:
    try:
        draft = await admin_service.draft_broadcast(repo, message.chat.id, html_text)
    except admin_service.BroadcastTooLong:
        await message.answer(t("admin-broadcast-too-long"))
        return
    recipients = len(await admin_service.broadcast_recipients(repo, message.chat.id))
    await message.answer(t("admin-broadcast-preview", count=recipients))
    keyboard = markup(
        [
            [
                button(
                    t.plain("admin-broadcast-send-button", count=recipients),
                    AdminCb(action=AdminAction.BROADCAST_SEND, id=draft.id),
                )
            ],
            [
                button(
                    t.plain("admin-broadcast-cancel-button"),
                    AdminCb(action=AdminAction.BROADCAST_CANCEL, id=draft.id),
                )
            ],
        ]
    )
    try:
        await message.answer(draft.text, reply_markup=keyboard)
    except TelegramBadRequest as exc:
        # Telegram could not render it (e.g. an entity it refuses): nobody else could
        # either, so it is never sent.
        logger.info("broadcast %d preview refused: %s", draft.id, exc.message)
        await repo.broadcasts.cancel(draft.id)
        await message.answer(t("admin-broadcast-bad", reason=exc.message))


async def broadcast_typed(message: Message, state: FSMContext, t: Translator, repo: Repo) -> None:
    await state.clear()
    await preview(message, t, repo, message.html_text)


async def broadcast_command(
    message: Message, command: CommandObject, state: FSMContext, t: Translator, repo: Repo
) -> None:
    if not command.args:
        await state.set_state(AdminStates.broadcast_text)
        await message.answer(t("admin-broadcast-prompt"), reply_markup=markup([back_home(t)]))
        return
    # The text after the command, with its formatting (html_text covers the command too).
    html = message.html_text
    head = f"/{command.command}"
    if command.mention:
        head += f"@{command.mention}"
    await preview(message, t, repo, html.removeprefix(head).strip())


async def broadcast_send(
    query: CallbackQuery,
    callback_data: AdminCb,
    repo: Repo,
    t: Translator,
    callback_answer: CallbackAnswer,
    notifier: TelegramNotifier,
) -> None:
    result = await admin_service.confirm_broadcast(repo, callback_data.id, notifier)
    message = query.message
    if result is None:
        callback_answer.text = t.plain("admin-broadcast-gone")
        return
    if not result.confirmed_now:
        callback_answer.text = t.plain("admin-broadcast-already")
        return
    # An alert, not a message: this chat has just had several messages, and the outbox
    # must find room in it for other admins' alerts.
    callback_answer.text = t.plain("admin-broadcast-queued", count=result.queued)
    callback_answer.show_alert = True
    if isinstance(message, Message):
        try:
            await message.edit_reply_markup(reply_markup=markup([back_home(t)]))
        except TelegramBadRequest as exc:
            logger.info("could not clear the broadcast buttons: %s", exc.message)


async def broadcast_cancel(
    query: CallbackQuery,
    callback_data: AdminCb,
    repo: Repo,
    t: Translator,
    callback_answer: CallbackAnswer,
) -> None:
    cancelled = await repo.broadcasts.cancel(callback_data.id)
    callback_answer.text = t.plain(
        "admin-broadcast-cancelled" if cancelled else "admin-broadcast-already"
    )
    message = query.message
    if cancelled and isinstance(message, Message):
        try:
            await message.edit_reply_markup(reply_markup=None)
        except TelegramBadRequest as exc:
            logger.info("could not clear the broadcast buttons: %s", exc.message)


def build_router() -> Router:
    router = Router(name=__name__)
    router.callback_query.register(
        broadcast_prompt, AdminCb.filter(F.action == AdminAction.BROADCAST)
    )
    router.message.register(
        broadcast_typed, AdminStates.broadcast_text, F.text & ~F.text.startswith("/")
    )
    router.message.register(broadcast_command, Command("broadcast"))
    router.callback_query.register(
        broadcast_send, AdminCb.filter(F.action == AdminAction.BROADCAST_SEND)
    )
    router.callback_query.register(
        broadcast_cancel, AdminCb.filter(F.action == AdminAction.BROADCAST_CANCEL)
    )
    return router
