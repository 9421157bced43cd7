"""Telegram users: names, language, ban and reachability, where group codes go."""

from __future__ import annotations

from storage.db import Transaction
from storage.models import User, from_row
from storage.repos._base import RepoBase, timestamp


class UsersRepo(RepoBase):
    async def get(self, user_id: int, *, tx: Transaction | None = None) -> User | None:
        row = await self._q(tx).fetch_one("SELECT * FROM users WHERE id = ?", (user_id,))
        return None if row is None else from_row(User, row)

    async def upsert(
        self,
        user_id: int,
        *,
        username: str | None,
        first_name: str,
        language: str | None = None,
        tx: Transaction | None = None,
        now: float | None = None,
    ) -> tuple[User, bool]:
        """Create the user or refresh the names Telegram sent; returns (user, created).

        The language is only set on creation: after that it is the user's own choice.
        """
        q = self._q(tx)
        row = await q.fetch_one(
            "INSERT INTO users (id, username, first_name, language, created_at)"
            " VALUES (?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING RETURNING *",
            (user_id, username, first_name, language, timestamp(now)),
        )
        if row is not None:
            return from_row(User, row), True
        row = await q.fetch_one(
            "UPDATE users SET username = ?, first_name = ? WHERE id = ? RETURNING *",
            (username, first_name, user_id),
        )
        assert row is not None
        return from_row(User, row), False

    async def set_language(
        self, user_id: int, language: str, *, tx: Transaction | None = None
    ) -> bool:
        res = await self._q(tx).execute(
            "UPDATE users SET language = ? WHERE id = ?", (language, user_id)
        )
        return res.rowcount > 0

    async def set_banned(
        self, user_id: int, banned: bool, *, tx: Transaction | None = None
    ) -> bool:
        res = await self._q(tx).execute(
            "UPDATE users SET banned = ? WHERE id = ? AND banned <> ?",
            (int(banned), user_id, int(banned)),
        )
        return res.rowcount > 0

    async def set_inactive(
        self, user_id: int, inactive: bool, *, tx: Transaction | None = None
    ) -> bool:
        res = await self._q(tx).execute(
            "UPDATE users SET inactive = ? WHERE id = ? AND inactive <> ?",
            (int(inactive), user_id, int(inactive)),
        )
        return res.rowcount > 0

    async def count(self, *, active_only: bool = False) -> int:
        if active_only:
            value = await self._db.fetch_value(
                "SELECT COUNT(*) FROM users WHERE banned = 0 AND inactive = 0"
            )
        else:
            value = await self._db.fetch_value("SELECT COUNT(*) FROM users")
        return int(value)

    async def broadcast_ids(self) -> list[int]:
        """Users a broadcast may reach: not banned and not known to have blocked the bot."""
        rows = await self._db.fetch_all(
            "SELECT id FROM users WHERE banned = 0 AND inactive = 0 ORDER BY id"
        )
        return [int(row[0]) for row in rows]

    async def find_by_username(
        self, username: str, *, tx: Transaction | None = None
    ) -> User | None:
        """The user with this @username (without the @), ignoring case as Telegram does."""
        row = await self._q(tx).fetch_one(
            "SELECT * FROM users WHERE username = ? COLLATE NOCASE ORDER BY id LIMIT 1",
            (username,),
        )
        return None if row is None else from_row(User, row)

    async def group_codes(self, user_id: int, *, tx: Transaction | None = None) -> str:
        """Where the user wants numbers and codes of group purchases: 'private' or 'group'."""
        value = await self._q(tx).fetch_value(
            "SELECT group_codes FROM users WHERE id = ?", (user_id,)
        )
        return "group" if value == "group" else "private"

    async def set_group_codes(
        self, user_id: int, where: str, *, tx: Transaction | None = None
    ) -> bool:
        if where not in ("private", "group"):
            raise ValueError(f"group_codes must be 'private' or 'group', got {where!r}")
        res = await self._q(tx).execute(
            "UPDATE users SET group_codes = ? WHERE id = ?", (where, user_id)
        )
        return res.rowcount > 0
