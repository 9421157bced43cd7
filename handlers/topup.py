"""Topping up with Telegram Stars: the amounts, the invoice, the pre-checkout check and the
successful payment; /paysupport and /terms, which Telegram asks every Stars seller to have.

The same invoice machinery serves a group wallet (handlers.groups sends the invoice); the
pre-checkout and payment handlers do not care whose wallet the invoice names.
"""

from __future__ import annotations

import logging

from aiogram import Bot, F, Router
from aiogram.filters import Command
from aiogram.types import (
    CallbackQuery,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    LabeledPrice,
    Message,
    PreCheckoutQuery,
)

from bot.config import Settings
from bot.money import UNITS_PER_USD, format_usd
from bot.services import admin as admin_service
from bot.services.notify import UncreditedPayment
from bot.services.topup import (
    STARS_CURRENCY,
    STARS_PRESETS_USD,
    Notice,
    PaymentNotCredited,
    check_pre_checkout,
    new_invoice,
    record_stars_payment,
)
from bot.telegram.callbacks import MenuAction, MenuCb, TopupCb
from bot.telegram.i18n import I18n, Translator, language_for
from bot.telegram.notifier import TelegramNotifier
from bot.telegram.outbox import OutboxSender, message_payload
from handlers.common import edit_or_send
from storage.db import Database
from storage.models import Payment, User, Wallet
from storage.repo import Repo

logger = logging.getLogger(__name__)


# Telegram's limits on an invoice's title and description.
_TITLE_MAX = 32
_DESCRIPTION_MAX = 255


def preset_units() -> list[int]:
    return [usd * UNITS_PER_USD for usd in STARS_PRESETS_USD]


def topup_button(t: Translator) -> InlineKeyboardButton:
    """The Balance screen's way in."""
    return InlineKeyboardButton(text=t.plain("topup-button"), callback_data=TopupCb(units=0).pack())


def topup_keyboard(t: Translator, settings: Settings) -> InlineKeyboardMarkup:
    rows = [
        [
            InlineKeyboardButton(
                text=t.plain(
                    "topup-amount-button",
                    price=format_usd(units),
                    stars=new_invoice(0, units, settings.stars_per_usd).stars,
                ),
                callback_data=TopupCb(units=units).pack(),
            )
        ]
        for units in preset_units()
    ]
    rows.append(
        [
            InlineKeyboardButton(
                text=t.plain("menu-balance"),
                callback_data=MenuCb(action=MenuAction.BALANCE).pack(),
            )
        ]
    )
    return InlineKeyboardMarkup(inline_keyboard=rows)


async def send_stars_invoice(
    bot: Bot,
    chat_id: int,
    wallet: Wallet,
    units: int,
    t: Translator,
    settings: Settings,
    *,
    for_group: bool = False,
) -> Message:
    """An invoice in Stars (currency XTR, no provider token) for `units` of balance on
    `wallet`; whoever pays it, it credits that wallet."""
    invoice = new_invoice(wallet.id, units, settings.stars_per_usd)
    price = format_usd(units)
    prefix = "group-invoice" if for_group else "topup-invoice"
    return await bot.send_invoice(
        chat_id,
        title=t.plain(f"{prefix}-title", price=price)[:_TITLE_MAX],
        description=t.plain(f"{prefix}-description", price=price)[:_DESCRIPTION_MAX],
        payload=invoice.payload,
        currency=STARS_CURRENCY,
        prices=[
            LabeledPrice(label=t.plain("topup-invoice-label", price=price), amount=invoice.stars)
        ],
    )


def build_router() -> Router:
    router = Router(name=__name__)

    @router.callback_query(TopupCb.filter(F.units == 0))
    async def topup_screen(query: CallbackQuery, t: Translator, settings: Settings) -> None:
        await edit_or_send(
            query, t("topup-text", rate=settings.stars_per_usd), topup_keyboard(t, settings)
        )

    @router.callback_query(TopupCb.filter(F.units > 0))
    async def topup_amount(
        query: CallbackQuery,
        callback_data: TopupCb,
        bot: Bot,
        t: Translator,
        settings: Settings,
        wallet: Wallet,
    ) -> None:
        if query.message is None:
            return
        if callback_data.units not in preset_units():
            # Forged data: only the amounts the screen offers are sold.
            await edit_or_send(
                query, t("topup-text", rate=settings.stars_per_usd), topup_keyboard(t, settings)
            )
            return
        # Always the presser's own wallet: callback data never names a wallet.
        await send_stars_invoice(
            bot, query.message.chat.id, wallet, callback_data.units, t, settings
        )

    @router.pre_checkout_query()
    async def pre_checkout(query: PreCheckoutQuery, db: Database, repo: Repo, i18n: I18n) -> None:
        problem = await check_pre_checkout(
            db,
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

    @router.message(F.successful_payment)
    async def successful_payment(
        message: Message,
        db: Database,
        repo: Repo,
        settings: Settings,
        t: Translator,
        user: User,
        notifier: TelegramNotifier,
        outbox: OutboxSender | None = None,
    ) -> None:
        paid = message.successful_payment
        assert paid is not None
        chat_id = message.chat.id
        in_group = message.chat.type != "private"

        def notice(after: Wallet, payment: Payment) -> Notice:
            args: dict[str, str | int] = {
                "amount": format_usd(payment.amount_units),
                "stars": payment.stars,
                "balance": format_usd(after.balance),
            }
            if in_group:
                text = t("group-paid", name=user.first_name, **args)
            else:
                text = t("topup-paid", **args)
            return Notice(chat_id, message_payload(text, reply_to_message_id=message.message_id))

        try:
            credit = await record_stars_payment(
                db,
                payer_id=user.id,
                charge_id=paid.telegram_payment_charge_id,
                payload=paid.invoice_payload,
                currency=paid.currency,
                total_amount=paid.total_amount,
                notice=notice,
            )
        except PaymentNotCredited as exc:
            logger.error("Stars payment %s not credited: %s", exc.charge_id, exc.reason)
            await admin_service.alert_admins(
                db,
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
        if credit.credited and outbox is not None:
            outbox.wake()

    @router.message(F.refunded_payment)
    async def refunded_payment(message: Message) -> None:
        # Telegram's own notice of a refund an admin made; the wallet side was booked (and
        # the owner told) by the refund itself.
        refunded = message.refunded_payment
        assert refunded is not None
        logger.info("Telegram confirms refund of %s", refunded.telegram_payment_charge_id)

    @router.message(Command("paysupport"))
    async def paysupport(message: Message, t: Translator) -> None:
        await message.answer(t("paysupport-text"))

    @router.message(Command("terms"))
    async def terms(message: Message, t: Translator, settings: Settings) -> None:
        await message.answer(t("terms-text", rate=settings.stars_per_usd))

    return router
