"""Topping up with Crypto Pay: the amounts (presets, or a typed USD amount), then a message
with the pay button; the credit and the expiry are told by the service's notices."""

from __future__ import annotations

import logging

from aiogram import F, Router
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, Message

from bot.services.cryptopay import (
    CryptoTopups,
    CryptoUnavailable,
    parse_crypto_amount,
    preset_units,
)
from bot.services.maintenance import Maintenance
from bot.services.topup import BadAmount
from bot.telegram.callbacks import CryptoCb
from bot.telegram.crypto import (
    amount_problem,
    crypto_amounts_keyboard,
    crypto_screen_text,
    invoice_description,
    send_pay_message,
)
from bot.telegram.i18n import Translator
from bot.telegram.maintenance import topups_paused
from bot.telegram.replies import edit_or_send
from bot.telegram.states import TopupStates
from storage.models import User, Wallet

logger = logging.getLogger(__name__)

_LOOKS_LIKE_MONEY = r"^\s*\$?\s*-?[\d.,][\d.,\s]*\$?\s*$"


async def crypto_screen(
    query: CallbackQuery,
    state: FSMContext,
    t: Translator,
    maintenance: Maintenance,
    crypto: CryptoTopups | None,
) -> None:
    if crypto is None:
        # A button from when Crypto Pay was on: it is off now.
        await edit_or_send(query, t("crypto-off"))
        return
    notice = await topups_paused(maintenance, t)
    if notice is not None:
        await edit_or_send(query, notice)
        return
    await state.set_state(TopupStates.crypto_amount)
    await edit_or_send(query, crypto_screen_text(t, crypto), crypto_amounts_keyboard(t))


async def _send_invoice(
    message: Message,
    t: Translator,
    crypto: CryptoTopups,
    user: User,
    wallet: Wallet,
    units: int,
) -> None:
    try:
        invoice = await crypto.create_invoice(
            wallet_id=wallet.id,
            user_id=user.id,
            chat_id=message.chat.id,
            units=units,
            description=invoice_description(t, units),
        )
    except CryptoUnavailable:
        await message.answer(t("crypto-unavailable"))
        return
    await send_pay_message(message, t, crypto, invoice, in_group=False)


async def crypto_amount(
    query: CallbackQuery,
    callback_data: CryptoCb,
    state: FSMContext,
    t: Translator,
    user: User,
    wallet: Wallet,
    maintenance: Maintenance,
    crypto: CryptoTopups | None,
) -> None:
    if query.message is None or crypto is None:
        return
    notice = await topups_paused(maintenance, t)
    if notice is not None:
        await edit_or_send(query, notice)
        return
    if callback_data.units not in preset_units():
        # Forged data: only the amounts the screen offers are pressed; typing is for others.
        await edit_or_send(query, crypto_screen_text(t, crypto), crypto_amounts_keyboard(t))
        return
    await state.clear()
    # Always the presser's own wallet: callback data never names one.
    assert isinstance(query.message, Message)
    await _send_invoice(query.message, t, crypto, user, wallet, callback_data.units)


async def crypto_typed(
    message: Message,
    state: FSMContext,
    t: Translator,
    user: User,
    wallet: Wallet,
    maintenance: Maintenance,
    crypto: CryptoTopups | None,
) -> None:
    if crypto is None:
        await state.clear()
        return
    notice = await topups_paused(maintenance, t)
    if notice is not None:
        await state.clear()
        await message.answer(notice)
        return
    try:
        units = parse_crypto_amount(message.text or "")
    except BadAmount as exc:
        # Stay in the state: the next line is another try.
        await message.answer(amount_problem(t, exc))
        return
    await state.clear()
    await _send_invoice(message, t, crypto, user, wallet, units)


def build_router() -> Router:
    router = Router(name=__name__)
    router.callback_query.register(crypto_screen, CryptoCb.filter(F.units == 0))
    router.callback_query.register(crypto_amount, CryptoCb.filter(F.units > 0))
    # Only a line that looks like money is taken as the amount: a person who left the screen
    # and types a service's name is searching, not paying.
    router.message.register(
        crypto_typed,
        TopupStates.crypto_amount,
        F.chat.type == "private",
        F.text.regexp(_LOOKS_LIKE_MONEY),
    )
    return router
