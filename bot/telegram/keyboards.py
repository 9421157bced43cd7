"""Inline keyboards. Labels come from the translator; callback data from `callbacks`."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence

from aiogram.filters.callback_data import CallbackData
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup

from bot.daisysim import Country
from bot.services.catalogue import Pool, Service
from bot.telegram.callbacks import (
    ActAction,
    ActCb,
    BuyCb,
    CountryCb,
    FavouritesCb,
    HistoryCb,
    HistoryFilter,
    LangCb,
    MenuAction,
    MenuCb,
    ServiceAction,
    ServiceCb,
    ServicesCb,
    TopupCb,
    new_nonce,
)
from bot.telegram.i18n import LANGUAGES, Translator

logger = logging.getLogger(__name__)

Rows = list[list[InlineKeyboardButton]]


def button(text: str, data: CallbackData) -> InlineKeyboardButton:
    return InlineKeyboardButton(text=text, callback_data=data.pack())


def markup(rows: Rows) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(inline_keyboard=rows)


def main_menu(t: Translator) -> InlineKeyboardMarkup:
    return markup(
        [
            [button(t.plain("menu-buy"), MenuCb(action=MenuAction.BUY))],
            [
                button(t.plain("menu-numbers"), MenuCb(action=MenuAction.NUMBERS)),
                button(t.plain("menu-balance"), MenuCb(action=MenuAction.BALANCE)),
            ],
            [
                button(t.plain("menu-help"), MenuCb(action=MenuAction.HELP)),
                button(t.plain("menu-language"), MenuCb(action=MenuAction.LANGUAGE)),
            ],
        ]
    )


def menu_row(t: Translator) -> list[InlineKeyboardButton]:
    return [button(t.plain("menu-back"), MenuCb(action=MenuAction.MAIN))]


def back_to_menu(t: Translator) -> InlineKeyboardMarkup:
    return markup([menu_row(t)])


def language_keyboard(t: Translator) -> InlineKeyboardMarkup:
    row = [button(t.plain(f"language-{lang}"), LangCb(lang=lang)) for lang in LANGUAGES]
    return markup([row, menu_row(t)])


def countries_keyboard(t: Translator, countries: Sequence[Country]) -> InlineKeyboardMarkup:
    rows = [[button(c.name, CountryCb(country=c.id))] for c in countries]
    rows.append(menu_row(t))
    return markup(rows)


def buy_button(
    label: str, country: str, service: Service, pool: str | None, price_units: int
) -> InlineKeyboardButton | None:
    """A button that buys at `price_units`, with its own nonce (None if it cannot be packed)."""
    try:
        data = BuyCb(
            country=country, ref=service.ref, pool=pool or "", price=price_units, nonce=new_nonce()
        )
        return button(label, data)
    except ValueError:
        # An upstream id longer than callback data allows; better one missing button than none.
        logger.warning("cannot build a buy button for %s pool %s", service.code, pool)
        return None


def service_label(t: Translator, service: Service) -> str:
    price = t.usd(service.price_units)
    if not service.multi_pool:
        return t.plain("service-button", name=service.name, price=price)
    if not service.available:
        return t.plain("service-soldout-button", name=service.name)
    return t.plain("service-multi-button", name=service.name, price=price)


def service_row(
    t: Translator, service: Service, country: str, page: int, starred: bool
) -> list[InlineKeyboardButton] | None:
    """One service, the whole width of the chat (a phone shows the name and price without
    wrapping): tapping a single-pool service buys it; a multi-pool one opens its pools. A
    favourite carries a ⭐; stars are set on the favourites screen."""
    label = service_label(t, service)
    if starred:
        label = t.plain("service-starred", label=label)
    main: InlineKeyboardButton | None
    try:
        if service.multi_pool:
            main = button(
                label,
                ServiceCb(action=ServiceAction.OPEN, country=country, ref=service.ref, page=page),
            )
        else:
            main = buy_button(label, country, service, None, service.price_units)
    except ValueError:
        main = None
    if main is None:
        return None
    return [main]


def favourites_keyboard(
    t: Translator,
    services: Iterable[Service],
    *,
    country: str,
    page: int,
    pages: int,
    favourites: set[str],
) -> InlineKeyboardMarkup:
    """The favourites editor: one toggle a service, then the pages and back to the list."""
    rows: Rows = []
    for service in services:
        key = "favourite-on-button" if service.code in favourites else "favourite-off-button"
        try:
            data = ServiceCb(action=ServiceAction.STAR, country=country, ref=service.ref, page=page)
            rows.append([button(t.plain(key, name=service.name), data)])
        except ValueError:
            continue
    nav: list[InlineKeyboardButton] = []
    if page > 0:
        nav.append(
            button(t.plain("page-prev-button"), FavouritesCb(country=country, page=page - 1))
        )
    if page < pages - 1:
        nav.append(
            button(t.plain("page-next-button"), FavouritesCb(country=country, page=page + 1))
        )
    if nav:
        rows.append(nav)
    rows.append([button(t.plain("favourites-done-button"), ServicesCb(country=country, page=0))])
    return markup(rows)


def services_keyboard(
    t: Translator,
    services: Iterable[Service],
    *,
    country: str,
    page: int,
    pages: int,
    favourites: set[str],
    paged: bool = True,
) -> InlineKeyboardMarkup:
    rows: Rows = []
    for service in services:
        row = service_row(t, service, country, page, service.code in favourites)
        if row is not None:
            rows.append(row)
    if paged and pages > 1:
        nav: list[InlineKeyboardButton] = []
        if page > 0:
            nav.append(
                button(t.plain("page-prev-button"), ServicesCb(country=country, page=page - 1))
            )
        if page < pages - 1:
            nav.append(
                button(t.plain("page-next-button"), ServicesCb(country=country, page=page + 1))
            )
        rows.append(nav)
    if not paged:
        rows.append([button(t.plain("services-button"), ServicesCb(country=country, page=0))])
    else:
        rows.append(
            [button(t.plain("favourites-button"), FavouritesCb(country=country, page=page))]
        )
    rows.append(menu_row(t))
    return markup(rows)


def pool_label(t: Translator, pool: Pool) -> str:
    return t.plain(
        "pool-button", pool=pool.provider_id, price=t.usd(pool.price_units), count=pool.count
    )


def pools_keyboard(
    t: Translator,
    service: Service,
    *,
    country: str,
    page: int = 0,
    excluding: str | None = None,
) -> InlineKeyboardMarkup:
    """ "Cheapest available" first (it omits provider_id), then every pool that has stock."""
    rows: Rows = []
    in_stock = service.pools_in_stock(excluding=excluding)
    if in_stock or not service.pools:
        cheapest = buy_button(
            t.plain("pool-cheapest-button", price=t.usd(service.price_units)),
            country,
            service,
            None,
            service.price_units,
        )
        if cheapest is not None:
            rows.append([cheapest])
    for pool in in_stock:
        pinned = buy_button(
            pool_label(t, pool), country, service, pool.provider_id, pool.price_units
        )
        if pinned is not None:
            rows.append([pinned])
    if not rows:
        # Nothing to buy now: offer to look again rather than a dead end.
        rows.append(
            [
                button(
                    t.plain("retry-button"),
                    ServiceCb(
                        action=ServiceAction.OPEN, country=country, ref=service.ref, page=page
                    ),
                )
            ]
        )
    rows.append([button(t.plain("services-button"), ServicesCb(country=country, page=page))])
    return markup(rows)


def retry_keyboard(
    t: Translator, country: str, service: Service, pool: str | None, price_units: int
) -> InlineKeyboardMarkup:
    """Try the same purchase again (a fresh nonce), or go back to the list."""
    return _buy_or_back(t, "retry-price-button", country, service, pool, price_units)


def confirm_price_keyboard(
    t: Translator, country: str, service: Service, pool: str | None, price_units: int
) -> InlineKeyboardMarkup:
    return _buy_or_back(t, "buy-confirm-button", country, service, pool, price_units)


def _buy_or_back(
    t: Translator, key: str, country: str, service: Service, pool: str | None, price_units: int
) -> InlineKeyboardMarkup:
    """A buy button labelled `key` with the price (when it fits), then back to the list."""
    rows: Rows = []
    buy = buy_button(t.plain(key, price=t.usd(price_units)), country, service, pool, price_units)
    if buy is not None:
        rows.append([buy])
    rows.append([button(t.plain("services-button"), ServicesCb(country=country, page=0))])
    return markup(rows)


def services_button_keyboard(t: Translator, country: str) -> InlineKeyboardMarkup:
    return markup(
        [[button(t.plain("services-button"), ServicesCb(country=country, page=0))], menu_row(t)]
    )


def insufficient_keyboard(
    t: Translator, country: str, top_up_and_buy: InlineKeyboardButton | None = None
) -> InlineKeyboardMarkup:
    first = [] if top_up_and_buy is None else [[top_up_and_buy]]
    return markup(
        [
            *first,
            # Straight to the amounts: the user came to buy, not to read a balance screen.
            [button(t.plain("topup-button"), TopupCb(units=0))],
            [button(t.plain("menu-balance"), MenuCb(action=MenuAction.BALANCE))],
            [button(t.plain("services-button"), ServicesCb(country=country, page=0))],
        ]
    )


def balance_keyboard(t: Translator) -> InlineKeyboardMarkup:
    return markup(
        [
            [button(t.plain("topup-button"), TopupCb(units=0))],
            [
                button(t.plain("promo-button"), MenuCb(action=MenuAction.PROMO)),
                button(t.plain("invite-button"), MenuCb(action=MenuAction.INVITE)),
            ],
            [button(t.plain("balance-refresh"), MenuCb(action=MenuAction.BALANCE))],
            menu_row(t),
        ]
    )


def history_keyboard(
    t: Translator,
    *,
    current: HistoryFilter,
    page: int,
    pages: int,
    open_buttons: Sequence[tuple[str, int]],
) -> InlineKeyboardMarkup:
    """Buttons to reopen the active cards, the status filter, paging and the menu."""
    rows: Rows = [
        [button(label, ActCb(action=ActAction.SHOW, id=activation_id))]
        for label, activation_id in open_buttons
    ]
    filters = []
    for item, key in (
        (HistoryFilter.ALL, "numbers-filter-all"),
        (HistoryFilter.ACTIVE, "numbers-filter-active"),
        (HistoryFilter.COMPLETED, "numbers-filter-completed"),
        (HistoryFilter.REFUNDED, "numbers-filter-refunded"),
    ):
        label = t.plain(key)
        filters.append(
            button(f"• {label}" if item == current else label, HistoryCb(status=item, page=0))
        )
    # Two a row: four in one row truncate on a phone ("Refun…").
    rows.extend([filters[:2], filters[2:]])
    if pages > 1:
        nav: list[InlineKeyboardButton] = []
        if page > 0:
            nav.append(
                button(t.plain("page-prev-button"), HistoryCb(status=current, page=page - 1))
            )
        if page < pages - 1:
            nav.append(
                button(t.plain("page-next-button"), HistoryCb(status=current, page=page + 1))
            )
        rows.append(nav)
    rows.append(menu_row(t))
    return markup(rows)


def group_services_keyboard(
    t: Translator, services: Iterable[Service], *, country: str, page: int, pages: int
) -> InlineKeyboardMarkup:
    """The service list for a group: no favourites and no menu, which belong to a private
    chat; a single-pool service buys at once, a multi-pool one opens its pools."""
    rows: Rows = []
    for service in services:
        label = service_label(t, service)
        if service.multi_pool:
            try:
                data = ServiceCb(
                    action=ServiceAction.OPEN, country=country, ref=service.ref, page=page
                )
                rows.append([button(label, data)])
            except ValueError:
                continue
        else:
            buy = buy_button(label, country, service, None, service.price_units)
            if buy is not None:
                rows.append([buy])
    nav: list[InlineKeyboardButton] = []
    if page > 0:
        nav.append(button(t.plain("page-prev-button"), ServicesCb(country=country, page=page - 1)))
    if page < pages - 1:
        nav.append(button(t.plain("page-next-button"), ServicesCb(country=country, page=page + 1)))
    if nav:
        rows.append(nav)
    return markup(rows)
