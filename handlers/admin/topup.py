"""Crediting a user's wallet by hand: `/topup <user> <amount>`, or the amounts (or a typed
one) from their card, each confirmed by a button that credits once."""

from __future__ import annotations

from typing import Any

from aiogram import F, Router
from aiogram.filters import Command, CommandObject
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message
from aiogram.utils.callback_answer import CallbackAnswer

from bot.services import admin as admin_service
from bot.services.money import Movement, NoticeHook
from bot.services.topup import BadAmount, admin_topup, parse_amount
from bot.telegram.admin_views import amount_problem, back_to_user, card_view
from bot.telegram.callbacks import AdminAction, AdminCb, new_nonce
from bot.telegram.i18n import I18n, Translator
from bot.telegram.keyboards import button, markup
from bot.telegram.notices import movement_notice
from bot.telegram.outbox import OutboxSender, message_payload
from bot.telegram.replies import edit_or_send
from bot.telegram.stars import preset_units
from bot.telegram.states import AdminStates
from storage.db import Database
from storage.models import User
from storage.repo import Repo


def topup_amounts_keyboard(t: Translator, user_id: int) -> InlineKeyboardMarkup:
    amounts = [
        button(t.usd(units), AdminCb(action=AdminAction.TOPUP_AMOUNT, id=user_id, units=units))
        for units in preset_units()
    ]
    other = AdminCb(action=AdminAction.TOPUP_OTHER, id=user_id)
    return markup(
        [
            amounts[:2],
            amounts[2:],
            [button(t.plain("admin-topup-other-button"), other)],
            [back_to_user(t, user_id)],
        ]
    )


def topup_confirm(t: Translator, user: User, units: int) -> tuple[str, InlineKeyboardMarkup]:
    text = t("admin-topup-confirm", name=user.first_name, id=user.id, amount=t.usd(units))
    # The nonce makes this one button credit once, however often it is tapped.
    ok = button(
        t.plain("admin-confirm-button", amount=t.usd(units)),
        AdminCb(action=AdminAction.TOPUP_AMOUNT, id=user.id, units=units, nonce=new_nonce()),
    )
    return text, markup([[ok], [back_to_user(t, user.id)]])


def _topup_notice(repo: Repo, i18n: I18n, user: User, units: int) -> NoticeHook:
    t = i18n.translator(user.language)

    def render(moved: Movement) -> dict[str, Any]:
        balance = t.usd(moved.wallet.balance)
        return message_payload(t("topup-admin-notice", amount=t.usd(units), balance=balance))

    return movement_notice(repo, user.id, render, dedupe="topup")


async def do_topup(
    repo: Repo,
    i18n: I18n,
    t: Translator,
    user: User,
    units: int,
    admin: User,
    key: str,
    outbox: OutboxSender,
) -> str:
    wallet = await repo.wallets.get_by_owner("user", user.id)
    if wallet is None:
        return t("admin-user-no-wallet", id=user.id)
    try:
        result = await admin_topup(
            repo,
            wallet_id=wallet.id,
            amount_units=units,
            admin_id=admin.id,
            key=key,
            notice=_topup_notice(repo, i18n, user, units),
        )
    except BadAmount as exc:
        return amount_problem(t, exc)
    if result.duplicate:
        return t("admin-topup-duplicate")
    outbox.wake()
    return t(
        "admin-topup-done",
        name=user.first_name,
        amount=t.usd(units),
        balance=t.usd(result.wallet.balance),
    )


async def topup_command(
    message: Message,
    command: CommandObject,
    db: Database,
    repo: Repo,
    i18n: I18n,
    t: Translator,
    user: User,
    outbox: OutboxSender,
) -> None:
    parts = (command.args or "").split()
    if len(parts) != 2:
        await message.answer(t("admin-topup-usage"))
        return
    ref, amount_text = parts
    try:
        units = parse_amount(amount_text)
    except BadAmount as exc:
        await message.answer(amount_problem(t, exc))
        return
    try:
        target = await admin_service.find_user(repo, ref)
    except admin_service.UnknownUser:
        await message.answer(t("admin-user-unknown", ref=ref[:64]))
        return
    # Telegram may deliver one command twice; its message id makes it one top-up.
    key = f"cmd:{message.chat.id}:{message.message_id}"
    await message.answer(await do_topup(repo, i18n, t, target, units, user, key, outbox))


async def topup_amounts(
    query: CallbackQuery, callback_data: AdminCb, t: Translator, repo: Repo
) -> None:
    target = await repo.users.get(callback_data.id)
    if target is None:
        await edit_or_send(query, t("admin-user-unknown", ref=str(callback_data.id)))
        return
    await edit_or_send(
        query,
        t("admin-topup-choose", name=target.first_name, id=target.id),
        topup_amounts_keyboard(t, target.id),
    )


async def topup_other(
    query: CallbackQuery, callback_data: AdminCb, state: FSMContext, t: Translator
) -> None:
    await state.set_state(AdminStates.topup_amount)
    await state.update_data(user_id=callback_data.id)
    await edit_or_send(
        query, t("admin-topup-prompt"), markup([[back_to_user(t, callback_data.id)]])
    )


async def topup_typed(message: Message, state: FSMContext, t: Translator, repo: Repo) -> None:
    data = await state.get_data()
    target = await repo.users.get(int(data.get("user_id", 0)))
    if target is None:
        await state.clear()
        await message.answer(t("admin-user-unknown", ref=str(data.get("user_id"))))
        return
    try:
        units = parse_amount(message.text or "")
    except BadAmount as exc:
        # Stay in the state: the next line is another try.
        await message.answer(amount_problem(t, exc))
        return
    await state.clear()
    text, keyboard = topup_confirm(t, target, units)
    await message.answer(text, reply_markup=keyboard)


async def topup_amount(
    query: CallbackQuery,
    callback_data: AdminCb,
    db: Database,
    repo: Repo,
    i18n: I18n,
    t: Translator,
    user: User,
    callback_answer: CallbackAnswer,
    outbox: OutboxSender,
) -> None:
    target = await repo.users.get(callback_data.id)
    if target is None:
        await edit_or_send(query, t("admin-user-unknown", ref=str(callback_data.id)))
        return
    units = callback_data.units
    if not callback_data.nonce:
        text, keyboard = topup_confirm(t, target, units)
        await edit_or_send(query, text, keyboard)
        return
    key = f"btn:{user.id}:{callback_data.nonce}"
    note = await do_topup(repo, i18n, t, target, units, user, key, outbox)
    callback_answer.text = t.plain("admin-done")
    text, keyboard = await card_view(t, repo, target.id, note)
    await edit_or_send(query, text, keyboard)


def build_router() -> Router:
    router = Router(name=__name__)
    router.message.register(topup_command, Command("topup"))
    router.callback_query.register(topup_amounts, AdminCb.filter(F.action == AdminAction.TOPUP))
    router.callback_query.register(topup_other, AdminCb.filter(F.action == AdminAction.TOPUP_OTHER))
    router.message.register(topup_typed, AdminStates.topup_amount, F.text & ~F.text.startswith("/"))
    router.callback_query.register(
        topup_amount, AdminCb.filter(F.action == AdminAction.TOPUP_AMOUNT)
    )
    return router
