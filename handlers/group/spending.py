"""What the group wallet paid for, today and this month, per member (group admins only)."""

from __future__ import annotations

from aiogram import F, Router
from aiogram.filters import Command
from aiogram.types import CallbackQuery, Message

from bot.services import groups as group_service
from bot.telegram.callbacks import GroupAction, GroupCb
from bot.telegram.group_views import back_row
from bot.telegram.i18n import Translator
from bot.telegram.keyboards import markup
from bot.telegram.replies import edit_or_send, pressed_message
from storage.repo import Repo


async def spending_text(repo: Repo, chat_id: int, t: Translator) -> str:
    report = await group_service.spending(repo, chat_id)
    if report is None:
        return t("group-spending-none")
    names: dict[int, str] = {}
    for member in {m.user_id for m in report.month}:
        known = await repo.users.get(member)
        names[member] = known.first_name if known and known.first_name else str(member)
    lines = [
        t(
            "group-spending",
            balance=t.usd(report.wallet.balance),
            today=t.usd(report.today_units),
            month=t.usd(report.month_units),
            funded=t.usd(report.funded_month),
        )
    ]
    if report.today:
        lines.append(t("group-spending-today"))
        lines.extend(
            t(
                "group-spending-line",
                name=names.get(m.user_id, str(m.user_id)),
                count=m.count,
                amount=t.usd(m.units),
            )
            for m in report.today
        )
    if report.month:
        lines.append(t("group-spending-month"))
        lines.extend(
            t(
                "group-spending-line",
                name=names.get(m.user_id, str(m.user_id)),
                count=m.count,
                amount=t.usd(m.units),
            )
            for m in report.month
        )
    return "\n".join(lines)


async def spending_button(query: CallbackQuery, repo: Repo, t: Translator) -> None:
    message = pressed_message(query)
    if message is None:
        return
    await edit_or_send(query, await spending_text(repo, message.chat.id, t), markup([back_row(t)]))


async def spending_command(message: Message, repo: Repo, t: Translator) -> None:
    await message.answer(await spending_text(repo, message.chat.id, t))


def build_router() -> Router:
    router = Router(name=__name__)
    router.callback_query.register(
        spending_button, GroupCb.filter(F.action == GroupAction.SPENDING)
    )
    router.message.register(spending_command, Command("spending"))
    return router
