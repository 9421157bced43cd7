"""Funding the group wallet (group admins only): from the admin's own wallet (the buttons or
`/fund <amount>`), or with a Stars or Crypto Pay invoice in the group that whoever pays
credits the group."""

from __future__ import annotations

from aiogram import Bot, F, Router
from aiogram.filters import Command, CommandObject
from aiogram.types import CallbackQuery, Message
from aiogram.utils.callback_answer import CallbackAnswer

from bot.config import Settings
from bot.services import groups as group_service
from bot.services.cryptopay import CryptoTopups, CryptoUnavailable
from bot.services.cryptopay import preset_units as crypto_presets
from bot.services.errors import InsufficientFunds
from bot.services.maintenance import Maintenance
from bot.services.topup import stars_for
from bot.telegram.callbacks import GroupAction, GroupCb, new_nonce
from bot.telegram.crypto import send_pay_message
from bot.telegram.group_views import back_row, command_amount, group_context, show_panel
from bot.telegram.i18n import Translator
from bot.telegram.keyboards import button, markup
from bot.telegram.maintenance import topups_paused
from bot.telegram.replies import edit_or_send, pressed_message
from bot.telegram.stars import preset_units, send_stars_invoice
from storage.db import Database
from storage.models import User, Wallet
from storage.repo import Repo


async def fund_amounts(
    query: CallbackQuery, wallet: Wallet, t: Translator, callback_answer: CallbackAnswer
) -> None:
    amounts = [
        button(
            t.usd(units),
            GroupCb(action=GroupAction.FUND_AMOUNT, units=units, nonce=new_nonce()),
        )
        for units in preset_units()
    ]
    # The presser's own balance is theirs to see, not the group's: in the answer only.
    callback_answer.text = t.plain("group-your-balance", balance=t.usd(wallet.balance))
    await edit_or_send(query, t("group-fund-text"), markup([amounts[:2], amounts[2:], back_row(t)]))


async def fund(
    db: Database,
    repo: Repo,
    message: Message,
    user: User,
    units: int,
    key: str,
    t: Translator,
    maintenance: Maintenance,
) -> str:
    notice = await topups_paused(maintenance, t)
    if notice is not None:
        return notice
    chat, _ = await group_context(repo, message)
    try:
        result = await group_service.fund_group(
            repo, chat_id=chat.id, from_user_id=user.id, amount_units=units, key=key
        )
    except InsufficientFunds as exc:
        return t("group-fund-insufficient", amount=t.usd(units), balance=t.usd(exc.balance))
    if result.duplicate:
        return t("group-fund-duplicate")
    return t(
        "group-funded",
        name=user.first_name,
        amount=t.usd(units),
        balance=t.usd(result.counterparty.balance if result.counterparty else 0),
    )


async def fund_button(
    query: CallbackQuery,
    callback_data: GroupCb,
    db: Database,
    repo: Repo,
    user: User,
    t: Translator,
    callback_answer: CallbackAnswer,
    maintenance: Maintenance,
) -> None:
    message = pressed_message(query)
    if message is None:
        return
    if callback_data.units not in preset_units() or not callback_data.nonce:
        callback_answer.text = t.plain("stale-answer")
        return
    key = f"{user.id}:{callback_data.nonce}"
    note = await fund(db, repo, message, user, callback_data.units, key, t, maintenance)
    await show_panel(query, db, repo, message, user, t, note)


async def fund_command(
    message: Message,
    command: CommandObject,
    db: Database,
    repo: Repo,
    user: User,
    t: Translator,
    maintenance: Maintenance,
) -> None:
    if not command.args:
        await message.reply(t("group-fund-usage"))
        return
    units = await command_amount(message, command.args, t)
    if units is None:
        return
    # One command, one transfer, even if Telegram delivers it twice.
    key = f"cmd:{message.chat.id}:{message.message_id}"
    await message.reply(await fund(db, repo, message, user, units, key, t, maintenance))


