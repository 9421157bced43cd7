"""Read-only totals for `daisybot ledger-check`."""

from __future__ import annotations

from dataclasses import dataclass

from storage.repos._base import RepoBase


@dataclass(frozen=True, slots=True)
class WalletAudit:
    wallet_id: int
    owner_kind: str
    owner_id: int
    balance: int
    ledger_sum: int
    entries: int


@dataclass(frozen=True, slots=True)
class ActivationAudit:
    """One activation with the ledger entries that concern it, summed."""

    id: int
    state: str
    wallet_id: int
    user_price: int
    created_at: float
    code: str | None
    upstream_id: str | None
    purchase_count: int
    purchase_sum: int
    refund_count: int
    refund_sum: int
    foreign_wallet_entries: int  # entries for this activation on a wallet that is not its own


@dataclass(frozen=True, slots=True)
class PaymentAudit:
    id: int
    wallet_id: int
    status: str
    amount_units: int
    credit_count: int
    credit_sum: int
    foreign_wallet_entries: int


@dataclass(frozen=True, slots=True)
class CryptoInvoiceAudit:
    id: int
    invoice_id: int
    wallet_id: int
    status: str
    amount_units: int
    credit_count: int
    credit_sum: int
    foreign_wallet_entries: int


@dataclass(frozen=True, slots=True)
class TransferImbalance:
    """Two wallets whose transfers to each other do not cancel out (`low` < `high`)."""

    low: int
    high: int
    net: int


class AuditRepo(RepoBase):
    async def wallets(self) -> list[WalletAudit]:
        rows = await self._db.fetch_all(
            "SELECT w.id, w.owner_kind, w.owner_id, w.balance,"
            " COALESCE(SUM(l.amount), 0), COUNT(l.id)"
            " FROM wallets w LEFT JOIN ledger l ON l.wallet_id = w.id GROUP BY w.id ORDER BY w.id"
        )
        return [
            WalletAudit(
                wallet_id=int(r[0]),
                owner_kind=str(r[1]),
                owner_id=int(r[2]),
                balance=r[3],
                ledger_sum=int(r[4]),
                entries=int(r[5]),
            )
            for r in rows
        ]

    async def activations(self) -> list[ActivationAudit]:
        rows = await self._db.fetch_all(
            "SELECT a.id, a.state, a.wallet_id, a.user_price, a.created_at, a.code,"
            " a.upstream_id,"
            " COALESCE(SUM(l.kind = 'purchase'), 0),"
            " COALESCE(SUM(CASE WHEN l.kind = 'purchase' THEN l.amount END), 0),"
            " COALESCE(SUM(l.kind = 'refund'), 0),"
            " COALESCE(SUM(CASE WHEN l.kind = 'refund' THEN l.amount END), 0),"
            # A 'referral' entry names the referee's purchase but credits the referrer's
            # own wallet by design (ledger-check audits those per referral).
            " COALESCE(SUM(l.kind <> 'referral' AND l.wallet_id <> a.wallet_id), 0)"
            " FROM activations a LEFT JOIN ledger l ON l.activation_id = a.id"
            " GROUP BY a.id ORDER BY a.id"
        )
        return [
            ActivationAudit(
                id=int(r[0]),
                state=str(r[1]),
                wallet_id=int(r[2]),
                user_price=int(r[3]),
                created_at=float(r[4]),
                code=r[5],
                upstream_id=r[6],
                purchase_count=int(r[7]),
                purchase_sum=int(r[8]),
                refund_count=int(r[9]),
                refund_sum=int(r[10]),
                foreign_wallet_entries=int(r[11]),
            )
            for r in rows
        ]

    async def payments(self) -> list[PaymentAudit]:
        rows = await self._db.fetch_all(
            "SELECT p.id, p.wallet_id, p.status, p.amount_units,"
            " COALESCE(SUM(l.kind = 'stars'), 0),"
            " COALESCE(SUM(CASE WHEN l.kind = 'stars' THEN l.amount END), 0),"
            " COALESCE(SUM(l.wallet_id <> p.wallet_id), 0)"
            " FROM payments p LEFT JOIN ledger l ON l.payment_id = p.id"
            " GROUP BY p.id ORDER BY p.id"
        )
        return [
            PaymentAudit(
                id=int(r[0]),
                wallet_id=int(r[1]),
                status=str(r[2]),
                amount_units=int(r[3]),
                credit_count=int(r[4]),
                credit_sum=int(r[5]),
                foreign_wallet_entries=int(r[6]),
            )
            for r in rows
        ]

    async def crypto_invoices(self) -> list[CryptoInvoiceAudit]:
        rows = await self._db.fetch_all(
            "SELECT c.id, c.invoice_id, c.wallet_id, c.status, c.amount_units,"
            " COALESCE(SUM(l.kind = 'crypto'), 0),"
            " COALESCE(SUM(CASE WHEN l.kind = 'crypto' THEN l.amount END), 0),"
            " COALESCE(SUM(l.wallet_id <> c.wallet_id), 0)"
            " FROM crypto_invoices c LEFT JOIN ledger l ON l.crypto_invoice_id = c.id"
            " GROUP BY c.id ORDER BY c.id"
        )
        return [
            CryptoInvoiceAudit(
                id=int(r[0]),
                invoice_id=int(r[1]),
                wallet_id=int(r[2]),
                status=str(r[3]),
                amount_units=int(r[4]),
                credit_count=int(r[5]),
                credit_sum=int(r[6]),
                foreign_wallet_entries=int(r[7]),
            )
            for r in rows
        ]

    async def unpaired_transfers(self) -> list[TransferImbalance]:
        """Every pair of wallets whose transfers do not cancel out: money moved between
        wallets must neither appear nor vanish."""
        rows = await self._db.fetch_all(
            "SELECT MIN(wallet_id, counterparty_wallet_id), MAX(wallet_id, counterparty_wallet_id),"
            " SUM(amount) FROM ledger WHERE kind IN ('transfer_in', 'transfer_out')"
            " GROUP BY 1, 2 HAVING SUM(amount) <> 0"
        )
        return [TransferImbalance(low=int(r[0]), high=int(r[1]), net=int(r[2])) for r in rows]

    async def entries_without_wallet(self) -> int:
        value = await self._db.fetch_value(
            "SELECT COUNT(*) FROM ledger l LEFT JOIN wallets w ON w.id = l.wallet_id"
            " WHERE w.id IS NULL"
        )
        return int(value)

    async def non_integer_money(self) -> list[str]:
        """Money cells that are not INTEGER (only possible if a CHECK was bypassed)."""
        rows = await self._db.fetch_all(
            "SELECT 'wallet ' || id FROM wallets WHERE typeof(balance) <> 'integer'"
            " UNION ALL SELECT 'ledger entry ' || id FROM ledger"
            " WHERE typeof(amount) <> 'integer'"
            " UNION ALL SELECT 'activation ' || id FROM activations"
            " WHERE typeof(user_price) <> 'integer'"
        )
        return [str(r[0]) for r in rows]
