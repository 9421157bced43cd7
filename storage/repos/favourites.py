"""The services each user starred, shown first in the catalogue."""

from __future__ import annotations

from storage.repos._base import RepoBase, timestamp


class FavouritesRepo(RepoBase):
    async def codes(self, user_id: int) -> set[str]:
        """The service codes this user starred."""
        rows = await self._db.fetch_all(
            "SELECT service_code FROM favourites WHERE user_id = ?", (user_id,)
        )
        return {str(row[0]) for row in rows}

    async def toggle(self, user_id: int, code: str, *, now: float | None = None) -> bool:
        """Star or unstar a service; returns whether it is a favourite now."""
        async with self._db.transaction() as tx:
            removed = await tx.execute(
                "DELETE FROM favourites WHERE user_id = ? AND service_code = ?", (user_id, code)
            )
            if removed.rowcount:
                return False
            await tx.execute(
                "INSERT INTO favourites (user_id, service_code, created_at) VALUES (?, ?, ?)",
                (user_id, code, timestamp(now)),
            )
            return True
