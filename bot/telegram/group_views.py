"""A group's wallet panel, and the group's row and wallet that every group screen starts from."""

from __future__ import annotations

from aiogram.types import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Message

from bot.services import groups as group_service
from bot.services.topup import BadAmount, parse_amount
from bot.telegram.callbacks import GroupAction, GroupCb
from bot.telegram.i18n import Translator
from bot.telegram.keyboards import button, markup
from bot.telegram.replies import edit_or_send
from storage.db import Database
from storage.models import Chat, User, Wallet
from storage.repo import Repo


def back_row(t: Translator) -> list[InlineKeyboardButton]:
    return [button(t.plain("group-back-button"), GroupCb(action=GroupAction.PANEL))]


def limit_text(t: Translator, limit: int | None) -> str:
    if limit is None:
        return t.plain("group-no-limit")
    return t.usd(limit)


async def group_context(repo: Repo, message: Message) -> tuple[Chat, Wallet]:
    """The group's row and wallet, created if the bot was added before it kept them."""
    chat = await repo.chats.get(message.chat.id)
    wallet = await group_service.group_wallet(repo, message.chat.id)
    if chat is None or wallet is None:
        chat, wallet, _ = await group_service.ensure_group(
            repo, message.chat.id, chat_type=message.chat.type, title=message.chat.title
        )
    return chat, wallet


async def panel_view(
    t: Translator, repo: Repo, chat: Chat, wallet: Wallet, user: User, note: str | None = None
) -> tuple[str, InlineKeyboardMarkup]:
    today = await group_service.member_today(repo, chat, wallet, user.id)
    current = await repo.wallets.get(wallet.id) or wallet
    lines = [
        t(
            "group-panel",
            title=chat.title or "",
            balance=t.usd(current.balance),
            limit=limit_text(t, chat.member_daily_limit_units),
            spent=t.usd(today.spent),
        )
    ]
    if today.remaining is not None:
        lines.append(t("group-panel-left", left=t.usd(today.remaining)))
    if note:
        lines.insert(0, note + "\n")
    keyboard = markup(
        [
            [
                button(t.plain("group-fund-button"), GroupCb(action=GroupAction.FUND)),
                button(t.plain("group-stars-button"), GroupCb(action=GroupAction.STARS)),
            ],
            [
                button(t.plain("group-limit-button"), GroupCb(action=GroupAction.LIMIT)),
                button(t.plain("group-spending-button"), GroupCb(action=GroupAction.SPENDING)),
            ],
        ]
    )
    return "\n".join(lines), keyboard


async def show_panel(
    query: CallbackQuery,
    db: Database,
    repo: Repo,
    message: Message,
    user: User,
    t: Translator,
    note: str | None = None,
) -> None:
    chat, wallet = await group_context(repo, message)
    text, keyboard = await panel_view(t, repo, chat, wallet, user, note)
    await edit_or_send(query, text, keyboard)


async def command_amount(message: Message, text: str, t: Translator) -> int | None:
    """The USD amount a command names, or None after telling the sender what is wrong."""
    try:
        return parse_amount(text)
    except BadAmount as exc:
        await message.reply(
            t(f"admin-amount-{exc.reason}", text=exc.text[:32], max=t.usd(exc.max_units))
        )
        return None
