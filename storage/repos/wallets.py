"""Wallets, one per user and one per group; the balance is a cache the ledger keeps."""

from __future__ import annotations

from storage.db import Transaction
from storage.models import OwnerKind, Wallet, from_row
from storage.repos._base import RepoBase, timestamp


class WalletsRepo(RepoBase):
    async def get(self, wallet_id: int, *, tx: Transaction | None = None) -> Wallet | None:
        row = await self._q(tx).fetch_one("SELECT * FROM wallets WHERE id = ?", (wallet_id,))
        return None if row is None else from_row(Wallet, row)

    async def get_by_owner(
        self, owner_kind: OwnerKind, owner_id: int, *, tx: Transaction | None = None
    ) -> Wallet | None:
        row = await self._q(tx).fetch_one(
            "SELECT * FROM wallets WHERE owner_kind = ? AND owner_id = ?", (owner_kind, owner_id)
        )
        return None if row is None else from_row(Wallet, row)

    async def get_or_create(
        self, tx: Transaction, owner_kind: OwnerKind, owner_id: int, *, now: float | None = None
    ) -> tuple[Wallet, bool]:
        row = await tx.fetch_one(
            "INSERT INTO wallets (owner_kind, owner_id, created_at) VALUES (?, ?, ?)"
            " ON CONFLICT (owner_kind, owner_id) DO NOTHING RETURNING *",
            (owner_kind, owner_id, timestamp(now)),
        )
        if row is not None:
            return from_row(Wallet, row), True
        wallet = await self.get_by_owner(owner_kind, owner_id, tx=tx)
        assert wallet is not None
        return wallet, False

    async def count(self) -> int:
        return int(await self._db.fetch_value("SELECT COUNT(*) FROM wallets"))

    async def total_balance(self, owner_kind: OwnerKind | None = None) -> int:
        if owner_kind is None:
            value = await self._db.fetch_value("SELECT COALESCE(SUM(balance), 0) FROM wallets")
        else:
            value = await self._db.fetch_value(
                "SELECT COALESCE(SUM(balance), 0) FROM wallets WHERE owner_kind = ?",
                (owner_kind,),
            )
        return int(value)

    async def list_all(self) -> list[Wallet]:
        rows = await self._db.fetch_all("SELECT * FROM wallets ORDER BY id")
        return [from_row(Wallet, row) for row in rows]
