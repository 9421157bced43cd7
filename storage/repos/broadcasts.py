"""Admin broadcasts: a draft, confirmed once or cancelled."""

from __future__ import annotations

from storage.db import Transaction
from storage.models import Broadcast, from_row
from storage.repos._base import RepoBase, timestamp


class BroadcastsRepo(RepoBase):
    async def create(
        self, admin_id: int, text: str, *, tx: Transaction | None = None, now: float | None = None
    ) -> Broadcast:
        row = await self._q(tx).fetch_one(
            "INSERT INTO broadcasts (admin_id, text, created_at) VALUES (?, ?, ?) RETURNING *",
            (admin_id, text, timestamp(now)),
        )
        assert row is not None
        return from_row(Broadcast, row)

    async def get(self, broadcast_id: int, *, tx: Transaction | None = None) -> Broadcast | None:
        row = await self._q(tx).fetch_one("SELECT * FROM broadcasts WHERE id = ?", (broadcast_id,))
        return None if row is None else from_row(Broadcast, row)

    async def confirm(
        self, tx: Transaction, broadcast_id: int, recipients: int, *, now: float | None = None
    ) -> bool:
        """Draft → confirmed, once; False if it was confirmed or cancelled before."""
        res = await tx.execute(
            "UPDATE broadcasts SET confirmed_at = ?, recipients = ?"
            " WHERE id = ? AND confirmed_at IS NULL AND cancelled_at IS NULL",
            (timestamp(now), recipients, broadcast_id),
        )
        return res.rowcount > 0

    async def cancel(
        self, broadcast_id: int, *, tx: Transaction | None = None, now: float | None = None
    ) -> bool:
        res = await self._q(tx).execute(
            "UPDATE broadcasts SET cancelled_at = ?"
            " WHERE id = ? AND confirmed_at IS NULL AND cancelled_at IS NULL",
            (timestamp(now), broadcast_id),
        )
        return res.rowcount > 0
