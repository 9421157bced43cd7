"""Telegram Stars payments, unique per charge id."""

from __future__ import annotations

from storage.db import Transaction
from storage.models import Payment, from_row
from storage.repos._base import RepoBase, timestamp


class PaymentsRepo(RepoBase):
    async def create(
        self,
        tx: Transaction,
        *,
        wallet_id: int,
        user_id: int,
        telegram_payment_charge_id: str,
        stars: int,
        amount_units: int,
        payload: str,
        now: float | None = None,
    ) -> Payment | None:
        """The new payment, or None when this charge id was recorded before."""
        row = await tx.fetch_one(
            "INSERT INTO payments (wallet_id, user_id, telegram_payment_charge_id, stars,"
            " amount_units, payload, status, created_at) VALUES (?, ?, ?, ?, ?, ?, 'paid', ?)"
            " ON CONFLICT (telegram_payment_charge_id) DO NOTHING RETURNING *",
            (
                wallet_id,
                user_id,
                telegram_payment_charge_id,
                stars,
                amount_units,
                payload,
                timestamp(now),
            ),
        )
        return None if row is None else from_row(Payment, row)

    async def get(self, payment_id: int, *, tx: Transaction | None = None) -> Payment | None:
        row = await self._q(tx).fetch_one("SELECT * FROM payments WHERE id = ?", (payment_id,))
        return None if row is None else from_row(Payment, row)

    async def get_by_charge_id(
        self, charge_id: str, *, tx: Transaction | None = None
    ) -> Payment | None:
        row = await self._q(tx).fetch_one(
            "SELECT * FROM payments WHERE telegram_payment_charge_id = ?", (charge_id,)
        )
        return None if row is None else from_row(Payment, row)

    async def mark_refunded(
        self, tx: Transaction, payment_id: int, *, now: float | None = None
    ) -> bool:
        res = await tx.execute(
            "UPDATE payments SET status = 'refunded', refunded_at = ?"
            " WHERE id = ? AND status = 'paid'",
            (timestamp(now), payment_id),
        )
        return res.rowcount > 0

    async def list_for_user(self, user_id: int, *, limit: int = 20) -> list[Payment]:
        rows = await self._db.fetch_all(
            "SELECT * FROM payments WHERE user_id = ? ORDER BY id DESC LIMIT ?", (user_id, limit)
        )
        return [from_row(Payment, row) for row in rows]

    async def undo_refund(self, tx: Transaction, payment_id: int) -> bool:
        """Back to 'paid' after Telegram definitely refused a refund we had booked."""
        res = await tx.execute(
            "UPDATE payments SET status = 'paid', refunded_at = NULL"
            " WHERE id = ? AND status = 'refunded'",
            (payment_id,),
        )
        return res.rowcount > 0
