"""Telegram updates already taken (migration 0008), so a redelivered one is handled once."""

from __future__ import annotations

from storage.repos._base import RepoBase, timestamp


class UpdatesRepo(RepoBase):
    async def claim(self, update_id: int, *, now: float | None = None) -> bool:
        """Record `update_id` as taken; False when it was taken before (a redelivery)."""
        row = await self._db.fetch_one(
            "INSERT INTO handled_updates (update_id, handled_at) VALUES (?, ?)"
            " ON CONFLICT (update_id) DO NOTHING RETURNING update_id",
            (update_id, timestamp(now)),
        )
        return row is not None

    async def prune(self, older_than: float) -> int:
        """Forget updates taken before `older_than` (a Unix time); how many were forgotten."""
        result = await self._db.execute(
            "DELETE FROM handled_updates WHERE handled_at < ?", (older_than,)
        )
        return result.rowcount

    async def count(self) -> int:
        return int(await self._db.fetch_value("SELECT COUNT(*) FROM handled_updates"))
