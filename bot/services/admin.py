"""What the bot admins (ADMIN_IDS) do: stats, user lookup, bans, the markup, broadcasts,
the ledger export and the upstream balance alert.

Plain functions over the repositories and the DaisySim client; the admin router renders their
results. Anything sent to many people (broadcasts, alerts) is reported to the notifier inside
the transaction that decides it, never sent from here.
"""

from __future__ import annotations

import csv
import io
import logging
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Final

from bot.config import Settings
from bot.daisysim import DaisySimClient, DaisySimError
from bot.money import UNITS_PER_USD, to_decimal
from bot.services.catalogue import MARKUP_FIXED_UNITS_KEY, MARKUP_PERCENT_KEY, Markup
from bot.services.errors import AppError
from bot.services.money import day_start
from bot.services.notify import AdminAlert, LowUpstreamBalance, Notifier, UpstreamExhausted
from bot.services.topup import BadAmount, parse_amount
from storage.models import ACTIVE_STATES, Broadcast, LedgerEntry, Sales, User
from storage.repo import Repo

log = logging.getLogger(__name__)

MONTH_SECONDS: Final = 30 * 86_400
# The settings-table key holding when the current low-balance episode was first alerted.
LOW_BALANCE_KEY: Final = "low_balance_alerted_at"
MAX_MARKUP_PERCENT: Final = Decimal(1000)
MAX_MARKUP_FIXED_UNITS: Final = 100 * UNITS_PER_USD
MAX_BROADCAST_CHARS: Final = 4000
_USER_REF = re.compile(r"^@?([A-Za-z0-9_]{3,32})$")
_EXPORT_PAGE = 1000

CSV_COLUMNS: Final[tuple[str, ...]] = (
    "entry_id",
    "created_at_utc",
    "wallet_id",
    "owner_kind",
    "owner_id",
    "kind",
    "amount_units",
    "amount_usd",
    "activation_id",
    "payment_id",
    "counterparty_wallet_id",
    "actor_id",
    "note",
    "promo_redemption_id",
)
# Where money comes into wallets from outside the shop, in the order the stats list them
# (refunds and transfers only give back or move what was there).
CREDIT_SOURCES: Final[tuple[str, ...]] = ("topup", "stars", "promo", "referral", "sandbox_bonus")


def is_admin(settings: Settings, user_id: int | None) -> bool:
    return user_id is not None and user_id in settings.admin_ids


# --- stats --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Stats:
    users: int
    active_users: int  # neither banned nor known to have blocked the bot
    active_activations: int
    today: Sales
    month: Sales
    user_balances: int  # what the bot owes its users and groups (sum of wallet balances)
    upstream_balance: int | None  # None: the upstream did not answer
    # Credits over the last 30 days by ledger kind (CREDIT_SOURCES first, then any other
    # credit kind a later migration adds), and the referral and promo totals.
    month_credits: dict[str, int] = field(default_factory=dict)
    referred_users: int = 0
    referral_earned: int = 0
    promo_codes: int = 0

    @property
    def today_margin(self) -> int:
        return self.today.revenue_units - self.today.cost_units

    @property
    def month_margin(self) -> int:
        return self.month.revenue_units - self.month.cost_units


async def upstream_balance(client: DaisySimClient) -> int | None:
    try:
        return (await client.balance()).balance_units
    except DaisySimError as exc:
        log.warning("upstream balance unavailable: %s", exc)
        return None


async def collect_stats(
    repo: Repo, client: DaisySimClient | None, *, now: float | None = None
) -> Stats:
    current = time.time() if now is None else now
    states = await repo.activations.count_by_state()
    referral_totals = await repo.referrals.totals()
    return Stats(
        users=await repo.users.count(),
        active_users=await repo.users.count(active_only=True),
        active_activations=sum(states.get(s, 0) for s in ACTIVE_STATES),
        today=await repo.activations.sales(since=day_start(current)),
        month=await repo.activations.sales(since=current - MONTH_SECONDS),
        user_balances=await repo.wallets.total_balance(),
        upstream_balance=None if client is None else await upstream_balance(client),
        month_credits=await credits_by_source(repo, since=current - MONTH_SECONDS),
        referred_users=referral_totals.friends,
        referral_earned=referral_totals.earned_units,
        promo_codes=await repo.promo.count(),
    )


# Credits that only give back or move money already in the books.
_NOT_SOURCES: Final = frozenset({"refund", "transfer_in", "transfer_out", "purchase", "adjustment"})


