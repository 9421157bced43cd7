"""The service picker (pages; favourites, recent and popular first) and the pool picker."""

from __future__ import annotations

from aiogram import F, Router
from aiogram.filters import Command
from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message
from aiogram.utils.callback_answer import CallbackAnswer

from bot.services.catalogue import Catalogue, Service, page_of
from bot.telegram.callbacks import (
    CountryCb,
    FavouritesCb,
    MenuAction,
    MenuCb,
    ServiceAction,
    ServiceCb,
    ServicesCb,
)
from bot.telegram.i18n import Translator
from bot.telegram.keyboards import (
    countries_keyboard,
    favourites_keyboard,
    pools_keyboard,
    retry_keyboard,
    services_button_keyboard,
    services_keyboard,
)
from bot.telegram.replies import edit_or_send
from storage.models import User


async def _paged_view(
    t: Translator,
    catalogue: Catalogue,
    user: User,
    country: str,
    page: int,
    *,
    editor: bool,
) -> tuple[str, InlineKeyboardMarkup]:
    """A page of the service list, or of the favourites editor. The editor keeps the
    catalogue's order, not favourites first: a toggled row must not move under the finger."""
    services = await (
        catalogue.services(country) if editor else catalogue.for_user(user.id, country)
    )
    if not services:
        return t("services-empty"), services_button_keyboard(t, country)
    shown, page, pages = page_of(services, page)
    favourites = await catalogue.favourites(user.id)
    text = t("favourites-text" if editor else "services-text")
    if pages > 1:
        text += "\n" + t("services-page", page=page + 1, pages=pages)
    build = favourites_keyboard if editor else services_keyboard
    keyboard = build(t, shown, country=country, page=page, pages=pages, favourites=favourites)
    return text, keyboard


async def services_view(
    t: Translator, catalogue: Catalogue, user: User, country: str, page: int
) -> tuple[str, InlineKeyboardMarkup]:
    return await _paged_view(t, catalogue, user, country, page, editor=False)


async def favourites_view(
    t: Translator, catalogue: Catalogue, user: User, country: str, page: int
) -> tuple[str, InlineKeyboardMarkup]:
    return await _paged_view(t, catalogue, user, country, page, editor=True)


def pools_view(
    t: Translator, service: Service, country: str, page: int
) -> tuple[str, InlineKeyboardMarkup]:
    if not service.multi_pool:
        # A stale "open pools" button of a service that became single-pool: buy it directly.
        keyboard = retry_keyboard(t, country, service, None, service.price_units)
        return t("pools-text", name=service.name), keyboard
    key = "pools-text" if service.available else "pools-none"
    return t(key, name=service.name), pools_keyboard(t, service, country=country, page=page)


async def first_screen(
    t: Translator, catalogue: Catalogue, user: User
) -> tuple[str, InlineKeyboardMarkup]:
    countries = await catalogue.countries()
    if len(countries) > 1:
        return t("countries-text"), countries_keyboard(t, countries)
    country = countries[0].id if countries else await catalogue.default_country()
    return await services_view(t, catalogue, user, country, 0)


async def buy_command(message: Message, t: Translator, catalogue: Catalogue, user: User) -> None:
    text, keyboard = await first_screen(t, catalogue, user)
    await message.answer(text, reply_markup=keyboard)


async def buy_menu(query: CallbackQuery, t: Translator, catalogue: Catalogue, user: User) -> None:
    text, keyboard = await first_screen(t, catalogue, user)
    await edit_or_send(query, text, keyboard)


async def country_chosen(
    query: CallbackQuery,
    callback_data: CountryCb,
    t: Translator,
    catalogue: Catalogue,
    user: User,
) -> None:
    text, keyboard = await services_view(t, catalogue, user, callback_data.country, 0)
    await edit_or_send(query, text, keyboard)


async def services_page(
    query: CallbackQuery,
    callback_data: ServicesCb,
    t: Translator,
    catalogue: Catalogue,
    user: User,
) -> None:
    text, keyboard = await services_view(
        t, catalogue, user, callback_data.country, callback_data.page
    )
    await edit_or_send(query, text, keyboard)


async def open_service(
    query: CallbackQuery, callback_data: ServiceCb, t: Translator, catalogue: Catalogue
) -> None:
    service = await catalogue.find(callback_data.country, callback_data.ref)
    if service is None:
        await edit_or_send(
            query,
            t("buy-gone", name=callback_data.ref),
            services_button_keyboard(t, callback_data.country),
        )
        return
    text, keyboard = pools_view(t, service, callback_data.country, callback_data.page)
    await edit_or_send(query, text, keyboard)


async def favourites_page(
    query: CallbackQuery,
    callback_data: FavouritesCb,
    t: Translator,
    catalogue: Catalogue,
    user: User,
) -> None:
    text, keyboard = await favourites_view(
        t, catalogue, user, callback_data.country, callback_data.page
    )
    await edit_or_send(query, text, keyboard)


async def toggle_star(
    query: CallbackQuery,
    callback_data: ServiceCb,
    t: Translator,
    catalogue: Catalogue,
    user: User,
    callback_answer: CallbackAnswer,
) -> None:
    service = await catalogue.find(callback_data.country, callback_data.ref)
    if service is None:
        callback_answer.text = t.plain("stale-answer")
        return
    starred = await catalogue.toggle_favourite(user.id, service.code)
    callback_answer.text = t.plain("star-added" if starred else "star-removed")
    # The editor's page again, in the same order, with this star flipped (a ☆ from an
    # older list message turns that message into the editor, which says what happened).
    text, keyboard = await favourites_view(
        t, catalogue, user, callback_data.country, callback_data.page
    )
    await edit_or_send(query, text, keyboard)


def build_router() -> Router:
    router = Router(name=__name__)
    router.message.filter(F.chat.type == "private")
    router.message.register(buy_command, Command("buy"))
    router.callback_query.register(buy_menu, MenuCb.filter(F.action == MenuAction.BUY))
    router.callback_query.register(country_chosen, CountryCb.filter())
    router.callback_query.register(services_page, ServicesCb.filter())
    router.callback_query.register(open_service, ServiceCb.filter(F.action == ServiceAction.OPEN))
    router.callback_query.register(toggle_star, ServiceCb.filter(F.action == ServiceAction.STAR))
    router.callback_query.register(favourites_page, FavouritesCb.filter())
    return router
