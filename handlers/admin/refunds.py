"""A user's Stars payments and their refund: `/refund <payment>` or the payments screen,
confirmed, refunded at Telegram and taken back from the wallet."""

from __future__ import annotations

from typing import Any

from aiogram import Bot, F, Router
from aiogram.exceptions import TelegramBadRequest
from aiogram.filters import Command, CommandObject
from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message

from bot.services.errors import InsufficientFunds
from bot.services.topup import (
    AlreadyRefundedUpstream,
    PaymentNotFound,
    RefundPending,
    RefundRefused,
    TelegramRefund,
    find_payment,
    refund_stars_payment,
)
from bot.telegram.admin_views import back_home, back_to_user
from bot.telegram.callbacks import AdminAction, AdminCb
from bot.telegram.i18n import I18n, Translator
from bot.telegram.keyboards import button, markup
from bot.telegram.notices import payment_notice
from bot.telegram.outbox import OutboxSender, message_payload
from bot.telegram.replies import edit_or_send
from storage.db import Database
from storage.models import Payment, User, Wallet
from storage.repo import Repo

PAYMENTS_SHOWN = 8


def payment_line(t: Translator, payment: Payment) -> str:
    return t(
        "admin-payment-line",
        id=payment.id,
        date=t.when(payment.created_at),
        stars=payment.stars,
        amount=t.usd(payment.amount_units),
        status=t.plain(f"admin-payment-{payment.status}"),
    )


def telegram_refunder(bot: Bot) -> TelegramRefund:
    async def refund(payment: Payment) -> None:
        try:
            await bot.refund_star_payment(payment.user_id, payment.telegram_payment_charge_id)
        except TelegramBadRequest as exc:
            if "CHARGE_ALREADY_REFUNDED" in exc.message:
                raise AlreadyRefundedUpstream from exc
            raise RefundRefused(exc.message) from exc

    return refund


async def payments_view(
    t: Translator, repo: Repo, user_id: int, note: str | None = None
) -> tuple[str, InlineKeyboardMarkup]:
    payments = await repo.payments.list_for_user(user_id, limit=PAYMENTS_SHOWN)
    body = "\n".join(payment_line(t, p) for p in payments) if payments else t("admin-payments-none")
    text = f"{t('admin-payments-title', id=user_id)}\n{body}"
    if note:
        text = f"{note}\n\n{text}"
    rows = [
        [
            button(
                t.plain("admin-refund-button", id=p.id, stars=p.stars),
                AdminCb(action=AdminAction.REFUND, id=p.id),
            )
        ]
        for p in payments
        if p.status == "paid"
    ]
    rows.append([back_to_user(t, user_id)])
    return text, markup(rows)


def refund_confirm(t: Translator, payment: Payment) -> tuple[str, InlineKeyboardMarkup]:
    text = t(
        "admin-refund-confirm",
        id=payment.id,
        stars=payment.stars,
        amount=t.usd(payment.amount_units),
        user=payment.user_id,
    )
    ok = button(
        t.plain("admin-refund-ok-button"), AdminCb(action=AdminAction.REFUND_OK, id=payment.id)
    )
    back = button(
        t.plain("admin-back-button"), AdminCb(action=AdminAction.PAYMENTS, id=payment.user_id)
    )
    return text, markup([[ok], [back]])


async def payments_button(
    query: CallbackQuery, callback_data: AdminCb, t: Translator, repo: Repo
) -> None:
    text, keyboard = await payments_view(t, repo, callback_data.id)
    await edit_or_send(query, text, keyboard)


async def refund_button(
    query: CallbackQuery, callback_data: AdminCb, t: Translator, repo: Repo
) -> None:
    payment = await repo.payments.get(callback_data.id)
    if payment is None:
        await edit_or_send(query, t("admin-payment-unknown"), markup([back_home(t)]))
        return
    text, keyboard = refund_confirm(t, payment)
    await edit_or_send(query, text, keyboard)


async def refund_command(
    message: Message, command: CommandObject, t: Translator, repo: Repo
) -> None:
    payment = await find_payment(repo, command.args or "") if command.args else None
    if payment is None:
        await message.answer(t("admin-refund-usage"))
        return
    text, keyboard = refund_confirm(t, payment)
    await message.answer(text, reply_markup=keyboard)


async def do_refund(
    bot: Bot,
    repo: Repo,
    i18n: I18n,
    t: Translator,
    payment_id: int,
    admin: User,
    outbox: OutboxSender,
) -> str:
    payment = await repo.payments.get(payment_id)
    if payment is None:
        return t("admin-payment-unknown")
    payer = await repo.users.get(payment.user_id)
    pt = i18n.translator(payer.language if payer else None)
    wallet = await repo.wallets.get(payment.wallet_id)
    in_group = wallet is not None and wallet.owner_kind == "group"
    chat_id = wallet.owner_id if wallet is not None and in_group else payment.user_id

    def render(after: Wallet, done: Payment) -> dict[str, Any]:
        text = pt(
            "topup-refunded",
            stars=done.stars,
            amount=t.usd(done.amount_units),
            balance=t.usd(after.balance),
        )
        return message_payload(text)

    try:
        result = await refund_stars_payment(
            repo,
            payment_id,
            actor_id=admin.id,
            telegram_refund=telegram_refunder(bot),
            notice=payment_notice(repo, chat_id, render, dedupe="stars-refund"),
        )
    except PaymentNotFound:
        return t("admin-payment-unknown")
    except InsufficientFunds as exc:
        return t(
            "admin-refund-no-funds",
            amount=t.usd(exc.needed),
            balance=t.usd(exc.balance),
        )
    except RefundRefused as exc:
        return t("admin-refund-refused", reason=exc.message)
    except RefundPending:
        return t("admin-refund-pending")
    outbox.wake()
    if result.outcome == "already":
        return t("admin-refund-already", id=payment_id)
    return t(
        "admin-refund-done",
        id=payment_id,
        stars=result.payment.stars,
        amount=t.usd(result.payment.amount_units),
        balance=t.usd(result.wallet.balance),
    )


async def refund_ok(
    query: CallbackQuery,
    callback_data: AdminCb,
    bot: Bot,
    db: Database,
    repo: Repo,
    i18n: I18n,
    t: Translator,
    user: User,
    outbox: OutboxSender,
) -> None:
    note = await do_refund(bot, repo, i18n, t, callback_data.id, user, outbox)
    payment = await repo.payments.get(callback_data.id)
    if payment is None:
        await edit_or_send(query, note, markup([back_home(t)]))
        return
    text, keyboard = await payments_view(t, repo, payment.user_id, note)
    await edit_or_send(query, text, keyboard)


def build_router() -> Router:
    router = Router(name=__name__)
    router.callback_query.register(
        payments_button, AdminCb.filter(F.action == AdminAction.PAYMENTS)
    )
    router.callback_query.register(refund_button, AdminCb.filter(F.action == AdminAction.REFUND))
    router.message.register(refund_command, Command("refund"))
    router.callback_query.register(refund_ok, AdminCb.filter(F.action == AdminAction.REFUND_OK))
    return router
