"""The bot's routers, one per feature (packages for the big ones), and the one place that fixes
their order."""

from __future__ import annotations

from aiogram import Router

from handlers import (
    activation,
    admin,
    balance,
    catalogue,
    crypto,
    errors,
    group,
    numbers,
    promo,
    purchase,
    queue,
    search,
    stale,
    start,
    topup,
)


def build_routers() -> list[Router]:
    """Fresh routers in the order they must see an update.

    A router takes an update as soon as one of its filters matches, so the order matters
    only between handlers whose filters overlap:
    - `search` takes ANY plain text, so it comes after every command handler, and after
      `promo`, which takes a line that is one of our promo codes (and the line asked for by
      the Balance screen's "Promo code");
    - `stale` takes ANY callback query and ANY private message, so it comes last of all,
      after everything that could have handled them;
    - `errors` only sees error events, which no other router handles; its place is free;
    - `group` (a package) only sees updates from groups (and `/settings`, the private
      preference of where group purchases go), and must see them before the feature routers
      below, whose buy, pool and card buttons would otherwise charge the presser's own
      wallet for a purchase made in a group; its own order (the IsGroupAdmin router, then
      the "admins only" answer, then the catch-all for stray buttons) is in its package;
    - `admin` (a package; IsAdmin on its router: ADMIN_IDS only) comes before `search`,
      which would take the text an admin types when asked for an amount, a user or a
      broadcast;
    - `topup` handles payment service messages, which `stale` would answer with the menu;
    - `crypto` takes the amount typed on the Crypto Pay screen, so it comes before `search`.
    Built fresh on each call (never module globals) so each test gets its own dispatcher:
    an aiogram Router can be attached to one parent only.
    """
    return [
        errors.build_router(),
        group.build_router(),
        admin.build_router(),
        topup.build_router(),
        crypto.build_router(),
        start.build_router(),
        catalogue.build_router(),
        purchase.build_router(),
        queue.build_router(),
        activation.build_router(),
        numbers.build_router(),
        balance.build_router(),
        promo.build_router(),
        search.build_router(),
        stale.build_router(),
    ]
