"""Groups: the bot added to a group opens a group wallet; the group's admins fund it (from their
own wallet or with Stars), set a per-member daily limit and see the spending; members buy with
/buy, paid by the group wallet within their limit.

Who is a group admin is asked from Telegram (getChatMember, the IsGroupAdmin filter on the
admin router) on every admin action, never cached and never read from callback data. The group
is always the chat a button or command is in. This package's router sees group updates before
the private-chat feature routers, so a buy button pressed in a group is paid by the group,
never by the presser's own wallet.

Inside the group-chat router the order matters twice: the admin router, then the answer for
those it did not let in (same updates, no admin filter); and the catch-all for stray
buttons last.
"""

from __future__ import annotations

from aiogram import F, Router
from aiogram.filters import Command

from bot.telegram.callbacks import GroupAction, GroupCb
from bot.telegram.filters import IsGroupAdmin
from handlers.group import (
    admins_only,
    buy,
    cards,
    funding,
    limits,
    membership,
    panel,
    preferences,
    spending,
    stray,
)

# What only a group's admins may do: the admin router takes these (and only these, so no
# other update costs a getChatMember), the admins_only router answers everyone else.
ADMIN_COMMANDS = ("fund", "limit", "spending")
ADMIN_ACTIONS = frozenset(
    {
        GroupAction.FUND,
        GroupAction.FUND_AMOUNT,
        GroupAction.STARS,
        GroupAction.STARS_AMOUNT,
        GroupAction.CRYPTO,
        GroupAction.CRYPTO_AMOUNT,
        GroupAction.LIMIT,
        GroupAction.LIMIT_SET,
        GroupAction.SPENDING,
    }
)


def _admin_router() -> Router:
    router = Router(name=f"{__name__}.admin")
    router.message.filter(Command(*ADMIN_COMMANDS), IsGroupAdmin())
    router.callback_query.filter(GroupCb.filter(F.action.in_(ADMIN_ACTIONS)), IsGroupAdmin())
    router.include_routers(funding.build_router(), limits.build_router(), spending.build_router())
    return router


def build_router() -> Router:
    """Membership (any chat), then the group-chat routers, then the private preference."""
    root = Router(name=__name__)
    in_group = Router(name=f"{__name__}.in_group")
    in_group.message.filter(F.chat.type.in_(membership.GROUP_TYPES))
    in_group.callback_query.filter(F.message.chat.type.in_(membership.GROUP_TYPES))
    in_group.include_routers(
        panel.build_router(),
        _admin_router(),
        admins_only.build_router(ADMIN_COMMANDS, ADMIN_ACTIONS),
        buy.build_router(),
        cards.build_router(),
        stray.build_router(),
    )
    private = Router(name=f"{__name__}.private")
    private.message.filter(F.chat.type == "private")
    private.callback_query.filter(F.message.chat.type == "private")
    private.include_router(preferences.build_router())
    root.include_routers(membership.build_router(), in_group, private)
    return root
