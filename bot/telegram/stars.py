"""Telegram Stars invoices: the amounts on offer and the invoice that credits a wallet."""

from __future__ import annotations

from aiogram import Bot
from aiogram.types import LabeledPrice, Message

from bot.config import Settings
from bot.money import UNITS_PER_USD
from bot.services.topup import STARS_CURRENCY, STARS_PRESETS_USD, StarsInvoice, new_invoice
from bot.telegram.i18n import Translator
from storage.models import Wallet

# Telegram's limits on an invoice's title and description.
_TITLE_MAX = 32
_DESCRIPTION_MAX = 255


def preset_units() -> list[int]:
    return [usd * UNITS_PER_USD for usd in STARS_PRESETS_USD]


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
    price = t.usd(units)
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


async def send_shortfall_invoice(
    bot: Bot, chat_id: int, invoice: StarsInvoice, t: Translator
) -> Message:
    """The invoice of "top up and buy": the shortfall, in whole Stars; paid, it credits the
    wallet and then makes the purchase its payload names."""
    amount = t.usd(invoice.units)
    return await bot.send_invoice(
        chat_id,
        title=t.plain("topup-buy-invoice-title", price=amount)[:_TITLE_MAX],
        description=t.plain("topup-buy-invoice-description", price=amount)[:_DESCRIPTION_MAX],
        payload=invoice.payload,
        currency=STARS_CURRENCY,
        prices=[
            LabeledPrice(label=t.plain("topup-invoice-label", price=amount), amount=invoice.stars)
        ],
    )
