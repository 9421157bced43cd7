"""Topping up with Telegram Stars: the amounts, the invoice, the pre-checkout check and the
successful payment; /paysupport and /terms, which Telegram asks every Stars seller to have.

The same invoice machinery serves a group wallet (handlers.group.funding sends the invoice); the
pre-checkout and payment handlers do not care whose wallet the invoice names.
"""

from __future__ import annotations

import logging
from typing import Any

from aiogram import Bot, F, Router
from aiogram.filters import Command
from aiogram.fsm.context import FSMContext
from aiogram.types import (
    CallbackQuery,
    InlineKeyboardMarkup,
    Message,
    PreCheckoutQuery,
)
from aiogram.utils.callback_answer import CallbackAnswer

from bot.config import Settings
from bot.services import admin as admin_service
from bot.services.cryptopay import CryptoTopups
from bot.services.maintenance import Maintenance
from bot.services.notify import UncreditedPayment
from bot.services.topup import (
    BuyIntent,
    PaymentNotCredited,
    check_pre_checkout,
    new_invoice,
    parse_payload,
    record_stars_payment,
    shortfall_invoice,
)
from bot.telegram.buy_flow import BuyFlow
from bot.telegram.callbacks import CryptoCb, MenuAction, MenuCb, TopupBuyCb, TopupCb
from bot.telegram.i18n import I18n, Translator, language_for
from bot.telegram.keyboards import button, markup
from bot.telegram.maintenance import precheckout_refusal, topups_paused
from bot.telegram.menu import support_contact
from bot.telegram.notices import payment_notice
from bot.telegram.notifier import TelegramNotifier
from bot.telegram.outbox import message_payload
from bot.telegram.replies import edit_or_send
from bot.telegram.stars import preset_units, send_shortfall_invoice, send_stars_invoice
from storage.db import Database
from storage.models import Payment, User, Wallet
from storage.repo import Repo

logger = logging.getLogger(__name__)


def topup_keyboard(
    t: Translator, settings: Settings, crypto: CryptoTopups | None = None
) -> InlineKeyboardMarkup:
    rows = [
        [
            button(
                t.plain(
                    "topup-amount-button",
                    price=t.usd(units),
                    stars=new_invoice(0, units, settings.stars_per_usd).stars,
                ),
                TopupCb(units=units),
            )
        ]
        for units in preset_units()
    ]
    if crypto is not None:
        rows.append([button(t.plain("crypto-button"), CryptoCb(units=0))])
    rows.append([button(t.plain("menu-balance"), MenuCb(action=MenuAction.BALANCE))])
    return markup(rows)


def back_to_balance(t: Translator) -> InlineKeyboardMarkup:
    return markup([[button(t.plain("menu-balance"), MenuCb(action=MenuAction.BALANCE))]])


async def topup_screen(
    query: CallbackQuery,
    state: FSMContext,
    t: Translator,
    settings: Settings,
    maintenance: Maintenance,
    crypto: CryptoTopups | None,
) -> None:
    # Back from the Crypto screen: a line typed now is not an amount any more.
    await state.clear()
    notice = await topups_paused(maintenance, t)
    if notice is not None:
        await edit_or_send(query, notice, back_to_balance(t))
        return
    text = t("topup-text", rate=settings.stars_per_usd)
    if crypto is not None:
        text = f"{text}\n\n{t('topup-crypto-line')}"
    await edit_or_send(query, text, topup_keyboard(t, settings, crypto))


async def topup_amount(
    query: CallbackQuery,
    callback_data: TopupCb,
    bot: Bot,
    t: Translator,
    settings: Settings,
    wallet: Wallet,
    maintenance: Maintenance,
) -> None:
    if query.message is None:
        return
    notice = await topups_paused(maintenance, t)
    if notice is not None:
        # An amount button from before maintenance began: no invoice now.
        await edit_or_send(query, notice, back_to_balance(t))
        return
    if callback_data.units not in preset_units():
        # Forged data: only the amounts the screen offers are sold.
        await edit_or_send(
            query, t("topup-text", rate=settings.stars_per_usd), topup_keyboard(t, settings)
        )
        return
    # Always the presser's own wallet: callback data never names a wallet.
    await send_stars_invoice(bot, query.message.chat.id, wallet, callback_data.units, t, settings)


async def topup_and_buy(
    query: CallbackQuery,
    callback_data: TopupBuyCb,
    bot: Bot,
    t: Translator,
    settings: Settings,
    user: User,
    wallet: Wallet,
    maintenance: Maintenance,
    buy_flow: BuyFlow,
    callback_answer: CallbackAnswer,
) -> None:
    """ "Top up $0.67 and buy": an invoice for what the presser's own wallet lacks now."""
    message = query.message
    if not isinstance(message, Message):
        return
    notice = await topups_paused(maintenance, t)
    if notice is not None:
        await edit_or_send(query, notice, back_to_balance(t))
        return
    p = callback_data
    intent = BuyIntent(p.country, p.ref, p.pool, p.price, p.nonce)
    invoice = (
        shortfall_invoice(wallet.id, wallet.balance, intent, settings.stars_per_usd)
        if message.chat.type == "private"
        else None
    )
    if invoice is None:
        # The balance covers it by now (another top-up came in), or the button was forged
        # into a group: the plain buy button's path, which buys or says why not.
        await buy_flow.tap(
            query,
            callback_data.as_buy(),
            user=user,
            wallet=wallet,
            group=None,
            t=t,
            callback_answer=callback_answer,
        )
        return
    await send_shortfall_invoice(bot, message.chat.id, invoice, t)


