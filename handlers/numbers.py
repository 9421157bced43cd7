"""My numbers: the active ones first, then the history, with paging and a status filter."""

from __future__ import annotations

from aiogram import F, Router
from aiogram.filters import Command
from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message

from bot.telegram.callbacks import HistoryCb, HistoryFilter, MenuAction, MenuCb
from bot.telegram.i18n import Translator
from bot.telegram.keyboards import history_keyboard
from bot.telegram.replies import edit_or_send
from storage.models import ACTIVE_STATES, REFUNDED_STATES, Activation, User
from storage.repo import Repo

PAGE_SIZE = 5

_STATES: dict[HistoryFilter, tuple[str, ...] | None] = {
    HistoryFilter.ALL: None,
    HistoryFilter.ACTIVE: ACTIVE_STATES,
    HistoryFilter.COMPLETED: ("completed",),
    HistoryFilter.REFUNDED: REFUNDED_STATES,
}


def _line(t: Translator, activation: Activation) -> str:
    args: dict[str, str | int] = {
        "service": activation.service_name,
        "phone": activation.phone_number or t.plain("card-no-number"),
        "price": t.usd(activation.user_price),
        "date": t.when(activation.created_at),
    }
    if activation.code:
        return t("numbers-line-code", code=activation.code, **args)
    return t("numbers-line", status=t(f"numbers-status-{activation.state}"), **args)


async def numbers_view(
    t: Translator, repo: Repo, user: User, current: HistoryFilter, page: int
) -> tuple[str, InlineKeyboardMarkup]:
    states = _STATES[current]
    total = await repo.activations.count_for_user(user.id, states=states)
    pages = max(1, -(-total // PAGE_SIZE))
    page = min(max(page, 0), pages - 1)
    items = await repo.activations.list_for_user(
        user.id, states=states, limit=PAGE_SIZE, offset=page * PAGE_SIZE
    )
    parts = [t("numbers-text")]
    active = [a for a in items if a.state in ACTIVE_STATES]
    history = [a for a in items if a.state not in ACTIVE_STATES]
    if active:
        parts.append(t("numbers-active") + "\n" + "\n".join(_line(t, a) for a in active))
    if history:
        parts.append(t("numbers-history") + "\n" + "\n".join(_line(t, a) for a in history))
    if not items:
        parts.append(t("numbers-empty"))
    if pages > 1:
        parts.append(t("services-page", page=page + 1, pages=pages))
    buttons = [
        (
            t.plain(
                "numbers-open-button",
                service=a.service_name,
                phone=a.phone_number or t.plain("card-no-number"),
            ),
            a.id,
        )
        for a in items
    ]
    keyboard = history_keyboard(t, current=current, page=page, pages=pages, open_buttons=buttons)
    return "\n\n".join(parts), keyboard


async def numbers_command(message: Message, t: Translator, repo: Repo, user: User) -> None:
    text, keyboard = await numbers_view(t, repo, user, HistoryFilter.ALL, 0)
    await message.answer(text, reply_markup=keyboard)


async def numbers_menu(query: CallbackQuery, t: Translator, repo: Repo, user: User) -> None:
    text, keyboard = await numbers_view(t, repo, user, HistoryFilter.ALL, 0)
    await edit_or_send(query, text, keyboard)


async def numbers_page(
    query: CallbackQuery, callback_data: HistoryCb, t: Translator, repo: Repo, user: User
) -> None:
    text, keyboard = await numbers_view(t, repo, user, callback_data.status, callback_data.page)
    await edit_or_send(query, text, keyboard)


def build_router() -> Router:
    router = Router(name=__name__)
    router.message.filter(F.chat.type == "private")
    router.message.register(numbers_command, Command("numbers"))
    router.callback_query.register(numbers_menu, MenuCb.filter(F.action == MenuAction.NUMBERS))
    router.callback_query.register(numbers_page, HistoryCb.filter())
    return router
