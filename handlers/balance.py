"""Balance with the last ledger entries."""

from __future__ import annotations

from aiogram import F, Router
from aiogram.filters import Command
from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message

from bot.config import Settings
from bot.telegram.callbacks import MenuAction, MenuCb
from bot.telegram.i18n import Translator
from bot.telegram.keyboards import balance_keyboard
from bot.telegram.menu import topup_howto
from bot.telegram.replies import edit_or_send
from storage.models import FAILED, Activation, LedgerEntry, Wallet
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
        "crypto",
        "promo",
        "referral",
    }
)


def _signed(t: Translator, units: int) -> str:
    return f"+{t.usd(units)}" if units > 0 else t.usd(units)


def _entry(t: Translator, entry: LedgerEntry) -> str:
    kind = entry.kind if entry.kind in _KINDS else "other"
    return t(
        "balance-entry",
        date=t.when(entry.created_at),
        amount=_signed(t, entry.amount),
        kind=t.plain(f"ledger-kind-{kind}"),
    )


async def _lines(t: Translator, repo: Repo, entries: list[LedgerEntry]) -> tuple[list[str], int]:
    """The screen's lines, newest first, and how many purchases were netted.

    A purchase the upstream never sold (refused before any money could reach it, or found
    never sold) leaves a 'purchase' and a 'refund' entry that cancel out; listed apart they
    read like a charge, so they are shown as one line. The ledger itself keeps both."""
    refunded = {e.activation_id for e in entries if e.kind == "refund" and e.activation_id}
    not_bought: dict[int, Activation] = {}
    for activation_id in refunded:
        activation = await repo.activations.get(activation_id)
        if activation is not None and activation.state == FAILED:
            not_bought[activation_id] = activation
    lines: list[str] = []
    netted = 0
    for entry in entries:
        activation = not_bought.get(entry.activation_id or 0)
        if activation is None or entry.kind not in ("purchase", "refund"):
            lines.append(_entry(t, entry))
        elif entry.kind == "refund":
            netted += 1
            lines.append(
                t(
                    "balance-entry-not-bought",
                    date=t.when(entry.created_at),
                    amount=_signed(t, 0),
                    service=activation.service_name,
                )
            )
        # Its 'purchase' entry is the hold the refund line above already accounts for.
    return lines, netted


async def balance_view(
    t: Translator, repo: Repo, settings: Settings, wallet: Wallet
) -> tuple[str, InlineKeyboardMarkup]:
    # The wallet in handler data was read when the update arrived; read it again so a
    # purchase finished a moment ago shows.
    current = await repo.wallets.get(wallet.id) or wallet
    # Twice as many as shown: a netted pair takes two entries for one line.
    entries = await repo.ledger.last_entries(current.id, 2 * RECENT_ENTRIES)
    lines, netted = await _lines(t, repo, entries)
    if lines:
        body = t("balance-recent") + "\n" + "\n".join(lines[:RECENT_ENTRIES])
        if netted:
            body += "\n" + t("balance-netted-note")
    else:
        body = t("balance-empty")
    howto = topup_howto(t, settings)
    text = t("balance-text", balance=t.usd(current.balance))
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
