"""Idempotency keys of money movements started from Telegram (migration 0004)."""

from __future__ import annotations

from storage.db import Transaction
from storage.repos._base import RepoBase, timestamp


class ActionKeysRepo(RepoBase):
    async def claim(
        self, tx: Transaction, key: str, kind: str, *, now: float | None = None
    ) -> bool:
        """Take the key inside the movement's transaction; False if it was taken before
        (the caller then moves nothing)."""
        row = await tx.fetch_one(
            "INSERT INTO action_keys (key, kind, created_at) VALUES (?, ?, ?)"
            " ON CONFLICT (key) DO NOTHING RETURNING key",
            (key, kind, timestamp(now)),
        )
        return row is not None

    async def attach(self, tx: Transaction, key: str, ledger_id: int) -> None:
        await tx.execute("UPDATE action_keys SET ledger_id = ? WHERE key = ?", (ledger_id, key))
