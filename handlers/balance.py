"""Balance with the last ledger entries."""

from __future__ import annotations

from aiogram import F, Router
from aiogram.filters import Command
from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message

from bot.config import Settings
from bot.money import format_usd
from bot.telegram.callbacks import MenuAction, MenuCb
from bot.telegram.i18n import Translator
from bot.telegram.keyboards import balance_keyboard
from bot.telegram.replies import edit_or_send
from bot.telegram.texts import format_date
from storage.models import LedgerEntry, Wallet
from storage.repo import Repo

RECENT_ENTRIES = 10
_KINDS = frozenset(
    {
        "topup",
        "stars",
        "purchase",
        "refund",
        "transfer_in",
        "transfer_out",
        "adjustment",
        "sandbox_bonus",
    }
)


def _signed(units: int) -> str:
    return f"+{format_usd(units)}" if units > 0 else format_usd(units)


def _entry(t: Translator, entry: LedgerEntry) -> str:
    kind = entry.kind if entry.kind in _KINDS else "other"
    return t(
        "balance-entry",
        date=format_date(entry.created_at),
        amount=_signed(entry.amount),
        kind=t.plain(f"ledger-kind-{kind}"),
    )


async def balance_view(
    t: Translator, repo: Repo, settings: Settings, wallet: Wallet
) -> tuple[str, InlineKeyboardMarkup]:
    # The wallet in handler data was read when the update arrived; read it again so a
    # purchase finished a moment ago shows.
    current = await repo.wallets.get(wallet.id) or wallet
    entries = await repo.ledger.last_entries(current.id, RECENT_ENTRIES)
    if entries:
        body = t("balance-recent") + "\n" + "\n".join(_entry(t, e) for e in entries)
    else:
        body = t("balance-empty")
    howto = t("balance-topup-sandbox" if settings.sandbox_mode else "balance-topup-admin")
    text = t("balance-text", balance=format_usd(current.balance))
    return f"{text}\n\n{body}\n\n{howto}", balance_keyboard(t)


async def balance_command(
    message: Message, t: Translator, repo: Repo, settings: Settings, wallet: Wallet
) -> None:
    text, keyboard = await balance_view(t, repo, settings, wallet)
    await message.answer(text, reply_markup=keyboard)


async def balance_menu(
    query: CallbackQuery, t: Translator, repo: Repo, settings: Settings, wallet: Wallet
) -> None:
    text, keyboard = await balance_view(t, repo, settings, wallet)
    await edit_or_send(query, text, keyboard)


def build_router() -> Router:
    router = Router(name=__name__)
    router.message.filter(F.chat.type == "private")
    router.message.register(balance_command, Command("balance"))
    router.callback_query.register(balance_menu, MenuCb.filter(F.action == MenuAction.BALANCE))
    return router
