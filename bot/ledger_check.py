"""`daisybot ledger-check [--db PATH]`: prove that every unit of money is accounted for.

Checks that every wallet's cached balance equals the sum of its ledger, that every activation
was charged exactly once and refunded at most once and only if it ended without a code, that
nothing holds money in `purchasing`/`unknown` for long (a place in the purchase queue adds the
turns ahead of it), that every Stars payment and every paid Crypto Pay invoice was credited
once (an unpaid invoice never), that transfers cancel out, that every promo redemption was
credited once with its code's amount and no code was used more often than it allows, and that
each referee's recorded earnings are their referrer's 'referral' entries.
Prints each discrepancy and exits 1, or prints "ledger OK: N wallets, M entries" and exits 0.
The database is opened read-only.
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bot.daisysim import RateLimits
from storage.db import Database
from storage.migrator import MigrationError, latest_version
from storage.models import COMPLETED, REFUNDED_STATES, UNSETTLED_STATES, WAITING
from storage.repo import Repo
from storage.repos.audit import ActivationAudit

# `purchasing`/`unknown` longer than this means reconciliation is not running or is stuck.
DEFAULT_UNSETTLED_LIMIT_SECONDS = 3600.0
# A hold waiting in the purchase queue is sent when its turn comes, at the upstream's purchase
# rate (10 a minute): the k-th in line may wait k turns longer before it counts as stuck.
_PURCHASES, _WINDOW = RateLimits().purchase
QUEUE_SECONDS_PER_PLACE = _WINDOW / _PURCHASES


async def check_ledger(
    repo: Repo,
    *,
    unsettled_limit_seconds: float = DEFAULT_UNSETTLED_LIMIT_SECONDS,
    now: float | None = None,
) -> list[str]:
    """Every discrepancy as one line; an empty list means the books balance."""
    current = time.time() if now is None else now
    problems: list[str] = []

    problems.extend(
        f"{cell} holds a non-integer amount" for cell in await repo.audit.non_integer_money()
    )

    for w in await repo.audit.wallets():
        name = f"wallet {w.wallet_id} ({w.owner_kind} {w.owner_id})"
        if w.balance != w.ledger_sum:
            problems.append(
                f"{name}: cached balance {w.balance} != ledger sum {w.ledger_sum} "
                f"({w.entries} entries)"
            )
        if isinstance(w.balance, int) and w.balance < 0:
            problems.append(f"{name}: negative balance {w.balance}")

    orphans = await repo.audit.entries_without_wallet()
    if orphans:
        problems.append(f"{orphans} ledger entries point at no wallet")

    places = {queued.activation.id: queued.place for queued in await repo.queue.listing()}
    for a in await repo.audit.activations():
        limit = unsettled_limit_seconds + places.get(a.id, 0) * QUEUE_SECONDS_PER_PLACE
        problems.extend(_activation_problems(a, current, limit))

    for p in await repo.audit.payments():
        name = f"payment {p.id}"
        if p.credit_count != 1:
            problems.append(f"{name}: credited {p.credit_count} times (expected once)")
        elif p.credit_sum != p.amount_units:
            problems.append(f"{name}: credited {p.credit_sum} units, paid for {p.amount_units}")
        if p.foreign_wallet_entries:
            problems.append(f"{name}: credited to a wallet other than {p.wallet_id}")

    for c in await repo.audit.crypto_invoices():
        name = f"crypto invoice {c.invoice_id} ({c.status})"
        expected = 1 if c.status == "paid" else 0
        if c.credit_count != expected:
            problems.append(f"{name}: credited {c.credit_count} times (expected {expected})")
        elif expected and c.credit_sum != c.amount_units:
            problems.append(f"{name}: credited {c.credit_sum} units, invoiced {c.amount_units}")
        if c.foreign_wallet_entries:
            problems.append(f"{name}: credited to a wallet other than {c.wallet_id}")
    problems.extend(await _promo_problems(repo))
    for r in await repo.referrals.mismatched():
        name = f"referral of user {r.referee_id} by {r.referrer_id}"
        if r.foreign_entries:
            problems.append(f"{name}: {r.foreign_entries} credits on another wallet")
        if r.earned_units != r.credited_units:
            problems.append(
                f"{name}: records {r.earned_units} units earned, the ledger {r.credited_units}"
            )

    for t in await repo.audit.unpaired_transfers():
        problems.append(
            f"transfers between wallets {t.low} and {t.high} do not cancel out: {t.net:+d}"
        )
    return problems


async def _promo_problems(repo: Repo) -> list[str]:
    found: list[str] = []
    for c in await repo.promo.audit():
        name = f"promo code {c.id} ({c.code})"
        if c.uses != c.redemptions:
            found.append(f"{name}: {c.uses} uses counted, {c.redemptions} redemptions")
        if c.redemptions > c.max_uses:
            found.append(f"{name}: redeemed {c.redemptions} times, allows {c.max_uses}")
        if c.credit_sum != c.credits * c.amount_units:
            found.append(f"{name}: credited {c.credit_sum} units for {c.credits} redemptions")
        if c.foreign_wallet_entries:
            found.append(f"{name}: credited to a wallet other than the redeemer's")
    for redemption_id, credits in await repo.promo.redemptions_without_one_credit():
        found.append(f"promo redemption {redemption_id}: credited {credits} times (expected once)")
    return found


def _activation_problems(a: ActivationAudit, now: float, limit: float) -> list[str]:
    name = f"activation {a.id} ({a.state})"
    found: list[str] = []
    if a.purchase_count != 1:
        found.append(f"{name}: {a.purchase_count} purchase entries (expected 1)")
    elif a.purchase_sum != -a.user_price:
        found.append(f"{name}: charged {-a.purchase_sum} units, its price is {a.user_price}")
    if a.refund_count > 1:
        found.append(f"{name}: refunded {a.refund_count} times")
    elif a.refund_count == 1 and a.refund_sum != a.user_price:
        found.append(f"{name}: refunded {a.refund_sum} units, its price is {a.user_price}")
    if a.foreign_wallet_entries:
        found.append(f"{name}: has ledger entries on a wallet other than {a.wallet_id}")

    if a.state in REFUNDED_STATES:
        if a.refund_count == 0:
            found.append(f"{name}: ended without a code but was not refunded")
    elif a.refund_count:
        found.append(f"{name}: refunded although it is {a.state}")
    if a.state == COMPLETED and a.code is None:
        found.append(f"{name}: completed without a code")
    if a.state == WAITING and a.upstream_id is None:
        found.append(f"{name}: waiting without an upstream id")
    if a.state in UNSETTLED_STATES and now - a.created_at > limit:
        found.append(
            f"{name}: unsettled for {now - a.created_at:.0f} s (limit {limit:.0f} s); "
            "is reconciliation running?"
        )
    return found


@dataclass(frozen=True, slots=True)
class LedgerReport:
    """What `check_file` found: every discrepancy, and the size of the books it read."""

    problems: list[str]
    wallets: int
    entries: int

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        if self.ok:
            return f"ledger OK: {self.wallets} wallets, {self.entries} entries"
        return f"ledger-check: {len(self.problems)} discrepancies"


async def check_file(
    path: str | Path, *, unsettled_limit: float = DEFAULT_UNSETTLED_LIMIT_SECONDS
) -> LedgerReport:
    """Check the books in the SQLite file at `path`, opened read-only (also used by
    `daisybot restore` on what it restored). Raises FileNotFoundError, sqlite3.Error."""
    db = await Database.open(path, readonly=True)
    try:
        version = await db.schema_version()
        expected = latest_version()
        if version != expected:
            return LedgerReport(
                [f"database schema is version {version}, this code expects {expected}"], 0, 0
            )
        # `daisybot ledger-check` is a composition root of its own: one read-only database.
        repo = Repo(db)
        problems = await check_ledger(repo, unsettled_limit_seconds=unsettled_limit)
        return LedgerReport(problems, await repo.wallets.count(), await repo.ledger.count())
    finally:
        await db.close()


def _default_db_path() -> Path | None:
    from bot.config import SettingsError, load_settings

    try:
        return load_settings(require_token=False).database_path
    except SettingsError as exc:
        print(f"ledger-check: {exc}", file=sys.stderr)
        return None


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="daisybot ledger-check",
        description="Verify that every wallet and activation settles. Exit 1 on a discrepancy.",
    )
    parser.add_argument("--db", type=Path, help="SQLite file (default: DATABASE_PATH)")
    parser.add_argument(
        "--unsettled-limit",
        type=float,
        default=DEFAULT_UNSETTLED_LIMIT_SECONDS,
        metavar="SECONDS",
        help="flag purchases unsettled for longer than this (default: %(default)s)",
    )
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    path: Path | None = args.db or _default_db_path()
    if path is None:
        return 2
    try:
        report = asyncio.run(check_file(path, unsettled_limit=args.unsettled_limit))
    except FileNotFoundError:
        print(f"ledger-check: no database at {path}", file=sys.stderr)
        return 2
    except (sqlite3.Error, MigrationError) as exc:
        print(f"ledger-check: cannot read {path}: {exc}", file=sys.stderr)
        return 2
    for problem in report.problems:
        print(problem)
    if not report.ok:
        print(report.summary(), file=sys.stderr)
        return 1
    print(report.summary())
    return 0


if __name__ == "__main__":
    sys.exit(main())
