"""Group chats the bot is in, and their per-member daily limit."""

from __future__ import annotations

from storage.db import Transaction
from storage.models import Chat, from_row
from storage.repos._base import RepoBase, timestamp


class ChatsRepo(RepoBase):
    async def get(self, chat_id: int, *, tx: Transaction | None = None) -> Chat | None:
        row = await self._q(tx).fetch_one("SELECT * FROM chats WHERE id = ?", (chat_id,))
        return None if row is None else from_row(Chat, row)

    async def upsert(
        self,
        chat_id: int,
        *,
        type: str,
        title: str | None,
        tx: Transaction | None = None,
        now: float | None = None,
    ) -> Chat:
        row = await self._q(tx).fetch_one(
            "INSERT INTO chats (id, type, title, created_at) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (id) DO UPDATE SET type = excluded.type, title = excluded.title"
            " RETURNING *",
            (chat_id, type, title, timestamp(now)),
        )
        assert row is not None
        return from_row(Chat, row)

    async def set_member_daily_limit(
        self, chat_id: int, limit_units: int | None, *, tx: Transaction | None = None
    ) -> bool:
        res = await self._q(tx).execute(
            "UPDATE chats SET member_daily_limit_units = ? WHERE id = ?", (limit_units, chat_id)
        )
        return res.rowcount > 0
