"""The purchase queue's table (migration 0005): held purchases waiting for an upstream slot.

Reached as `Repo(db).queue`. A row exists only while its activation is `purchasing` and its
upstream call has not been sent; the place in line is the order of activation ids.
"""

from __future__ import annotations

from dataclasses import dataclass

from storage.db import Transaction
from storage.models import Activation, from_row
from storage.repos._base import RepoBase, timestamp


@dataclass(frozen=True, slots=True)
class QueueEntry:
    activation_id: int
    wallet_id: int
    joined_at: float
    deferrals: int


@dataclass(frozen=True, slots=True)
class QueuedActivation:
    """A queued activation with its 1-based place in line."""

    place: int
    activation: Activation
    deferrals: int


class QueueRepo(RepoBase):
    async def add(
        self,
        tx: Transaction,
        activation_id: int,
        wallet_id: int,
        *,
        now: float | None = None,
        deferrals: int = 0,
    ) -> None:
        """Take (or, after a deferral, take back) a place; the activation must be
        `purchasing` (a trigger refuses anything else)."""
        await tx.execute(
            "INSERT INTO purchase_queue (activation_id, wallet_id, joined_at, deferrals)"
            " VALUES (?, ?, ?, ?)",
            (activation_id, wallet_id, timestamp(now), deferrals),
        )

    async def remove(self, tx: Transaction, activation_id: int) -> QueueEntry | None:
        """Give up the place; the entry it had, or None if it was not queued (any more)."""
        row = await tx.fetch_one(
            "DELETE FROM purchase_queue WHERE activation_id = ? RETURNING *", (activation_id,)
        )
        return None if row is None else from_row(QueueEntry, row)

    async def get(self, activation_id: int, *, tx: Transaction | None = None) -> QueueEntry | None:
        row = await self._q(tx).fetch_one(
            "SELECT * FROM purchase_queue WHERE activation_id = ?", (activation_id,)
        )
        return None if row is None else from_row(QueueEntry, row)

    async def head(self, *, tx: Transaction | None = None) -> QueueEntry | None:
        row = await self._q(tx).fetch_one(
            "SELECT * FROM purchase_queue ORDER BY activation_id LIMIT 1"
        )
        return None if row is None else from_row(QueueEntry, row)

    async def is_empty(self, *, tx: Transaction | None = None) -> bool:
        value = await self._q(tx).fetch_value("SELECT EXISTS (SELECT 1 FROM purchase_queue)")
        return not value

    async def count(self, *, tx: Transaction | None = None) -> int:
        return int(await self._q(tx).fetch_value("SELECT COUNT(*) FROM purchase_queue"))

    async def count_for_wallet(self, wallet_id: int, *, tx: Transaction | None = None) -> int:
        value = await self._q(tx).fetch_value(
            "SELECT COUNT(*) FROM purchase_queue WHERE wallet_id = ?", (wallet_id,)
        )
        return int(value)

    async def place_of(self, activation_id: int, *, tx: Transaction | None = None) -> int | None:
        """1 for the head; None when the activation is not queued."""
        value = await self._q(tx).fetch_value(
            "SELECT CASE WHEN EXISTS (SELECT 1 FROM purchase_queue WHERE activation_id = ?)"
            " THEN (SELECT COUNT(*) FROM purchase_queue WHERE activation_id <= ?) END",
            (activation_id, activation_id),
        )
        return None if value is None else int(value)

    async def listing(
        self, *, limit: int = -1, tx: Transaction | None = None
    ) -> list[QueuedActivation]:
        """The line in order, with each activation (`limit` -1: all of it)."""
        rows = await self._q(tx).fetch_all(
            "SELECT a.*, q.deferrals AS queue_deferrals FROM purchase_queue q"
            " JOIN activations a ON a.id = q.activation_id ORDER BY q.activation_id LIMIT ?",
            (limit,),
        )
        return [
            QueuedActivation(
                place=place,
                activation=from_row(Activation, row),
                deferrals=int(row["queue_deferrals"]),
            )
            for place, row in enumerate(rows, start=1)
        ]

    async def recent_upstream_calls(self, since: float) -> int:
        """Purchase calls this database knows were sent at or after `since` (bought, rejected
        or of unknown outcome), to start a fresh rate limiter where the upstream's window
        still counts them after a restart."""
        # When the call left (`sent_at`), not when the money was held: a purchase that waited
        # in line was held long before its call, and counting it by the hold forgot the slot
        # its call still takes upstream. Rows from before migration 0007 have no send time.
        value = await self._db.fetch_value(
            "SELECT COUNT(*) FROM activations"
            " WHERE id NOT IN (SELECT activation_id FROM purchase_queue)"
            " AND (sent_at >= ? OR purchased_at >= ? OR (sent_at IS NULL"
            " AND purchased_at IS NULL AND state IN ('failed', 'unknown', 'purchasing')"
            " AND COALESCE(finished_at, created_at) >= ?))",
            (since, since, since),
        )
        return int(value)
