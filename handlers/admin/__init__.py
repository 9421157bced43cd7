"""The bot admins' panel (`/admin`, ADMIN_IDS only): stats and the upstream balance, user
lookup with top-up, ban and unban, Stars refunds, broadcasts, the markup, promo codes and the
ledger export.

The package router's filter lets only admins in, in private chats: for anyone else `/admin`,
`/topup` and the rest fall through to the catch-all, which answers them like any unknown
command, and an admin button pressed by someone else is just a stale button. Every button
is checked again by that filter (ADMIN_IDS), never trusted from its data. The feature routers
below it have no filter of their own for who may use them.
"""

from __future__ import annotations

from aiogram import F, Router

from bot.telegram.filters import IsAdmin
from handlers.admin import (
    broadcast,
    export,
    maintenance,
    panel,
    price_markup,
    promo,
    refunds,
    topup,
    users,
)


def build_router() -> Router:
    router = Router(name=__name__)
    router.message.filter(F.chat.type == "private", IsAdmin())
    router.callback_query.filter(IsAdmin())
    # Their filters never overlap (distinct commands, actions and FSM states): any order works.
    router.include_routers(
        panel.build_router(),
        users.build_router(),
        topup.build_router(),
        refunds.build_router(),
        broadcast.build_router(),
        price_markup.build_router(),
        export.build_router(),
        maintenance.build_router(),
        promo.build_router(),
    )
    return router