async def credits_by_source(repo: Repo, *, since: float | None = None) -> dict[str, int]:
    """Money credited to wallets by where it came from, CREDIT_SOURCES first; only kinds
    that credited anything."""
    totals = await repo.ledger.totals_by_kind(since=since)
    kinds = [*CREDIT_SOURCES, *sorted(k for k in totals if k not in CREDIT_SOURCES)]
    return {
        kind: totals[kind] for kind in kinds if totals.get(kind, 0) > 0 and kind not in _NOT_SOURCES
    }


# --- users --------------------------------------------------------------------------------


class UnknownUser(AppError):
    code = "UNKNOWN_USER"

    def __init__(self, ref: str) -> None:
        super().__init__(f"no user {ref!r}")
        self.ref = ref


async def find_user(repo: Repo, ref: str) -> User:
    """A user by Telegram id ("123456") or @username; UnknownUser when there is none (a
    user the bot never saw has no wallet to top up)."""
    text = ref.strip()
    if text.lstrip("-").isdigit() and len(text) < 19:
        user = await repo.users.get(int(text))
    else:
        match = _USER_REF.match(text)
        user = await repo.users.find_by_username(match[1]) if match else None
    if user is None:
        raise UnknownUser(text)
    return user


@dataclass(frozen=True, slots=True)
class UserCard:
    user: User
    balance: int
    wallet_id: int | None
    purchases: int
    payments: int


async def user_card(repo: Repo, user_id: int) -> UserCard | None:
    user = await repo.users.get(user_id)
    if user is None:
        return None
    wallet = await repo.wallets.get_by_owner("user", user_id)
    return UserCard(
        user=user,
        balance=wallet.balance if wallet else 0,
        wallet_id=wallet.id if wallet else None,
        purchases=await repo.activations.count_for_user(user_id),
        payments=len(await repo.payments.list_for_user(user_id, limit=1000)),
    )


class CannotBanAdmin(AppError):
    code = "CANNOT_BAN_ADMIN"


async def set_banned(repo: Repo, settings: Settings, user_id: int, banned: bool) -> bool:
    """Ban or unban; returns whether it changed anything. Admins cannot be banned (they
    would lock themselves out of the panel)."""
    if banned and is_admin(settings, user_id):
        raise CannotBanAdmin(f"user {user_id} is an admin")
    changed = await repo.users.set_banned(user_id, banned)
    if changed:
        log.info("user %d %s", user_id, "banned" if banned else "unbanned")
    return changed


# --- markup -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MarkupSetting:
    markup: Markup
    stored: bool  # False: it comes from the environment (MARKUP_PERCENT, MARKUP_FIXED)


class BadMarkup(AppError):
    code = "BAD_MARKUP"

    def __init__(self, text: str) -> None:
        super().__init__(f"bad markup {text!r}")
        self.text = text


def parse_markup(text: str) -> Markup:
    """ "15" (percent), "15 0.05" or "15% $0.05" (percent and a fixed USD amount)."""
    parts = text.replace("%", " ").split()
    if not 1 <= len(parts) <= 2:
        raise BadMarkup(text)
    try:
        percent = Decimal(parts[0].replace(",", "."))
    except InvalidOperation:
        raise BadMarkup(text) from None
    if not percent.is_finite() or not 0 <= percent <= MAX_MARKUP_PERCENT:
        raise BadMarkup(text)
    if percent != percent.quantize(Decimal("0.01")):
        raise BadMarkup(text)
    fixed = 0
    if len(parts) == 2 and parts[1].strip("$") not in ("0", ""):
        try:
            fixed = parse_amount(parts[1], max_units=MAX_MARKUP_FIXED_UNITS)
        except BadAmount:
            raise BadMarkup(text) from None
    # "15.50" → 15.5 and "100" stays 100 (normalize() alone would give 1E+2).
    return Markup(percent=Decimal(format(percent.normalize(), "f")), fixed_units=fixed)


async def current_markup(repo: Repo, settings: Settings) -> MarkupSetting:
    stored_percent = await repo.settings.get(MARKUP_PERCENT_KEY)
    stored_fixed = await repo.settings.get(MARKUP_FIXED_UNITS_KEY)
    step = settings.price_step_units
    markup = Markup(settings.markup_percent, settings.markup_fixed_units, step)
    if stored_percent is not None or stored_fixed is not None:
        try:
            percent = Decimal(stored_percent) if stored_percent is not None else markup.percent
        except InvalidOperation:
            percent = markup.percent
        fixed = (
            int(stored_fixed)
            if stored_fixed is not None and stored_fixed.isdigit()
            else markup.fixed_units
        )
        return MarkupSetting(Markup(percent, fixed, step), stored=True)
    return MarkupSetting(markup, stored=False)


