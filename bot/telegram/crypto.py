"""Crypto Pay at the Telegram edge: the amounts screen, the pay message with its URL button,
the receipt and the expiry notice (queued in the outbox inside the transaction that credited
or expired the invoice), and the webhook route for any aiohttp application.
"""

from __future__ import annotations

import logging
from typing import Final

from aiogram.exceptions import TelegramBadRequest
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup, Message
from aiohttp import web

from bot.cryptopay.signature import SIGNATURE_HEADER
from bot.services.cryptopay import (
    CRYPTO_MAX_UNITS,
    CRYPTO_MIN_UNITS,
    CryptoTopups,
    preset_units,
)
from bot.services.topup import BadAmount
from bot.telegram.callbacks import CryptoCb, GroupAction, GroupCb, MenuAction, MenuCb, TopupCb
from bot.telegram.i18n import I18n, Translator
from bot.telegram.keyboards import button, markup
from bot.telegram.outbox import OutboxSender, edit_payload, enqueue, message_payload
from storage.db import Transaction
from storage.models import CryptoInvoice, Wallet
from storage.repo import Repo

logger = logging.getLogger(__name__)

# A webhook body larger than this is not an invoice update (an invoice is a few KB at most).
MAX_WEBHOOK_BYTES: Final = 64 * 1024


def crypto_amounts_keyboard(t: Translator) -> InlineKeyboardMarkup:
    rows = [
        [button(t.plain("crypto-amount-button", price=t.usd(units)), CryptoCb(units=units))]
        for units in preset_units()
    ]
    rows.append([button(t.plain("topup-button"), TopupCb(units=0))])
    rows.append([button(t.plain("menu-balance"), MenuCb(action=MenuAction.BALANCE))])
    return markup(rows)


def crypto_screen_text(t: Translator, topups: CryptoTopups) -> str:
    return t("crypto-text", assets=", ".join(topups.assets))


def amount_problem(t: Translator, exc: BadAmount) -> str:
    return t(
        f"crypto-amount-{exc.reason}",
        text=exc.text[:32],
        min=t.usd(CRYPTO_MIN_UNITS),
        max=t.usd(CRYPTO_MAX_UNITS),
    )


def pay_keyboard(
    t: Translator, invoice: CryptoInvoice, *, in_group: bool = False
) -> InlineKeyboardMarkup:
    price = t.usd(invoice.amount_units)
    rows = [
        [InlineKeyboardButton(text=t.plain("crypto-pay-button", price=price), url=invoice.pay_url)]
    ]
    if not in_group:
        # A group's pay message is for everyone there: no private Balance button on it.
        rows.append([button(t.plain("menu-balance"), MenuCb(action=MenuAction.BALANCE))])
    return InlineKeyboardMarkup(inline_keyboard=rows)


async def send_pay_message(
    message: Message, t: Translator, topups: CryptoTopups, invoice: CryptoInvoice, *, in_group: bool
) -> None:
    """The invoice's message with its pay button, remembered on the invoice. Telegram refuses
    a button to a URL it deems invalid (a local Crypto Pay's http://127.0.0.1 page in sandbox
    mode): then the link goes in the text, which the person can still open."""
    text = pay_text(t, topups, invoice)
    try:
        sent = await message.answer(text, reply_markup=pay_keyboard(t, invoice, in_group=in_group))
    except TelegramBadRequest as exc:
        logger.info("pay button refused (%s): the link goes in the text", exc.message)
        link = t("crypto-pay-link", url=invoice.pay_url)
        sent = await message.answer(f"{text}\n\n{link}")
    await topups.attach_message(invoice, sent.message_id)


