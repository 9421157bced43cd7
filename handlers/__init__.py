"""The bot's routers, one per feature, and the one place that fixes their order."""

from __future__ import annotations

from aiogram import Router

from handlers import activation, balance, catalogue, errors, numbers, purchase, search, stale, start


def build_routers() -> list[Router]:
    """Fresh routers in the order they must see an update.

    A router takes an update as soon as one of its filters matches, so the order matters
    only between handlers whose filters overlap:
    - `search` takes ANY plain text, so it comes after every command handler;
    - `stale` takes ANY callback query and ANY private message, so it comes last of all,
      after everything that could have handled them;
    - `errors` only sees error events, which no other router handles; its place is free.
    Built fresh on each call (never module globals) so each test gets its own dispatcher.
    """
    return [
        errors.build_router(),
        start.build_router(),
        catalogue.build_router(),
        purchase.build_router(),
        activation.build_router(),
        numbers.build_router(),
        balance.build_router(),
        search.build_router(),
        stale.build_router(),
    ]
