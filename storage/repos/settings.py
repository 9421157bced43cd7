"""Key-value settings an admin changes at run time (the markup)."""

from __future__ import annotations

from storage.db import Transaction
from storage.repos._base import RepoBase, timestamp


class SettingsRepo(RepoBase):
    async def get(self, key: str, *, tx: Transaction | None = None) -> str | None:
        value = await self._q(tx).fetch_value("SELECT value FROM settings WHERE key = ?", (key,))
        return None if value is None else str(value)

    async def set(
        self, key: str, value: str, *, tx: Transaction | None = None, now: float | None = None
    ) -> None:
        await self._q(tx).execute(
            "INSERT INTO settings (key, value, updated_at) VALUES (?, ?, ?)"
            " ON CONFLICT (key) DO UPDATE SET value = excluded.value,"
            " updated_at = excluded.updated_at",
            (key, value, timestamp(now)),
        )

    async def delete(self, key: str, *, tx: Transaction | None = None) -> bool:
        res = await self._q(tx).execute("DELETE FROM settings WHERE key = ?", (key,))
        return res.rowcount > 0
