"""Activations (one bought number each) and their compare-and-set state transitions."""

from __future__ import annotations

from collections.abc import Sequence

from storage.db import Transaction
from storage.models import (
    ACTIVE_STATES,
    UNSETTLED_STATES,
    Activation,
    ActivationState,
    MemberSpending,
    Sales,
    from_row,
)
from storage.repos._base import RepoBase, json_list, timestamp


class ActivationsRepo(RepoBase):
    async def create(
        self,
        tx: Transaction,
        *,
        user_id: int,
        wallet_id: int,
        chat_id: int | None,
        service_code: str,
        service_name: str,
        provider_id: str | None,
        country: str,
        user_price: int,
        upstream_price: int,
        idempotency_key: str,
        recon_token: str,
        now: float | None = None,
    ) -> Activation:
        row = await tx.fetch_one(
            "INSERT INTO activations (user_id, wallet_id, chat_id, state, service_code,"
            " service_name, provider_id, country, user_price, upstream_price, idempotency_key,"
            " recon_token, created_at)"
            " VALUES (?, ?, ?, 'purchasing', ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING *",
            (
                user_id,
                wallet_id,
                chat_id,
                service_code,
                service_name,
                provider_id,
                country,
                user_price,
                upstream_price,
                idempotency_key,
                recon_token,
                timestamp(now),
            ),
        )
        assert row is not None
        return from_row(Activation, row)

    async def get(self, activation_id: int, *, tx: Transaction | None = None) -> Activation | None:
        row = await self._q(tx).fetch_one(
            "SELECT * FROM activations WHERE id = ?", (activation_id,)
        )
        return None if row is None else from_row(Activation, row)

    async def get_by_key(
        self, idempotency_key: str, *, tx: Transaction | None = None
    ) -> Activation | None:
        row = await self._q(tx).fetch_one(
            "SELECT * FROM activations WHERE idempotency_key = ?", (idempotency_key,)
        )
        return None if row is None else from_row(Activation, row)

    async def list_for_user(
        self,
        user_id: int,
        *,
        states: Sequence[str] | None = None,
        limit: int = 10,
        offset: int = 0,
    ) -> list[Activation]:
        """Active ones first, then the history newest first; `states` filters."""
        rows = await self._db.fetch_all(
            "SELECT * FROM activations WHERE user_id = ?"
            " AND (? IS NULL OR state IN (SELECT value FROM json_each(?)))"
            " ORDER BY state IN (SELECT value FROM json_each(?)) DESC, created_at DESC, id DESC"
            " LIMIT ? OFFSET ?",
            (
                user_id,
                None if states is None else 1,
                json_list(states or ()),
                json_list(ACTIVE_STATES),
                limit,
                offset,
            ),
        )
        return [from_row(Activation, row) for row in rows]

    async def count_for_user(self, user_id: int, *, states: Sequence[str] | None = None) -> int:
        value = await self._db.fetch_value(
            "SELECT COUNT(*) FROM activations WHERE user_id = ?"
            " AND (? IS NULL OR state IN (SELECT value FROM json_each(?)))",
            (user_id, None if states is None else 1, json_list(states or ())),
        )
        return int(value)

    async def last_for_user(self, user_id: int, limit: int = 5) -> list[Activation]:
        """Most recent purchases whatever their state (the "recent services" row)."""
        rows = await self._db.fetch_all(
            "SELECT * FROM activations WHERE user_id = ? ORDER BY created_at DESC, id DESC LIMIT ?",
            (user_id, limit),
        )
        return [from_row(Activation, row) for row in rows]

    async def list_waiting(self) -> list[Activation]:
        """Every activation the poller must follow (after a restart: all of them)."""
        rows = await self._db.fetch_all(
            "SELECT * FROM activations WHERE state = 'waiting' ORDER BY id"
        )
        return [from_row(Activation, row) for row in rows]

    async def change_mark(self) -> int:
        """The newest `change_seq` (migration 0006): taken BEFORE a full read, so that a
        change committed between the two is seen again by `changed_since`, not missed."""
        value = await self._db.fetch_value("SELECT MAX(change_seq) FROM activations")
        return int(value or 0)

    async def changed_since(self, mark: int) -> tuple[int, list[Activation]]:
        """Every activation inserted, or updated in a column the poller keeps, after `mark`;
        and the mark to ask from next time."""
        rows = await self._db.fetch_all(
            "SELECT * FROM activations WHERE change_seq > ? ORDER BY change_seq", (mark,)
        )
        if not rows:
            return mark, []
        return int(rows[-1]["change_seq"]), [from_row(Activation, row) for row in rows]

    async def list_unsettled(
        self, *, sent_before: float | None = None, tx: Transaction | None = None
    ) -> list[Activation]:
        """Activations in purchasing/unknown whose purchase call left before the cut-off
        (judged by when they were held if the send time is unknown), oldest first; not those
        still waiting in the purchase queue."""
        rows = await self._q(tx).fetch_all(
            "SELECT * FROM activations WHERE state IN (SELECT value FROM json_each(?))"
            " AND (? IS NULL OR COALESCE(sent_at, created_at) <= ?)"
            # A queued purchase was never sent: there is nothing upstream to settle it by.
            " AND id NOT IN (SELECT activation_id FROM purchase_queue)"
            " ORDER BY created_at, id",
            (json_list(UNSETTLED_STATES), sent_before, sent_before),
        )
        return [from_row(Activation, row) for row in rows]

    async def mark_sent(self, tx: Transaction, activation_id: int, *, now: float) -> None:
        """The purchase call is let go now: reconciliation's grace is measured from here."""
        await tx.execute(
            "UPDATE activations SET sent_at = ? WHERE id = ? AND state = 'purchasing'",
            (now, activation_id),
        )

    async def owe_cancel(self, tx: Transaction, activation_id: int, *, now: float) -> None:
        """The user was refunded for a number the upstream sold: /cancel is owed for it."""
        await tx.execute(
            "UPDATE activations SET cancel_owed_at = ?"
            " WHERE id = ? AND upstream_id IS NOT NULL AND cancel_owed_at IS NULL",
            (now, activation_id),
        )

    async def list_owed_cancels(self, *, limit: int = -1) -> list[Activation]:
        """Activations whose upstream cancel is still owed, the longest owed first."""
        rows = await self._db.fetch_all(
            "SELECT * FROM activations WHERE cancel_owed_at IS NOT NULL"
            " ORDER BY cancel_owed_at, id LIMIT ?",
            (limit,),
        )
        return [from_row(Activation, row) for row in rows]

    async def settle_owed_cancel(self, activation_id: int) -> None:
        """The upstream refunded the number, or answered that there is nothing to refund."""
        await self._db.execute(
            "UPDATE activations SET cancel_owed_at = NULL WHERE id = ?", (activation_id,)
        )

    async def set_card(
        self,
        activation_id: int,
        chat_id: int,
        message_id: int,
        *,
        tx: Transaction | None = None,
    ) -> None:
        await self._q(tx).execute(
            "UPDATE activations SET card_chat_id = ?, card_message_id = ? WHERE id = ?",
            (chat_id, message_id, activation_id),
        )

    # --- state transitions: each is a compare-and-set on the current state, so a transition
    # --- that lost a race changes nothing and returns False.

    async def mark_waiting(
        self,
        tx: Transaction,
        activation_id: int,
        *,
        upstream_id: str,
        phone_number: str,
        upstream_amount: int | None,
        purchased_at: float,
        cancel_after: float,
        from_states: Sequence[str] = UNSETTLED_STATES,
    ) -> bool:
        res = await tx.execute(
            "UPDATE activations SET state = 'waiting', upstream_id = ?, phone_number = ?,"
            " upstream_amount = ?, purchased_at = ?, cancel_after = ?, next_poll_at = ?,"
            " error_code = NULL"
            " WHERE id = ? AND state IN (SELECT value FROM json_each(?))",
            (
                upstream_id,
                phone_number,
                upstream_amount,
                purchased_at,
                cancel_after,
                purchased_at,
                activation_id,
                json_list(from_states),
            ),
        )
        return res.rowcount > 0

    async def mark_unknown(
        self, tx: Transaction, activation_id: int, *, error_code: str | None
    ) -> bool:
        res = await tx.execute(
            "UPDATE activations SET state = 'unknown', error_code = ?"
            " WHERE id = ? AND state = 'purchasing'",
            (error_code, activation_id),
        )
        return res.rowcount > 0

    async def mark_completed(
        self,
        tx: Transaction,
        activation_id: int,
        *,
        code: str,
        completed_at: float,
        from_states: Sequence[str],
        upstream_id: str | None = None,
        phone_number: str | None = None,
        upstream_amount: int | None = None,
        purchased_at: float | None = None,
    ) -> bool:
        """A code arrived: final, no refund. The upstream fields fill in only where unknown
        (reconciliation links an order it never saw the purchase answer of)."""
        res = await tx.execute(
            "UPDATE activations SET state = 'completed', code = ?, completed_at = ?,"
            " finished_at = ?, upstream_id = COALESCE(upstream_id, ?),"
            " phone_number = COALESCE(phone_number, ?),"
            " upstream_amount = COALESCE(upstream_amount, ?),"
            " purchased_at = COALESCE(purchased_at, ?), next_poll_at = NULL"
            " WHERE id = ? AND state IN (SELECT value FROM json_each(?))",
            (
                code,
                completed_at,
                completed_at,
                upstream_id,
                phone_number,
                upstream_amount,
                purchased_at,
                activation_id,
                json_list(from_states),
            ),
        )
        return res.rowcount > 0

    async def mark_ended(
        self,
        tx: Transaction,
        activation_id: int,
        *,
        state: ActivationState,
        finished_at: float,
        from_states: Sequence[str],
        error_code: str | None = None,
        upstream_id: str | None = None,
        phone_number: str | None = None,
        upstream_amount: int | None = None,
    ) -> bool:
        """Ended without a code (cancelled / expired / failed). The caller refunds in the same
        transaction when this returns True."""
        if state not in ("cancelled", "expired", "failed"):
            raise ValueError(f"not an ending without a code: {state}")
        res = await tx.execute(
            "UPDATE activations SET state = ?, finished_at = ?,"
            " error_code = COALESCE(?, error_code), upstream_id = COALESCE(upstream_id, ?),"
            " phone_number = COALESCE(phone_number, ?),"
            " upstream_amount = COALESCE(upstream_amount, ?), next_poll_at = NULL"
            " WHERE id = ? AND state IN (SELECT value FROM json_each(?))",
            (
                state,
                finished_at,
                error_code,
                upstream_id,
                phone_number,
                upstream_amount,
                activation_id,
                json_list(from_states),
            ),
        )
        return res.rowcount > 0

    async def count_by_state(self) -> dict[str, int]:
        rows = await self._db.fetch_all("SELECT state, COUNT(*) FROM activations GROUP BY state")
        return {str(row[0]): int(row[1]) for row in rows}

    async def member_spent(
        self, wallet_id: int, user_id: int, since: float, *, tx: Transaction | None = None
    ) -> int:
        """What one member's purchases from a (group) wallet hold or cost since `since`;
        refunded ones do not count."""
        value = await self._q(tx).fetch_value(
            "SELECT COALESCE(SUM(user_price), 0) FROM activations"
            " WHERE wallet_id = ? AND user_id = ? AND created_at >= ?"
            " AND state IN ('purchasing', 'unknown', 'waiting', 'completed')",
            (wallet_id, user_id, since),
        )
        return int(value)

    async def spending_by_member(
        self, wallet_id: int, since: float, *, tx: Transaction | None = None
    ) -> list[MemberSpending]:
        """Per buyer: purchases from a (group) wallet since `since` that kept their charge
        (or still hold it), biggest spender first."""
        rows = await self._q(tx).fetch_all(
            "SELECT user_id, COUNT(*), COALESCE(SUM(user_price), 0) FROM activations"
            " WHERE wallet_id = ? AND created_at >= ?"
            " AND state IN ('purchasing', 'unknown', 'waiting', 'completed')"
            " GROUP BY user_id ORDER BY 3 DESC, user_id",
            (wallet_id, since),
        )
        return [MemberSpending(user_id=int(r[0]), count=int(r[1]), units=int(r[2])) for r in rows]

    async def sales(self, *, since: float | None = None, until: float | None = None) -> Sales:
        """Activations bought in [since, until) that kept their charge."""
        row = await self._db.fetch_one(
            "SELECT COUNT(*), COALESCE(SUM(user_price), 0),"
            " COALESCE(SUM(COALESCE(upstream_amount, upstream_price)), 0) FROM activations"
            " WHERE state IN ('waiting', 'completed')"
            " AND (? IS NULL OR created_at >= ?) AND (? IS NULL OR created_at < ?)",
            (since, since, until, until),
        )
        assert row is not None
        return Sales(count=int(row[0]), revenue_units=int(row[1]), cost_units=int(row[2]))

    async def count_unsettled(self) -> int:
        """Purchases sent upstream whose outcome is still unknown (`list_unsettled` without a
        cut-off, counted): reconciliation's backlog."""
        value = await self._db.fetch_value(
            "SELECT COUNT(*) FROM activations WHERE state IN (SELECT value FROM json_each(?))"
            " AND id NOT IN (SELECT activation_id FROM purchase_queue)",
            (json_list(UNSETTLED_STATES),),
        )
        return int(value)

    async def refund_counts(self) -> dict[tuple[str, str | None], int]:
        """Refunded activations by (state, error_code): every refund path, read from the
        ledger's one-refund-per-activation index."""
        rows = await self._db.fetch_all(
            "SELECT a.state, a.error_code, COUNT(*) FROM ledger AS l"
            " JOIN activations AS a ON a.id = l.activation_id"
            " WHERE l.kind = 'refund' GROUP BY a.state, a.error_code"
        )
        return {(str(r[0]), None if r[1] is None else str(r[1])): int(r[2]) for r in rows}