async def store_markup(repo: Repo, markup: Markup) -> None:
    """Persist the markup; the catalogue reads it on its next price calculation."""
    async with repo.db.transaction() as tx:
        await repo.settings.set(MARKUP_PERCENT_KEY, str(markup.percent), tx=tx)
        await repo.settings.set(MARKUP_FIXED_UNITS_KEY, str(markup.fixed_units), tx=tx)
    log.info("markup set to %s%% + %d units", markup.percent, markup.fixed_units)


async def reset_markup(repo: Repo) -> None:
    """Back to the environment's MARKUP_PERCENT / MARKUP_FIXED."""
    async with repo.db.transaction() as tx:
        await repo.settings.delete(MARKUP_PERCENT_KEY, tx=tx)
        await repo.settings.delete(MARKUP_FIXED_UNITS_KEY, tx=tx)
    log.info("markup reset to the environment's")


# --- broadcasts ---------------------------------------------------------------------------


class BroadcastTooLong(AppError):
    code = "BROADCAST_TOO_LONG"


async def broadcast_recipients(repo: Repo, author_id: int) -> list[int]:
    """Everyone a broadcast may reach (not banned, not blocking the bot) but its author,
    whose preview is their copy."""
    return [uid for uid in await repo.users.broadcast_ids() if uid != author_id]


async def draft_broadcast(repo: Repo, admin_id: int, html_text: str) -> Broadcast:
    text = html_text.strip()
    if not text:
        raise BroadcastTooLong("a broadcast needs some text")
    if len(text) > MAX_BROADCAST_CHARS:
        raise BroadcastTooLong(f"{len(text)} characters, at most {MAX_BROADCAST_CHARS}")
    return await repo.broadcasts.create(admin_id, text)


@dataclass(frozen=True, slots=True)
class BroadcastQueued:
    broadcast: Broadcast
    queued: int
    confirmed_now: bool  # False: it was confirmed (or cancelled) before; nothing queued


async def confirm_broadcast(
    repo: Repo, broadcast_id: int, notifier: Notifier
) -> BroadcastQueued | None:
    """Queue the draft for every user a broadcast may reach, once: one message each, all in
    one transaction with the confirmation. None when there is no such draft."""
    draft = await repo.broadcasts.get(broadcast_id)
    if draft is None:
        return None
    recipients = await broadcast_recipients(repo, draft.admin_id)
    queued = 0
    async with repo.db.transaction() as tx:
        broadcast = await repo.broadcasts.get(broadcast_id, tx=tx)
        if broadcast is None:
            return None
        confirmed = await repo.broadcasts.confirm(tx, broadcast_id, len(recipients))
        if confirmed:
            for user_id in recipients:
                queued += await notifier.broadcast(tx, broadcast, user_id)
        current = await repo.broadcasts.get(broadcast_id, tx=tx)
    assert current is not None
    if queued:
        notifier.wake()
        log.info("broadcast %d queued for %d users", broadcast_id, queued)
    return BroadcastQueued(broadcast=current, queued=queued, confirmed_now=confirmed)


# --- ledger export ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LedgerExport:
    data: bytes
    entries: int
    total_units: int
    filename: str


def _csv_row(entry: LedgerEntry, owners: Mapping[int, tuple[str, int]]) -> list[str]:
    kind, owner = owners.get(entry.wallet_id, ("?", 0))
    created = datetime.fromtimestamp(entry.created_at, UTC).isoformat(timespec="seconds")

    def opt(value: int | None) -> str:
        return "" if value is None else str(value)

    return [
        str(entry.id),
        created,
        str(entry.wallet_id),
        kind,
        str(owner),
        entry.kind,
        str(entry.amount),
        str(to_decimal(entry.amount)),
        opt(entry.activation_id),
        opt(entry.payment_id),
        opt(entry.counterparty_wallet_id),
        opt(entry.actor_id),
        entry.note or "",
        opt(entry.promo_redemption_id),
    ]


