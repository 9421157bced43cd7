"""The outbox table: messages queued for the one task that sends them (bot/telegram/outbox.py).

A message is `pending` until it is `sent`, `failed` (out of attempts) or `dropped` (pointless).
While one is handed to Telegram its `sending_since` is set, with a lease on `next_attempt_at`;
a process that stops without knowing how a request ended leaves it set, and `recover` makes
those due again at the next start-up. Every update is guarded by `state = 'pending'`, so a
message that was settled meanwhile is never changed again.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from storage.db import Transaction
from storage.repos._base import RepoBase, json_list, timestamp

# Longer error texts are cut: they are for an operator reading the table, not for replay.
_ERROR_CHARS = 500


@dataclass(frozen=True, slots=True)
class OutboxItem:
    """A pending message as the sender needs it; `payload` is {} if the stored one was not a
    JSON object (the sender then drops it as a bad payload)."""

    id: int
    chat_id: int
    kind: str
    payload: dict[str, Any]
    attempts: int
    # Unix time it was queued: a code's message is queued in the transaction that stored it.
    created_at: float = 0.0


@dataclass(frozen=True, slots=True)
class SentMark:
    """Telegram accepted this message; written later, together with other marks."""

    outbox_id: int
    message_id: int | None
    sent_at: float


@dataclass(frozen=True, slots=True)
class OutboxBacklog:
    pending: int  # not sent yet, retries waiting included
    due: int  # of those, may go now
    oldest_due_at: float | None  # when the oldest of those was queued


class OutboxRepo(RepoBase):
    async def enqueue(
        self,
        chat_id: int,
        kind: str,
        payload: Mapping[str, Any],
        *,
        dedupe_key: str | None = None,
        not_before: float | None = None,
        tx: Transaction | None = None,
        now: float | None = None,
    ) -> int | None:
        """Queue a message; returns its id, or None when `dedupe_key` was queued before
        (a code notified twice after a restart is sent once)."""
        created = timestamp(now)
        row = await self._q(tx).fetch_one(
            "INSERT INTO outbox (chat_id, kind, payload, dedupe_key, next_attempt_at, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (dedupe_key) DO NOTHING RETURNING id",
            (
                chat_id,
                kind,
                json.dumps(dict(payload), ensure_ascii=False, separators=(",", ":")),
                dedupe_key,
                created if not_before is None else not_before,
                created,
            ),
        )
        return None if row is None else int(row[0])

    async def due(
        self,
        now: float,
        *,
        limit: int,
        priorities: Mapping[str, int],
        default_priority: int,
        after_id: int = 0,
    ) -> list[OutboxItem]:
        """Messages that may go now, by `priorities` of their kind (lower first, unknown kinds
        at `default_priority`) then oldest first; `after_id` for only those queued since the
        last look."""
        rows = await self._db.fetch_all(
            "SELECT id, chat_id, kind, payload, attempts, created_at FROM outbox"
            " WHERE state = 'pending' AND next_attempt_at <= ? AND id > ?"
            # A chat whose earlier message waits for its retry gets nothing before it, so a
            # chat reads its messages in the order they were queued.
            " AND NOT EXISTS (SELECT 1 FROM outbox AS earlier"
            " WHERE earlier.chat_id = outbox.chat_id AND earlier.state = 'pending'"
            " AND earlier.id < outbox.id AND earlier.attempts > 0"
            " AND earlier.sending_since IS NULL AND earlier.next_attempt_at > ?)"
            " ORDER BY COALESCE((SELECT value FROM json_each(?) WHERE key = outbox.kind), ?), id"
            " LIMIT ?",
            (now, after_id, now, json.dumps(dict(priorities)), default_priority, limit),
        )
        items: list[OutboxItem] = []
        for row in rows:
            try:
                payload = json.loads(row["payload"])
            except ValueError:
                payload = {}
            items.append(
                OutboxItem(
                    id=int(row["id"]),
                    chat_id=int(row["chat_id"]),
                    kind=str(row["kind"]),
                    payload=payload if isinstance(payload, dict) else {},
                    attempts=int(row["attempts"]),
                    created_at=float(row["created_at"]),
                )
            )
        return items

    async def claim(
        self,
        ids: list[int],
        now: float,
        *,
        lease: float,
        sent: Sequence[SentMark] = (),
    ) -> set[int]:
        """Mark `ids` as being sent (an attempt counted, due again only after `lease`), and
        `sent` as sent, in one commit; returns the ids that were still claimable."""
        async with self._db.transaction() as tx:
            for mark in sent:
                await tx.execute(
                    "UPDATE outbox SET state = 'sent', sent_at = ?, message_id = ?,"
                    " last_error = NULL, sending_since = NULL WHERE id = ? AND state = 'pending'",
                    (mark.sent_at, mark.message_id, mark.outbox_id),
                )
            if not ids:
                return set()
            rows = await tx.fetch_all(
                "UPDATE outbox SET attempts = attempts + 1, sending_since = ?,"
                " next_attempt_at = ?"
                " WHERE id IN (SELECT value FROM json_each(?)) AND state = 'pending'"
                " AND sending_since IS NULL RETURNING id",
                (now, now + lease, json_list(ids)),
            )
        return {int(row[0]) for row in rows}

    async def retry(self, outbox_id: int, *, at: float, error: str) -> None:
        await self._db.execute(
            "UPDATE outbox SET next_attempt_at = ?, last_error = ?, sending_since = NULL"
            " WHERE id = ? AND state = 'pending'",
            (at, error[:_ERROR_CHARS], outbox_id),
        )

    async def finish(
        self, outbox_id: int, *, state: Literal["failed", "dropped"], error: str
    ) -> None:
        """Give up on one message: 'failed' (ran out of attempts) or 'dropped' (pointless)."""
        if state not in ("failed", "dropped"):
            raise ValueError(state)
        await self._db.execute(
            "UPDATE outbox SET state = ?, last_error = ?, sending_since = NULL"
            " WHERE id = ? AND state = 'pending'",
            (state, error[:_ERROR_CHARS], outbox_id),
        )

    async def drop_chat(self, chat_id: int, reason: str) -> int:
        """Drop everything pending for a chat that refuses the bot; how many were dropped."""
        res = await self._db.execute(
            "UPDATE outbox SET state = 'dropped', last_error = ?, sending_since = NULL"
            " WHERE chat_id = ? AND state = 'pending'",
            (reason, chat_id),
        )
        return res.rowcount

    async def retarget(self, outbox_id: int, chat_id: int) -> None:
        """The group became a supergroup: send to its new id, at once."""
        await self._db.execute(
            "UPDATE outbox SET chat_id = ?, sending_since = NULL, next_attempt_at = 0"
            " WHERE id = ? AND state = 'pending'",
            (chat_id, outbox_id),
        )

    async def recover(self, now: float) -> list[OutboxItem]:
        """Messages left being sent by a process that stopped without knowing how they ended:
        due again now. Returned (without their payloads) so the caller can log them."""
        async with self._db.transaction() as tx:
            rows = await tx.fetch_all(
                "UPDATE outbox SET sending_since = NULL, next_attempt_at = ?"
                " WHERE state = 'pending' AND sending_since IS NOT NULL"
                " RETURNING id, chat_id, kind, payload, attempts",
                (now,),
            )
        return [
            OutboxItem(int(r["id"]), int(r["chat_id"]), str(r["kind"]), {}, int(r["attempts"]))
            for r in rows
        ]

    async def pending_due(self, now: float) -> int:
        value = await self._db.fetch_value(
            "SELECT COUNT(*) FROM outbox WHERE state = 'pending' AND next_attempt_at <= ?",
            (now,),
        )
        return int(value)

    async def count_by_state(self) -> dict[str, int]:
        rows = await self._db.fetch_all("SELECT state, COUNT(*) FROM outbox GROUP BY state")
        return {str(row[0]): int(row[1]) for row in rows}

    async def backlog(self, now: float) -> OutboxBacklog:
        """How much waits to be sent, for `/metrics` and readiness."""
        row = await self._db.fetch_one(
            "SELECT COUNT(*) AS pending,"
            " COALESCE(SUM(next_attempt_at <= ?), 0) AS due,"
            " MIN(CASE WHEN next_attempt_at <= ? THEN created_at END) AS oldest_due"
            " FROM outbox WHERE state = 'pending'",
            (now, now),
        )
        assert row is not None
        oldest = row["oldest_due"]
        return OutboxBacklog(
            pending=int(row["pending"]),
            due=int(row["due"]),
            oldest_due_at=None if oldest is None else float(oldest),
        )
