"""Search by typing: any plain text in a private chat that no other handler took."""

from __future__ import annotations

from aiogram import F, Router
from aiogram.types import Message

from bot.services.catalogue import Catalogue
from bot.telegram.i18n import Translator
from bot.telegram.keyboards import services_button_keyboard, services_keyboard
from storage.models import User

MAX_QUERY = 64


async def search(message: Message, t: Translator, catalogue: Catalogue, user: User) -> None:
    query = " ".join((message.text or "").split())[:MAX_QUERY]
    country = await catalogue.default_country()
    hits = await catalogue.search(country, query)
    if not hits:
        await message.answer(
            t("search-none", query=query), reply_markup=services_button_keyboard(t, country)
        )
        return
    favourites = await catalogue.favourites(user.id)
    keyboard = services_keyboard(
        t, hits, country=country, page=0, pages=1, favourites=favourites, paged=False
    )
    await message.answer(t("search-results", query=query), reply_markup=keyboard)


def build_router() -> Router:
    router = Router(name=__name__)
    router.message.filter(F.chat.type == "private")
    router.message.register(search, F.text & ~F.text.startswith("/"))
    return router
