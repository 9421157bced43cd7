"""Promo codes and their redemptions (migration 0010)."""

from __future__ import annotations

from dataclasses import dataclass

from storage.db import Transaction
from storage.models import PromoCode, PromoRedemption, from_row
from storage.repos._base import RepoBase, timestamp


@dataclass(frozen=True, slots=True)
class PromoAudit:
    """One code with what the ledger says about it, for ledger-check."""

    id: int
    code: str
    amount_units: int
    uses: int
    max_uses: int
    redemptions: int
    credits: int  # 'promo' entries for its redemptions
    credit_sum: int
    foreign_wallet_entries: int  # credits on a wallet other than the redemption's


class PromoRepo(RepoBase):
    async def create(
        self,
        tx: Transaction,
        *,
        code: str,
        amount_units: int,
        max_uses: int,
        expires_at: float | None,
        once_per_user: bool,
        created_by: int,
        now: float | None = None,
    ) -> PromoCode | None:
        """A new code; None when one of that name exists already (case-insensitive)."""
        row = await tx.fetch_one(
            "INSERT INTO promo_codes (code, amount_units, max_uses, expires_at, once_per_user,"
            " created_by, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (code) DO NOTHING RETURNING *",
            (
                code,
                amount_units,
                max_uses,
                expires_at,
                int(once_per_user),
                created_by,
                timestamp(now),
            ),
        )
        return None if row is None else from_row(PromoCode, row)

    async def get(self, code_id: int, *, tx: Transaction | None = None) -> PromoCode | None:
        row = await self._q(tx).fetch_one("SELECT * FROM promo_codes WHERE id = ?", (code_id,))
        return None if row is None else from_row(PromoCode, row)

    async def find(self, code: str, *, tx: Transaction | None = None) -> PromoCode | None:
        """By its text, whatever the case (the column is COLLATE NOCASE)."""
        row = await self._q(tx).fetch_one("SELECT * FROM promo_codes WHERE code = ?", (code,))
        return None if row is None else from_row(PromoCode, row)

    async def take_use(self, tx: Transaction, code_id: int, *, now: float) -> bool:
        """Take one use of a code that is neither used up nor expired; False when none is
        left. Conditional in the statement itself, so two redemptions racing for the last
        use cannot both take it (and the uses <= max_uses CHECK would refuse a second)."""
        result = await tx.execute(
            "UPDATE promo_codes SET uses = uses + 1 WHERE id = ? AND uses < max_uses"
            " AND (expires_at IS NULL OR expires_at > ?)",
            (code_id, now),
        )
        return result.rowcount == 1

    async def add_redemption(
        self,
        tx: Transaction,
        *,
        code: PromoCode,
        user_id: int,
        wallet_id: int,
        now: float | None = None,
    ) -> PromoRedemption | None:
        """Record a redemption; None when a once-per-user code was redeemed by this user."""
        row = await tx.fetch_one(
            "INSERT INTO promo_redemptions (code_id, user_id, wallet_id, once, created_at)"
            " VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING RETURNING *",
            (code.id, user_id, wallet_id, int(code.once_per_user), timestamp(now)),
        )
        return None if row is None else from_row(PromoRedemption, row)

    async def redeemed_by(
        self, code_id: int, user_id: int, *, tx: Transaction | None = None
    ) -> bool:
        value = await self._q(tx).fetch_value(
            "SELECT COUNT(*) FROM promo_redemptions WHERE code_id = ? AND user_id = ?",
            (code_id, user_id),
        )
        return int(value) > 0

    async def get_redemption(
        self, redemption_id: int, *, tx: Transaction | None = None
    ) -> PromoRedemption | None:
        row = await self._q(tx).fetch_one(
            "SELECT * FROM promo_redemptions WHERE id = ?", (redemption_id,)
        )
        return None if row is None else from_row(PromoRedemption, row)

    async def code_of_redemption(
        self, redemption_id: int, *, tx: Transaction | None = None
    ) -> PromoCode | None:
        row = await self._q(tx).fetch_one(
            "SELECT c.* FROM promo_codes c JOIN promo_redemptions r ON r.code_id = c.id"
            " WHERE r.id = ?",
            (redemption_id,),
        )
        return None if row is None else from_row(PromoCode, row)

    async def listing(self, *, limit: int = 20) -> list[PromoCode]:
        """Newest first: what the admins see with the uses of each."""
        rows = await self._db.fetch_all(
            "SELECT * FROM promo_codes ORDER BY id DESC LIMIT ?", (limit,)
        )
        return [from_row(PromoCode, row) for row in rows]

    async def count(self) -> int:
        return int(await self._db.fetch_value("SELECT COUNT(*) FROM promo_codes"))

    async def audit(self) -> list[PromoAudit]:
        rows = await self._db.fetch_all(
            "SELECT c.id, c.code, c.amount_units, c.uses, c.max_uses,"
            " (SELECT COUNT(*) FROM promo_redemptions r WHERE r.code_id = c.id),"
            " COUNT(l.id), COALESCE(SUM(l.amount), 0),"
            " COALESCE(SUM(l.wallet_id <> r.wallet_id), 0)"
            " FROM promo_codes c"
            " LEFT JOIN promo_redemptions r ON r.code_id = c.id"
            " LEFT JOIN ledger l ON l.promo_redemption_id = r.id AND l.kind = 'promo'"
            " GROUP BY c.id ORDER BY c.id"
        )
        return [
            PromoAudit(
                id=int(r[0]),
                code=str(r[1]),
                amount_units=int(r[2]),
                uses=int(r[3]),
                max_uses=int(r[4]),
                redemptions=int(r[5]),
                credits=int(r[6]),
                credit_sum=int(r[7]),
                foreign_wallet_entries=int(r[8]),
            )
            for r in rows
        ]

    async def redemptions_without_one_credit(self) -> list[tuple[int, int]]:
        """(redemption id, its number of 'promo' entries) for every redemption not credited
        exactly once."""
        rows = await self._db.fetch_all(
            "SELECT r.id, COUNT(l.id) FROM promo_redemptions r"
            " LEFT JOIN ledger l ON l.promo_redemption_id = r.id AND l.kind = 'promo'"
            " GROUP BY r.id HAVING COUNT(l.id) <> 1 ORDER BY r.id"
        )
        return [(int(r[0]), int(r[1])) for r in rows]