async def pre_checkout(
    query: PreCheckoutQuery, db: Database, repo: Repo, i18n: I18n, maintenance: Maintenance
) -> None:
    paused = await maintenance.paused()
    if paused is not None:
        # An invoice sent before maintenance began: refused here, so no Stars are taken.
        stored = await repo.users.get(query.from_user.id)
        lang = stored.language if stored else language_for(query.from_user.language_code)
        logger.info("pre-checkout of %s refused: maintenance", query.invoice_payload)
        await query.answer(
            ok=False, error_message=precheckout_refusal(i18n.translator(lang), paused.minutes_left)
        )
        return
    problem = await check_pre_checkout(
        repo,
        payer_id=query.from_user.id,
        payload=query.invoice_payload,
        currency=query.currency,
        total_amount=query.total_amount,
    )
    if problem is None:
        await query.answer(ok=True)
        return
    stored = await repo.users.get(query.from_user.id)
    lang = stored.language if stored else language_for(query.from_user.language_code)
    t = i18n.translator(lang)
    logger.info(
        "pre-checkout of %s by %d refused: %s",
        query.invoice_payload,
        query.from_user.id,
        problem,
    )
    await query.answer(ok=False, error_message=t.plain(f"precheckout-{problem}"))


async def successful_payment(
    message: Message,
    db: Database,
    repo: Repo,
    settings: Settings,
    t: Translator,
    user: User,
    wallet: Wallet,
    notifier: TelegramNotifier,
    buy_flow: BuyFlow,
) -> None:
    paid = message.successful_payment
    assert paid is not None
    chat_id = message.chat.id
    in_group = message.chat.type != "private"

    def render(after: Wallet, payment: Payment) -> dict[str, Any]:
        args: dict[str, str | int] = {
            "amount": t.usd(payment.amount_units),
            "stars": payment.stars,
            "balance": t.usd(after.balance),
        }
        if in_group:
            text = t("group-paid", name=user.first_name, **args)
        else:
            text = t("topup-paid", **args)
        return message_payload(text, reply_to_message_id=message.message_id)

    try:
        credit = await record_stars_payment(
            repo,
            payer_id=user.id,
            charge_id=paid.telegram_payment_charge_id,
            payload=paid.invoice_payload,
            currency=paid.currency,
            total_amount=paid.total_amount,
            notice=payment_notice(repo, chat_id, render, dedupe="stars"),
        )
    except PaymentNotCredited as exc:
        logger.error("Stars payment %s not credited: %s", exc.charge_id, exc.reason)
        await admin_service.alert_admins(
            repo,
            settings,
            notifier,
            UncreditedPayment(
                charge_id=exc.charge_id,
                user_id=user.id,
                stars=paid.total_amount,
                reason=exc.reason,
            ),
            dedupe=f"payment:{exc.charge_id}",
        )
        await message.answer(t("topup-not-credited"))
        return
    if credit.credited:
        notifier.wake()
    invoice = parse_payload(paid.invoice_payload)
    if invoice is not None and invoice.intent is not None and not in_group:
        if invoice.wallet_id != wallet.id:
            # Someone else paid this user's invoice (a forwarded invoice): the balance went
            # to its owner, and only the owner's own tap buys with it.
            return
        # Also when this is a redelivery of a credited payment: the purchase is keyed on
        # the buy button's nonce, so it is made once, and made after a crash in between.
        fresh = await repo.wallets.get(wallet.id)
        if fresh is not None:
            await buy_flow.after_topup(message, invoice.intent, user=user, wallet=fresh, t=t)


async def refunded_payment(message: Message) -> None:
    # Telegram's own notice of a refund an admin made; the wallet side was booked (and
    # the owner told) by the refund itself.
    refunded = message.refunded_payment
    assert refunded is not None
    logger.info("Telegram confirms refund of %s", refunded.telegram_payment_charge_id)


async def paysupport(message: Message, t: Translator, settings: Settings) -> None:
    await message.answer(t("paysupport-text", contact=support_contact(t, settings)))


async def terms(message: Message, t: Translator, settings: Settings) -> None:
    await message.answer(t("terms-text", rate=settings.stars_per_usd))


def build_router() -> Router:
    router = Router(name=__name__)
    router.callback_query.register(topup_screen, TopupCb.filter(F.units == 0))
    router.callback_query.register(topup_amount, TopupCb.filter(F.units > 0))
    router.callback_query.register(topup_and_buy, TopupBuyCb.filter())
    router.pre_checkout_query.register(pre_checkout)
    router.message.register(successful_payment, F.successful_payment)
    router.message.register(refunded_payment, F.refunded_payment)
    router.message.register(paysupport, Command("paysupport"))
    router.message.register(terms, Command("terms"))
    return router