async def stars_amounts(
    query: CallbackQuery, t: Translator, settings: Settings, crypto: CryptoTopups | None
) -> None:
    rows = [
        [
            button(
                t.plain(
                    "topup-amount-button",
                    price=t.usd(units),
                    stars=stars_for(units, settings.stars_per_usd),
                ),
                GroupCb(action=GroupAction.STARS_AMOUNT, units=units),
            )
        ]
        for units in preset_units()
    ]
    if crypto is not None:
        # Crypto Pay funds a group the same way: an invoice in the group that anyone pays.
        rows.append([button(t.plain("crypto-button"), GroupCb(action=GroupAction.CRYPTO))])
    await edit_or_send(query, t("group-stars-text"), markup([*rows, back_row(t)]))


async def crypto_amounts(query: CallbackQuery, t: Translator, crypto: CryptoTopups | None) -> None:
    if crypto is None:
        await edit_or_send(query, t("crypto-off"), markup([back_row(t)]))
        return
    amounts = [
        button(t.usd(units), GroupCb(action=GroupAction.CRYPTO_AMOUNT, units=units))
        for units in crypto_presets()
    ]
    await edit_or_send(
        query,
        t("group-crypto-text", assets=", ".join(crypto.assets)),
        markup([amounts[:2], amounts[2:], back_row(t)]),
    )


async def crypto_invoice(
    query: CallbackQuery,
    callback_data: GroupCb,
    repo: Repo,
    user: User,
    t: Translator,
    callback_answer: CallbackAnswer,
    maintenance: Maintenance,
    crypto: CryptoTopups | None,
) -> None:
    message = pressed_message(query)
    if message is None or crypto is None:
        return
    if callback_data.units not in crypto_presets():
        callback_answer.text = t.plain("stale-answer")
        return
    notice = await topups_paused(maintenance, t)
    if notice is not None:
        await message.answer(notice)
        return
    # The group's wallet, from the chat the button is in; never from the data.
    _, wallet = await group_context(repo, message)
    units = callback_data.units
    try:
        invoice = await crypto.create_invoice(
            wallet_id=wallet.id,
            user_id=user.id,
            chat_id=message.chat.id,
            units=units,
            description=t.plain("group-crypto-description", price=t.usd(units)),
        )
    except CryptoUnavailable:
        await message.answer(t("crypto-unavailable"))
        return
    await send_pay_message(message, t, crypto, invoice, in_group=True)


async def stars_invoice(
    query: CallbackQuery,
    callback_data: GroupCb,
    bot: Bot,
    db: Database,
    repo: Repo,
    t: Translator,
    settings: Settings,
    callback_answer: CallbackAnswer,
    maintenance: Maintenance,
) -> None:
    message = pressed_message(query)
    if message is None:
        return
    if callback_data.units not in preset_units():
        callback_answer.text = t.plain("stale-answer")
        return
    notice = await topups_paused(maintenance, t)
    if notice is not None:
        await message.answer(notice)
        return
    _, wallet = await group_context(repo, message)
    await send_stars_invoice(
        bot, message.chat.id, wallet, callback_data.units, t, settings, for_group=True
    )


def build_router() -> Router:
    router = Router(name=__name__)
    router.callback_query.register(fund_amounts, GroupCb.filter(F.action == GroupAction.FUND))
    router.callback_query.register(fund_button, GroupCb.filter(F.action == GroupAction.FUND_AMOUNT))
    router.message.register(fund_command, Command("fund"))
    router.callback_query.register(stars_amounts, GroupCb.filter(F.action == GroupAction.STARS))
    router.callback_query.register(
        stars_invoice, GroupCb.filter(F.action == GroupAction.STARS_AMOUNT)
    )
    router.callback_query.register(crypto_amounts, GroupCb.filter(F.action == GroupAction.CRYPTO))
    router.callback_query.register(
        crypto_invoice, GroupCb.filter(F.action == GroupAction.CRYPTO_AMOUNT)
    )
    return router
