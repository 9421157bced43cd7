"""Referrals: who invited whom (`/start ref_<id>`), and the referrer's share of the purchases
of the friends they brought.

A user is tied to a referrer once, only by the /start that creates their user row (a user
new to the bot), never to themselves and never again after. The referrer earns
REFERRAL_PERCENT of each purchase that gets its code, up to REFERRAL_CAP_USD per referee,
credited by `money.credit_referral` in the transaction that stores the code (`settle`).

The terms live in the settings table, as the markup does: every path that stores a code (the
poller, a user's check, reconciliation, in this process or another) reads the same terms in
its own transaction. The bot writes REFERRAL_PERCENT and REFERRAL_CAP_USD there at start-up.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Final, Literal

from bot.services import money
from bot.services.money import NoticeHook
from storage.db import Transaction
from storage.models import Activation
from storage.repo import Repo

log = logging.getLogger(__name__)

PERCENT_KEY: Final = "referral_percent"
CAP_UNITS_KEY: Final = "referral_cap_units"
REF_PREFIX: Final = "ref_"
_PAYLOAD = re.compile(r"^ref_(\d{1,15})$")

TieOutcome = Literal["tied", "invalid", "unknown", "self", "not_new", "already"]


@dataclass(frozen=True, slots=True)
class ReferralTerms:
    percent: Decimal
    cap_units: int

    @property
    def enabled(self) -> bool:
        return self.percent > 0 and self.cap_units > 0


OFF: Final = ReferralTerms(Decimal(0), 0)


async def store_terms(repo: Repo, terms: ReferralTerms) -> None:
    async with repo.db.transaction() as tx:
        await repo.settings.set(PERCENT_KEY, str(terms.percent), tx=tx)
        await repo.settings.set(CAP_UNITS_KEY, str(terms.cap_units), tx=tx)


async def current_terms(repo: Repo, *, tx: Transaction | None = None) -> ReferralTerms:
    """The terms the bot started with; off when none were stored (or they do not parse)."""
    percent = await repo.settings.get(PERCENT_KEY, tx=tx)
    cap = await repo.settings.get(CAP_UNITS_KEY, tx=tx)
    if percent is None or cap is None:
        return OFF
    try:
        return ReferralTerms(Decimal(percent), int(cap))
    except (InvalidOperation, ValueError):
        log.warning("referral terms in the settings table do not parse: %r, %r", percent, cap)
        return OFF


def invite_payload(user_id: int) -> str:
    return f"{REF_PREFIX}{user_id}"


def parse_payload(payload: str) -> int | None:
    """The referrer's id of a `ref_<digits>` start payload, else None."""
    match = _PAYLOAD.match(payload)
    return int(match[1]) if match else None


async def tie(repo: Repo, *, referee_id: int, payload: str, new_user: bool) -> TieOutcome:
    """Tie a user who started the bot through an invite link to the inviter, once.

    `new_user`: this /start created the user's row. Only then is anyone tied: a user who
    knew the bot before is nobody's referee. The referrer must exist and be someone else.
    """
    referrer_id = parse_payload(payload)
    if referrer_id is None:
        return "invalid"
    if referrer_id == referee_id:
        return "self"
    if not new_user:
        return "not_new"
    async with repo.db.transaction() as tx:
        if await repo.users.get(referrer_id, tx=tx) is None:
            return "unknown"
        if not await repo.referrals.tie(tx, referee_id=referee_id, referrer_id=referrer_id):
            return "already"
    log.info("user %d tied to referrer %d", referee_id, referrer_id)
    return "tied"


async def reward(
    repo: Repo, tx: Transaction, activation: Activation, *, notice: NoticeHook | None = None
) -> money.Movement | None:
    """The referrer's share of a purchase that just got its code, inside `tx`."""
    terms = await current_terms(repo, tx=tx)
    if not terms.enabled:
        return None
    return await money.credit_referral(
        repo, tx, activation, percent=terms.percent, cap_units=terms.cap_units, notice=notice
    )


@dataclass(frozen=True, slots=True)
class InviteInfo:
    payload: str
    friends: int
    earned_units: int
    terms: ReferralTerms


async def invite_info(repo: Repo, user_id: int) -> InviteInfo:
    summary = await repo.referrals.summary(user_id)
    return InviteInfo(
        payload=invite_payload(user_id),
        friends=summary.friends,
        earned_units=summary.earned_units,
        terms=await current_terms(repo),
    )
