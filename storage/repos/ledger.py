"""The append-only ledger: every movement of money, in integer units."""

from __future__ import annotations

from storage.db import Transaction
from storage.models import LedgerEntry, from_row
from storage.repos._base import RepoBase, timestamp


class LedgerRepo(RepoBase):
    async def append(
        self,
        tx: Transaction,
        wallet_id: int,
        amount: int,
        kind: str,
        *,
        activation_id: int | None = None,
        payment_id: int | None = None,
        counterparty_wallet_id: int | None = None,
        crypto_invoice_id: int | None = None,
        actor_id: int | None = None,
        note: str | None = None,
        now: float | None = None,
        promo_redemption_id: int | None = None,
    ) -> LedgerEntry:
        """Append one entry; the `ledger_apply` trigger moves the wallet's cached balance in
        the same statement, and an overdraft makes the statement fail (IntegrityError)."""
        if isinstance(amount, bool) or not isinstance(amount, int):
            raise TypeError(f"ledger amounts are integer units, got {type(amount).__name__}")
        row = await tx.fetch_one(
            "INSERT INTO ledger (wallet_id, amount, kind, activation_id, payment_id,"
            " counterparty_wallet_id, crypto_invoice_id, actor_id, note, created_at,"
            " promo_redemption_id)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING *",
            (
                wallet_id,
                amount,
                kind,
                activation_id,
                payment_id,
                counterparty_wallet_id,
                crypto_invoice_id,
                actor_id,
                note,
                timestamp(now),
                promo_redemption_id,
            ),
        )
        assert row is not None
        return from_row(LedgerEntry, row)

    async def last_entries(
        self,
        wallet_id: int,
        limit: int = 10,
        *,
        before_id: int | None = None,
        tx: Transaction | None = None,
    ) -> list[LedgerEntry]:
        """Newest first; page on with `before_id` = the last id of the previous page."""
        rows = await self._q(tx).fetch_all(
            "SELECT * FROM ledger WHERE wallet_id = ? AND (? IS NULL OR id < ?)"
            " ORDER BY id DESC LIMIT ?",
            (wallet_id, before_id, before_id, limit),
        )
        return [from_row(LedgerEntry, row) for row in rows]

    async def totals_by_kind(
        self,
        *,
        since: float | None = None,
        until: float | None = None,
        wallet_id: int | None = None,
    ) -> dict[str, int]:
        """Signed sums per kind over [since, until) (the stats panel: revenue is
        -purchase - refund)."""
        rows = await self._db.fetch_all(
            "SELECT kind, COALESCE(SUM(amount), 0) FROM ledger"
            " WHERE (? IS NULL OR created_at >= ?) AND (? IS NULL OR created_at < ?)"
            " AND (? IS NULL OR wallet_id = ?) GROUP BY kind",
            (since, since, until, until, wallet_id, wallet_id),
        )
        return {str(row[0]): int(row[1]) for row in rows}

    async def count(self) -> int:
        return int(await self._db.fetch_value("SELECT COUNT(*) FROM ledger"))

    async def entries_page(
        self,
        *,
        after_id: int = 0,
        limit: int = 500,
        since: float | None = None,
        until: float | None = None,
    ) -> list[LedgerEntry]:
        """Oldest first, for the CSV export; page on with `after_id` = the last id seen."""
        rows = await self._db.fetch_all(
            "SELECT * FROM ledger WHERE id > ? AND (? IS NULL OR created_at >= ?)"
            " AND (? IS NULL OR created_at < ?) ORDER BY id LIMIT ?",
            (after_id, since, since, until, until, limit),
        )
        return [from_row(LedgerEntry, row) for row in rows]
