"""Crypto Pay invoices we created (migration 0009) and their way to paid or expired."""

from __future__ import annotations

from storage.db import Transaction
from storage.models import CryptoInvoice, CryptoNetwork, from_row
from storage.repos._base import RepoBase, timestamp


class CryptoInvoicesRepo(RepoBase):
    async def create(
        self,
        tx: Transaction,
        *,
        network: CryptoNetwork,
        invoice_id: int,
        invoice_hash: str,
        wallet_id: int,
        user_id: int,
        chat_id: int,
        amount_units: int,
        fiat: str,
        pay_url: str,
        expires_at: float,
        now: float | None = None,
    ) -> CryptoInvoice:
        row = await tx.fetch_one(
            "INSERT INTO crypto_invoices (network, invoice_id, invoice_hash, wallet_id, user_id,"
            " chat_id, amount_units, fiat, pay_url, created_at, expires_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING *",
            (
                network,
                invoice_id,
                invoice_hash,
                wallet_id,
                user_id,
                chat_id,
                amount_units,
                fiat,
                pay_url,
                timestamp(now),
                expires_at,
            ),
        )
        assert row is not None
        return from_row(CryptoInvoice, row)

    async def get(self, row_id: int, *, tx: Transaction | None = None) -> CryptoInvoice | None:
        row = await self._q(tx).fetch_one("SELECT * FROM crypto_invoices WHERE id = ?", (row_id,))
        return None if row is None else from_row(CryptoInvoice, row)

    async def get_by_invoice_id(
        self, network: CryptoNetwork, invoice_id: int, *, tx: Transaction | None = None
    ) -> CryptoInvoice | None:
        row = await self._q(tx).fetch_one(
            "SELECT * FROM crypto_invoices WHERE network = ? AND invoice_id = ?",
            (network, invoice_id),
        )
        return None if row is None else from_row(CryptoInvoice, row)

    async def set_message(self, row_id: int, message_id: int) -> None:
        await self._db.execute(
            "UPDATE crypto_invoices SET message_id = ? WHERE id = ?", (message_id, row_id)
        )

    async def list_active(self, network: CryptoNetwork, limit: int = 1000) -> list[CryptoInvoice]:
        """Oldest first: the poller asks about these."""
        rows = await self._db.fetch_all(
            "SELECT * FROM crypto_invoices WHERE status = 'active' AND network = ?"
            " ORDER BY id LIMIT ?",
            (network, limit),
        )
        return [from_row(CryptoInvoice, row) for row in rows]

    async def list_for_wallet(self, wallet_id: int, limit: int = 100) -> list[CryptoInvoice]:
        rows = await self._db.fetch_all(
            "SELECT * FROM crypto_invoices WHERE wallet_id = ? ORDER BY id DESC LIMIT ?",
            (wallet_id, limit),
        )
        return [from_row(CryptoInvoice, row) for row in rows]

    async def mark_paid(
        self,
        tx: Transaction,
        row_id: int,
        *,
        paid_asset: str | None,
        paid_amount: str | None,
        now: float | None = None,
    ) -> bool:
        """Paid and credited, in the crediting transaction; False if it already was."""
        moment = timestamp(now)
        result = await tx.execute(
            "UPDATE crypto_invoices SET status = 'paid', paid_asset = ?, paid_amount = ?,"
            " paid_at = ?, credited_at = ?, ended_at = ? WHERE id = ? AND status <> 'paid'",
            (paid_asset, paid_amount, moment, moment, moment, row_id),
        )
        return result.rowcount == 1

    async def mark_expired(self, tx: Transaction, row_id: int, *, now: float | None = None) -> bool:
        """Only an active invoice expires; False when it was paid or expired before."""
        result = await tx.execute(
            "UPDATE crypto_invoices SET status = 'expired', ended_at = ?"
            " WHERE id = ? AND status = 'active'",
            (timestamp(now), row_id),
        )
        return result.rowcount == 1