async def export_ledger(
    repo: Repo, *, since: float | None = None, now: float | None = None
) -> LedgerExport:
    """The ledger (or its entries since `since`) as CSV, oldest first, amounts both in
    integer units (exact; what to sum) and in USD. Read page by page so a long ledger does
    not hold the database lock for one long query."""
    current = time.time() if now is None else now
    owners = {w.id: (w.owner_kind, w.owner_id) for w in await repo.wallets.list_all()}
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    after_id = 0
    count = 0
    total = 0
    while True:
        page = await repo.ledger.entries_page(
            after_id=after_id, limit=_EXPORT_PAGE, since=since, until=None
        )
        for entry in page:
            writer.writerow(_csv_row(entry, owners))
            total += entry.amount
        count += len(page)
        if len(page) < _EXPORT_PAGE:
            break
        after_id = page[-1].id
    stamp = datetime.fromtimestamp(current, UTC).strftime("%Y%m%d-%H%M%S")
    return LedgerExport(
        data=buffer.getvalue().encode("utf-8"),
        entries=count,
        total_units=total,
        filename=f"ledger-{stamp}.csv",
    )


# --- alerts to the admins -----------------------------------------------------------------


async def alert_admins(
    repo: Repo, settings: Settings, notifier: Notifier, alert: AdminAlert, *, dedupe: str
) -> int:
    """Tell every admin who can be reached of `alert`; each admin is told once per `dedupe`
    key however often this is called. Returns how many were told now."""
    admins: list[int] = []
    for admin_id in sorted(settings.admin_ids):
        user = await repo.users.get(admin_id)
        if user is not None and (user.banned or user.inactive):
            continue
        admins.append(admin_id)
    queued = 0
    async with repo.db.transaction() as tx:
        for admin_id in admins:
            queued += await notifier.admin_alert(tx, admin_id, alert, dedupe=dedupe)
    if queued:
        notifier.wake()
    return queued


async def alert_upstream_exhausted(repo: Repo, settings: Settings, notifier: Notifier) -> int:
    """INSUFFICIENT_BALANCE from the upstream: our account there cannot pay for numbers, so
    every purchase fails until it is topped up. The admins are told once an hour at most,
    whichever path (a buyer's tap, the purchase queue) ran into it. Returns how many alerts
    were queued now."""
    hour = int(time.time() // 3600)
    return await alert_admins(
        repo, settings, notifier, UpstreamExhausted(), dedupe=f"exhausted:{hour}"
    )


@dataclass(frozen=True, slots=True)
class BalanceCheck:
    balance: int | None  # None: the upstream did not answer
    threshold: int
    alerted: int  # admins alerted by this check

    @property
    def low(self) -> bool:
        return self.balance is not None and self.balance < self.threshold


async def check_upstream_balance(
    repo: Repo,
    client: DaisySimClient,
    settings: Settings,
    notifier: Notifier,
    *,
    now: float | None = None,
) -> BalanceCheck:
    """Alert the admins once when the upstream balance falls under LOW_BALANCE_ALERT_USD,
    and again only after it has been back above it (one alert per episode, not one per
    check)."""
    threshold = settings.low_balance_alert_units
    balance = await upstream_balance(client)
    if balance is None or not settings.admin_ids:
        return BalanceCheck(balance, threshold, 0)
    episode = await repo.settings.get(LOW_BALANCE_KEY)
    if balance >= threshold:
        if episode is not None:
            await repo.settings.delete(LOW_BALANCE_KEY)
            log.info("upstream balance is back above the alert threshold")
        return BalanceCheck(balance, threshold, 0)
    if episode is None:
        episode = f"{time.time() if now is None else now:.3f}"
        await repo.settings.set(LOW_BALANCE_KEY, episode)
    alerted = await alert_admins(
        repo,
        settings,
        notifier,
        LowUpstreamBalance(balance_units=balance, threshold_units=threshold),
        dedupe=f"low-balance:{episode}",
    )
    if alerted:
        log.warning(
            "upstream balance %d units is under the alert threshold %d: %d admins alerted",
            balance,
            threshold,
            alerted,
        )
    return BalanceCheck(balance, threshold, alerted)


__all__ = [
    "CREDIT_SOURCES",
    "CSV_COLUMNS",
    "LOW_BALANCE_KEY",
    "BadMarkup",
    "BalanceCheck",
    "BroadcastQueued",
    "BroadcastTooLong",
    "CannotBanAdmin",
    "LedgerExport",
    "MarkupSetting",
    "Stats",
    "UnknownUser",
    "UserCard",
    "alert_admins",
    "alert_upstream_exhausted",
    "broadcast_recipients",
    "check_upstream_balance",
    "collect_stats",
    "confirm_broadcast",
    "credits_by_source",
    "current_markup",
    "draft_broadcast",
    "export_ledger",
    "find_user",
    "is_admin",
    "parse_markup",
    "reset_markup",
    "set_banned",
    "store_markup",
    "upstream_balance",
    "user_card",
]
