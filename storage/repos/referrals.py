"""Who invited whom, and what each referee has earned their referrer (migration 0010)."""

from __future__ import annotations

from dataclasses import dataclass

from storage.db import Transaction
from storage.models import Referral, from_row
from storage.repos._base import RepoBase, timestamp


@dataclass(frozen=True, slots=True)
class ReferralSummary:
    friends: int
    earned_units: int


@dataclass(frozen=True, slots=True)
class ReferralAudit:
    """A referee whose recorded earnings and 'referral' entries disagree, for ledger-check."""

    referee_id: int
    referrer_id: int
    earned_units: int
    credited_units: int
    foreign_entries: int  # 'referral' entries for this referee's purchases on another wallet


class ReferralsRepo(RepoBase):
    async def tie(
        self, tx: Transaction, *, referee_id: int, referrer_id: int, now: float | None = None
    ) -> bool:
        """Tie a referee to a referrer once; False if the referee was tied before (the
        referee is the primary key: nobody is ever re-tied)."""
        row = await tx.fetch_one(
            "INSERT INTO referrals (referee_id, referrer_id, created_at) VALUES (?, ?, ?)"
            " ON CONFLICT (referee_id) DO NOTHING RETURNING referee_id",
            (referee_id, referrer_id, timestamp(now)),
        )
        return row is not None

    async def of_referee(
        self, referee_id: int, *, tx: Transaction | None = None
    ) -> Referral | None:
        row = await self._q(tx).fetch_one(
            "SELECT * FROM referrals WHERE referee_id = ?", (referee_id,)
        )
        return None if row is None else from_row(Referral, row)

    async def add_earned(self, tx: Transaction, referee_id: int, units: int) -> None:
        await tx.execute(
            "UPDATE referrals SET earned_units = earned_units + ? WHERE referee_id = ?",
            (units, referee_id),
        )

    async def summary(self, referrer_id: int) -> ReferralSummary:
        row = await self._db.fetch_one(
            "SELECT COUNT(*), COALESCE(SUM(earned_units), 0) FROM referrals WHERE referrer_id = ?",
            (referrer_id,),
        )
        assert row is not None
        return ReferralSummary(friends=int(row[0]), earned_units=int(row[1]))

    async def mismatched(self) -> list[ReferralAudit]:
        """Every referee whose earned_units is not the sum of the 'referral' entries for
        their purchases on the referrer's wallet, or who has such entries elsewhere."""
        rows = await self._db.fetch_all(
            "SELECT r.referee_id, r.referrer_id, r.earned_units,"
            " COALESCE(SUM(CASE WHEN w.owner_kind = 'user' AND w.owner_id = r.referrer_id"
            " THEN l.amount END), 0),"
            " COALESCE(SUM(l.id IS NOT NULL AND NOT (w.owner_kind = 'user'"
            " AND w.owner_id = r.referrer_id)), 0)"
            " FROM referrals r"
            " LEFT JOIN activations a ON a.user_id = r.referee_id"
            " LEFT JOIN ledger l ON l.activation_id = a.id AND l.kind = 'referral'"
            " LEFT JOIN wallets w ON w.id = l.wallet_id"
            " GROUP BY r.referee_id"
            " HAVING r.earned_units <> COALESCE(SUM(CASE WHEN w.owner_kind = 'user'"
            " AND w.owner_id = r.referrer_id THEN l.amount END), 0)"
            " OR COALESCE(SUM(l.id IS NOT NULL AND NOT (w.owner_kind = 'user'"
            " AND w.owner_id = r.referrer_id)), 0) > 0"
            " ORDER BY r.referee_id"
        )
        return [
            ReferralAudit(
                referee_id=int(r[0]),
                referrer_id=int(r[1]),
                earned_units=int(r[2]),
                credited_units=int(r[3]),
                foreign_entries=int(r[4]),
            )
            for r in rows
        ]

    async def totals(self) -> ReferralSummary:
        """All referrals: how many users were invited, and what their referrers earned."""
        row = await self._db.fetch_one(
            "SELECT COUNT(*), COALESCE(SUM(earned_units), 0) FROM referrals"
        )
        assert row is not None
        return ReferralSummary(friends=int(row[0]), earned_units=int(row[1]))
