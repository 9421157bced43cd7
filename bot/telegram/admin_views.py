"""Parts of the admin panel that several of its screens show: the way home and a user's card."""

from __future__ import annotations

from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup

from bot.services import admin as admin_service
from bot.services.topup import BadAmount
from bot.telegram.callbacks import AdminAction, AdminCb
from bot.telegram.i18n import Translator
from bot.telegram.keyboards import button, markup
from storage.models import User
from storage.repo import Repo


def back_home(t: Translator) -> list[InlineKeyboardButton]:
    return [button(t.plain("admin-home-button"), AdminCb(action=AdminAction.HOME))]


def back_to_user(t: Translator, user_id: int) -> InlineKeyboardButton:
    return button(t.plain("admin-back-button"), AdminCb(action=AdminAction.USER, id=user_id))


def amount_problem(t: Translator, exc: BadAmount) -> str:
    return t(f"admin-amount-{exc.reason}", text=exc.text[:32], max=t.usd(exc.max_units))


def _user_status(t: Translator, user: User) -> str:
    if user.banned:
        return t.plain("admin-user-banned")
    if user.inactive:
        return t.plain("admin-user-inactive")
    return t.plain("admin-user-active")


async def card_view(
    t: Translator, repo: Repo, user_id: int, note: str | None = None
) -> tuple[str, InlineKeyboardMarkup]:
    card = await admin_service.user_card(repo, user_id)
    if card is None:
        return t("admin-user-unknown", ref=str(user_id)), markup([back_home(t)])
    user = card.user
    text = t(
        "admin-user-card",
        name=user.first_name or "—",
        username=f"@{user.username}" if user.username else "—",
        id=user.id,
        language=user.language or "—",
        joined=t.when(user.created_at),
        balance=t.usd(card.balance),
        purchases=card.purchases,
        payments=card.payments,
        status=_user_status(t, user),
    )
    if note:
        text = f"{note}\n\n{text}"
    ban = (
        button(t.plain("admin-unban-button"), AdminCb(action=AdminAction.UNBAN, id=user.id))
        if user.banned
        else button(t.plain("admin-ban-button"), AdminCb(action=AdminAction.BAN, id=user.id))
    )
    rows = [
        [button(t.plain("admin-topup-button"), AdminCb(action=AdminAction.TOPUP, id=user.id)), ban],
        [
            button(
                t.plain("admin-payments-button"), AdminCb(action=AdminAction.PAYMENTS, id=user.id)
            )
        ],
        back_home(t),
    ]
    return text, markup(rows)
