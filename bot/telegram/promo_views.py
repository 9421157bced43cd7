"""Promo codes and invite links at the Telegram edge: redeeming a code with its receipt, the
answers to a refused code, the invite screen, and what the admins see of the codes."""

from __future__ import annotations

import html
from collections.abc import Mapping
from typing import Any, Final

from aiogram import Bot
from aiogram.types import InlineKeyboardMarkup

from bot.services import promo as promo_service
from bot.services import referrals
from bot.services.errors import PromoRefused, WalletNotFound
from bot.services.money import Movement
from bot.services.promo import BadPromoSpec
from bot.telegram.callbacks import MenuAction, MenuCb
from bot.telegram.i18n import I18n, Translator
from bot.telegram.keyboards import button, markup, menu_row
from bot.telegram.notices import movement_notice
from bot.telegram.outbox import OutboxSender, message_payload
from storage.db import Transaction
from storage.models import PromoCode, User, Wallet
from storage.repo import Repo

_REFUSALS: Final[Mapping[str, str]] = {
    "unknown": "promo-unknown",
    "expired": "promo-expired",
    "used_up": "promo-used-up",
    "already_used": "promo-already-used",
}
_MAX_SHOWN_CODE = 40


def refusal_text(t: Translator, exc: PromoRefused) -> str:
    return t(_REFUSALS[exc.reason], code=html.escape(exc.promo_code[:_MAX_SHOWN_CODE]))


async def redeem(
    *,
    repo: Repo,
    i18n: I18n,
    outbox: OutboxSender,
    user: User,
    wallet: Wallet,
    code: str,
    key: str,
) -> str | None:
    """Redeem `code` for the user. The receipt is queued in the outbox in the transaction
    that credits (so it goes once, with the money or not at all); returns None then, or
    the answer to a refused code (nothing changed)."""
    t = i18n.translator(user.language)
    shown: dict[str, str] = {}

    def render(moved: Movement) -> dict[str, Any]:
        return message_payload(
            t(
                "promo-credited",
                code=html.escape(shown["code"]),
                amount=t.usd(moved.amount),
                balance=t.usd(moved.wallet.balance),
            )
        )

    hook = movement_notice(repo, user.id, render, dedupe="promo")

    async def notice(tx: Transaction, moved: Movement) -> None:
        entry = moved.entry
        assert entry is not None
        assert entry.promo_redemption_id is not None
        found = await repo.promo.code_of_redemption(entry.promo_redemption_id, tx=tx)
        shown["code"] = found.code if found is not None else code
        await hook(tx, moved)

    try:
        await promo_service.redeem(
            repo, code=code, user_id=user.id, wallet_id=wallet.id, key=key, notice=notice
        )
    except PromoRefused as exc:
        return refusal_text(t, exc)
    except WalletNotFound:
        return refusal_text(t, PromoRefused(code, "unknown"))
    outbox.wake()
    return None


async def bot_username(bot: Bot) -> str:
    me = await bot.me()  # aiogram caches it after the first call
    return me.username or ""


def invite_link(username: str, user_id: int) -> str:
    return f"https://t.me/{username}?start={referrals.invite_payload(user_id)}"


def invite_view(
    t: Translator, info: referrals.InviteInfo, username: str, user_id: int
) -> tuple[str, InlineKeyboardMarkup]:
    text = t(
        "invite-text",
        link=invite_link(username, user_id),
        friends=info.friends,
        earned=t.usd(info.earned_units),
    )
    if info.terms.enabled:
        terms = t("invite-terms", percent=str(info.terms.percent), cap=t.usd(info.terms.cap_units))
    else:
        terms = t("invite-off")
    keyboard = markup(
        [[button(t.plain("menu-balance"), MenuCb(action=MenuAction.BALANCE))], menu_row(t)]
    )
    return f"{text}\n\n{terms}", keyboard


# --- admins -------------------------------------------------------------------------------


def spec_problem(t: Translator, exc: BadPromoSpec) -> str:
    return t(f"admin-promo-bad-{exc.reason}", detail=html.escape(exc.detail))


def _expiry(t: Translator, code: PromoCode, now: float) -> str:
    if code.expires_at is None:
        return t.plain("admin-promo-never")
    key = "admin-promo-expired" if code.expired(now) else "admin-promo-until"
    return t.plain(key, date=t.when(code.expires_at))


def _per_user(t: Translator, code: PromoCode) -> str:
    return t.plain("admin-promo-once" if code.once_per_user else "admin-promo-repeat")


def code_line(t: Translator, code: PromoCode, now: float) -> str:
    return t(
        "admin-promo-line",
        code=html.escape(code.code),
        amount=t.usd(code.amount_units),
        uses=code.uses,
        max=code.max_uses,
        per_user=_per_user(t, code),
        expiry=_expiry(t, code, now),
    )


def codes_text(t: Translator, codes: list[PromoCode], now: float) -> str:
    if not codes:
        body = t("admin-promo-list-empty")
    else:
        body = "\n".join([t("admin-promo-list-title"), *(code_line(t, c, now) for c in codes)])
    return f"{body}\n\n{t('admin-promo-usage')}"


def created_text(t: Translator, code: PromoCode, username: str, now: float) -> str:
    return t(
        "admin-promo-created",
        code=html.escape(code.code),
        amount=t.usd(code.amount_units),
        uses=code.max_uses,
        per_user=_per_user(t, code),
        expiry=_expiry(t, code, now),
        link=promo_service.start_link(username, code.code),
    )