def pay_text(t: Translator, topups: CryptoTopups, invoice: CryptoInvoice) -> str:
    return t(
        "crypto-invoice-text",
        price=t.usd(invoice.amount_units),
        assets=", ".join(topups.assets),
        minutes=max(1, topups.expires_in // 60),
    )


def invoice_description(t: Translator, units: int) -> str:
    return t.plain("crypto-invoice-description", price=t.usd(units))


class TelegramCryptoNotices:
    """`bot.services.cryptopay.CryptoNotices` on the outbox: one receipt and one edit of the
    pay message per invoice (dedupe keys `crypto-paid:<id>`,
    `crypto-card-paid:<id>`, `crypto-card-expired:<id>`)."""

    def __init__(self, repo: Repo, i18n: I18n, sender: OutboxSender) -> None:
        self.repo = repo
        self.i18n = i18n
        self.sender = sender

    async def _t(self, tx: Transaction, user_id: int) -> Translator:
        user = await self.repo.users.get(user_id, tx=tx)
        return self.i18n.translator(user.language if user is not None else None)

    async def crypto_paid(self, tx: Transaction, wallet: Wallet, invoice: CryptoInvoice) -> None:
        t = await self._t(tx, invoice.user_id)
        price = t.usd(invoice.amount_units)
        key = "crypto-paid-group" if wallet.owner_kind == "group" else "crypto-paid"
        text = t(key, amount=price, asset=invoice.paid_asset or "?", balance=t.usd(wallet.balance))
        await enqueue(
            self.repo,
            invoice.chat_id,
            "notice",
            message_payload(text, reply_to_message_id=invoice.message_id),
            dedupe_key=f"crypto-paid:{invoice.id}",
            tx=tx,
        )
        if invoice.message_id is not None:
            await enqueue(
                self.repo,
                invoice.chat_id,
                "notice",
                edit_payload(invoice.message_id, t("crypto-invoice-paid", price=price)),
                dedupe_key=f"crypto-card-paid:{invoice.id}",
                tx=tx,
            )

    async def crypto_expired(self, tx: Transaction, invoice: CryptoInvoice) -> None:
        t = await self._t(tx, invoice.user_id)
        text = t("crypto-expired", price=t.usd(invoice.amount_units))
        # In a group the way back is the group's own Crypto screen (its admins only).
        again_data = (
            GroupCb(action=GroupAction.CRYPTO) if invoice.chat_id < 0 else CryptoCb(units=0)
        )
        again = markup([[button(t.plain("crypto-again-button"), again_data)]])
        # Edit the pay message (its button must not stay); without one, a new message.
        payload = (
            message_payload(text, again)
            if invoice.message_id is None
            else edit_payload(invoice.message_id, text, again)
        )
        await enqueue(
            self.repo,
            invoice.chat_id,
            "notice",
            payload,
            dedupe_key=f"crypto-card-expired:{invoice.id}",
            tx=tx,
        )

    def wake(self) -> None:
        self.sender.wake()


def add_cryptopay_routes(web_app: web.Application, topups: CryptoTopups, path: str) -> None:
    """POST `path`: Crypto Pay's webhook. 401 for a bad or missing signature (nothing read),
    200 once the update is recorded (also for one that credits nothing, so Crypto Pay stops
    resending it: that case is logged), 500 when recording failed (Crypto Pay retries)."""

    async def webhook(request: web.Request) -> web.Response:
        if request.content_length is not None and request.content_length > MAX_WEBHOOK_BYTES:
            return web.json_response({"ok": False}, status=413)
        body = await request.content.read(MAX_WEBHOOK_BYTES + 1)
        if len(body) > MAX_WEBHOOK_BYTES:
            return web.json_response({"ok": False}, status=413)
        try:
            outcome = await topups.handle_webhook(body, request.headers.get(SIGNATURE_HEADER))
        except Exception:
            logger.exception("Crypto Pay webhook could not be recorded")
            return web.json_response({"ok": False}, status=500)
        if outcome == "bad_signature":
            return web.json_response({"ok": False}, status=401)
        return web.json_response({"ok": True, "outcome": outcome})

    web_app.router.add_post(path, webhook)


__all__ = [
    "TelegramCryptoNotices",
    "add_cryptopay_routes",
    "amount_problem",
    "crypto_amounts_keyboard",
    "crypto_screen_text",
    "invoice_description",
    "pay_keyboard",
    "pay_text",
    "send_pay_message",
]
