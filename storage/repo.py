"""Repositories: the only place the bot's SQL lives.

`Repo(db)` holds one repository per table. Reads take an optional `tx=` so they can run inside
a caller's transaction (the database lock is not re-entrant); writes that must be atomic with
others take the transaction handle as their first argument. Values always travel as `?`
parameters; a variable list of states travels as ONE JSON parameter read by `json_each`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from storage.db import Database, ExecResult, Params, Row, Transaction
from storage.models import (
    ACTIVE_STATES,
    UNSETTLED_STATES,
    Activation,
    ActivationState,
    Broadcast,
    Chat,
    LedgerEntry,
    MemberSpending,
    OutboxMessage,
    OwnerKind,
    Payment,
    Sales,
    User,
    Wallet,
    from_row,
)
from storage.queue import QueueRepo


class Executor(Protocol):
    async def execute(self, sql: str, params: Params = ()) -> ExecResult: ...
    async def fetch_one(self, sql: str, params: Params = ()) -> Row | None: ...
    async def fetch_all(self, sql: str, params: Params = ()) -> list[Row]: ...
    async def fetch_value(self, sql: str, params: Params = ()) -> Any: ...


def _now(now: float | None) -> float:
    return time.time() if now is None else now


def _states(states: Iterable[str]) -> str:
    return json.dumps(list(states))


class _Base:
    def __init__(self, db: Database) -> None:
        self._db = db

    def _q(self, tx: Transaction | None) -> Executor:
        return tx if tx is not None else self._db


class UsersRepo(_Base):
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
            (user_id, username, first_name, language, _now(now)),
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


class ChatsRepo(_Base):
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
            (chat_id, type, title, _now(now)),
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


class WalletsRepo(_Base):
    async def get(self, wallet_id: int, *, tx: Transaction | None = None) -> Wallet | None:
        row = await self._q(tx).fetch_one("SELECT * FROM wallets WHERE id = ?", (wallet_id,))
        return None if row is None else from_row(Wallet, row)

    async def get_by_owner(
        self, owner_kind: OwnerKind, owner_id: int, *, tx: Transaction | None = None
    ) -> Wallet | None:
        row = await self._q(tx).fetch_one(
            "SELECT * FROM wallets WHERE owner_kind = ? AND owner_id = ?", (owner_kind, owner_id)
        )
        return None if row is None else from_row(Wallet, row)

    async def get_or_create(
        self, tx: Transaction, owner_kind: OwnerKind, owner_id: int, *, now: float | None = None
    ) -> tuple[Wallet, bool]:
        row = await tx.fetch_one(
            "INSERT INTO wallets (owner_kind, owner_id, created_at) VALUES (?, ?, ?)"
            " ON CONFLICT (owner_kind, owner_id) DO NOTHING RETURNING *",
            (owner_kind, owner_id, _now(now)),
        )
        if row is not None:
            return from_row(Wallet, row), True
        wallet = await self.get_by_owner(owner_kind, owner_id, tx=tx)
        assert wallet is not None
        return wallet, False

    async def count(self) -> int:
        return int(await self._db.fetch_value("SELECT COUNT(*) FROM wallets"))

    async def total_balance(self, owner_kind: OwnerKind | None = None) -> int:
        if owner_kind is None:
            value = await self._db.fetch_value("SELECT COALESCE(SUM(balance), 0) FROM wallets")
        else:
            value = await self._db.fetch_value(
                "SELECT COALESCE(SUM(balance), 0) FROM wallets WHERE owner_kind = ?",
                (owner_kind,),
            )
        return int(value)

    async def list_all(self) -> list[Wallet]:
        rows = await self._db.fetch_all("SELECT * FROM wallets ORDER BY id")
        return [from_row(Wallet, row) for row in rows]


class LedgerRepo(_Base):
    async def append(
        self,
        tx: Transaction,
        wallet_id: int,
        amount: int,
        kind: str,
        *,
        activation_id: int | None = None,
        payment_id: int | None = None,
        counterparty_wallet_id: int | None = None,
        actor_id: int | None = None,
        note: str | None = None,
        now: float | None = None,
    ) -> LedgerEntry:
        """Append one entry; the `ledger_apply` trigger moves the wallet's cached balance in
        the same statement, and an overdraft makes the statement fail (IntegrityError)."""
        if isinstance(amount, bool) or not isinstance(amount, int):
            raise TypeError(f"ledger amounts are integer units, got {type(amount).__name__}")
        row = await tx.fetch_one(
            "INSERT INTO ledger (wallet_id, amount, kind, activation_id, payment_id,"
            " counterparty_wallet_id, actor_id, note, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING *",
            (
                wallet_id,
                amount,
                kind,
                activation_id,
                payment_id,
                counterparty_wallet_id,
                actor_id,
                note,
                _now(now),
            ),
        )
        assert row is not None
        return from_row(LedgerEntry, row)

    async def last_entries(
        self,
        wallet_id: int,
        limit: int = 10,
        *,
        before_id: int | None = None,
        tx: Transaction | None = None,
    ) -> list[LedgerEntry]:
        """Newest first; page on with `before_id` = the last id of the previous page."""
        rows = await self._q(tx).fetch_all(
            "SELECT * FROM ledger WHERE wallet_id = ? AND (? IS NULL OR id < ?)"
            " ORDER BY id DESC LIMIT ?",
            (wallet_id, before_id, before_id, limit),
        )
        return [from_row(LedgerEntry, row) for row in rows]

    async def for_activation(
        self, activation_id: int, *, tx: Transaction | None = None
    ) -> list[LedgerEntry]:
        rows = await self._q(tx).fetch_all(
            "SELECT * FROM ledger WHERE activation_id = ? ORDER BY id", (activation_id,)
        )
        return [from_row(LedgerEntry, row) for row in rows]

    async def sum_for_wallet(self, wallet_id: int, *, tx: Transaction | None = None) -> int:
        value = await self._q(tx).fetch_value(
            "SELECT COALESCE(SUM(amount), 0) FROM ledger WHERE wallet_id = ?", (wallet_id,)
        )
        return int(value)

    async def totals_by_kind(
        self,
        *,
        since: float | None = None,
        until: float | None = None,
        wallet_id: int | None = None,
    ) -> dict[str, int]:
        """Signed sums per kind over [since, until) (the stats panel: revenue is
        -purchase - refund)."""
        rows = await self._db.fetch_all(
            "SELECT kind, COALESCE(SUM(amount), 0) FROM ledger"
            " WHERE (? IS NULL OR created_at >= ?) AND (? IS NULL OR created_at < ?)"
            " AND (? IS NULL OR wallet_id = ?) GROUP BY kind",
            (since, since, until, until, wallet_id, wallet_id),
        )
        return {str(row[0]): int(row[1]) for row in rows}

    async def count(self) -> int:
        return int(await self._db.fetch_value("SELECT COUNT(*) FROM ledger"))

    async def entries_page(
        self,
        *,
        after_id: int = 0,
        limit: int = 500,
        since: float | None = None,
        until: float | None = None,
    ) -> list[LedgerEntry]:
        """Oldest first, for the CSV export; page on with `after_id` = the last id seen."""
        rows = await self._db.fetch_all(
            "SELECT * FROM ledger WHERE id > ? AND (? IS NULL OR created_at >= ?)"
            " AND (? IS NULL OR created_at < ?) ORDER BY id LIMIT ?",
            (after_id, since, since, until, until, limit),
        )
        return [from_row(LedgerEntry, row) for row in rows]


class ActivationsRepo(_Base):
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
                _now(now),
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

    async def get_by_upstream_id(
        self, upstream_id: str, *, tx: Transaction | None = None
    ) -> Activation | None:
        row = await self._q(tx).fetch_one(
            "SELECT * FROM activations WHERE upstream_id = ?", (upstream_id,)
        )
        return None if row is None else from_row(Activation, row)

    async def list_active_for_user(self, user_id: int) -> list[Activation]:
        """The user's numbers still in play, newest first."""
        rows = await self._db.fetch_all(
            "SELECT * FROM activations WHERE user_id = ?"
            " AND state IN (SELECT value FROM json_each(?)) ORDER BY created_at DESC, id DESC",
            (user_id, _states(ACTIVE_STATES)),
        )
        return [from_row(Activation, row) for row in rows]

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
                _states(states or ()),
                _states(ACTIVE_STATES),
                limit,
                offset,
            ),
        )
        return [from_row(Activation, row) for row in rows]

    async def count_for_user(self, user_id: int, *, states: Sequence[str] | None = None) -> int:
        value = await self._db.fetch_value(
            "SELECT COUNT(*) FROM activations WHERE user_id = ?"
            " AND (? IS NULL OR state IN (SELECT value FROM json_each(?)))",
            (user_id, None if states is None else 1, _states(states or ())),
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

    async def due_for_poll(self, now: float, *, limit: int = 100) -> list[Activation]:
        """Waiting activations whose next poll time has come, the longest-due first."""
        rows = await self._db.fetch_all(
            "SELECT * FROM activations WHERE state = 'waiting'"
            " AND (next_poll_at IS NULL OR next_poll_at <= ?)"
            " ORDER BY COALESCE(next_poll_at, 0), id LIMIT ?",
            (now, limit),
        )
        return [from_row(Activation, row) for row in rows]

    async def schedule_poll(
        self,
        activation_ids: Sequence[int],
        next_poll_at: float,
        *,
        count_attempt: bool = True,
        tx: Transaction | None = None,
    ) -> int:
        res = await self._q(tx).execute(
            "UPDATE activations SET next_poll_at = ?, poll_attempts = poll_attempts + ?"
            " WHERE id IN (SELECT value FROM json_each(?)) AND state = 'waiting'",
            (next_poll_at, int(count_attempt), json.dumps(list(activation_ids))),
        )
        return res.rowcount

    async def list_unsettled(
        self, *, created_before: float | None = None, tx: Transaction | None = None
    ) -> list[Activation]:
        """Activations in purchasing/unknown (created before the cut-off), oldest first;
        not those still waiting in the purchase queue."""
        rows = await self._q(tx).fetch_all(
            "SELECT * FROM activations WHERE state IN (SELECT value FROM json_each(?))"
            " AND (? IS NULL OR created_at <= ?)"
            # A queued purchase was never sent: there is nothing upstream to settle it by.
            " AND id NOT IN (SELECT activation_id FROM purchase_queue)"
            " ORDER BY created_at, id",
            (_states(UNSETTLED_STATES), created_before, created_before),
        )
        return [from_row(Activation, row) for row in rows]

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
                _states(from_states),
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
                _states(from_states),
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
                _states(from_states),
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


class PaymentsRepo(_Base):
    async def create(
        self,
        tx: Transaction,
        *,
        wallet_id: int,
        user_id: int,
        telegram_payment_charge_id: str,
        stars: int,
        amount_units: int,
        payload: str,
        now: float | None = None,
    ) -> Payment | None:
        """The new payment, or None when this charge id was recorded before."""
        row = await tx.fetch_one(
            "INSERT INTO payments (wallet_id, user_id, telegram_payment_charge_id, stars,"
            " amount_units, payload, status, created_at) VALUES (?, ?, ?, ?, ?, ?, 'paid', ?)"
            " ON CONFLICT (telegram_payment_charge_id) DO NOTHING RETURNING *",
            (
                wallet_id,
                user_id,
                telegram_payment_charge_id,
                stars,
                amount_units,
                payload,
                _now(now),
            ),
        )
        return None if row is None else from_row(Payment, row)

    async def get(self, payment_id: int, *, tx: Transaction | None = None) -> Payment | None:
        row = await self._q(tx).fetch_one("SELECT * FROM payments WHERE id = ?", (payment_id,))
        return None if row is None else from_row(Payment, row)

    async def get_by_charge_id(
        self, charge_id: str, *, tx: Transaction | None = None
    ) -> Payment | None:
        row = await self._q(tx).fetch_one(
            "SELECT * FROM payments WHERE telegram_payment_charge_id = ?", (charge_id,)
        )
        return None if row is None else from_row(Payment, row)

    async def mark_refunded(
        self, tx: Transaction, payment_id: int, *, now: float | None = None
    ) -> bool:
        res = await tx.execute(
            "UPDATE payments SET status = 'refunded', refunded_at = ?"
            " WHERE id = ? AND status = 'paid'",
            (_now(now), payment_id),
        )
        return res.rowcount > 0

    async def list_for_user(self, user_id: int, *, limit: int = 20) -> list[Payment]:
        rows = await self._db.fetch_all(
            "SELECT * FROM payments WHERE user_id = ? ORDER BY id DESC LIMIT ?", (user_id, limit)
        )
        return [from_row(Payment, row) for row in rows]

    async def list_for_wallet(self, wallet_id: int, *, limit: int = 20) -> list[Payment]:
        rows = await self._db.fetch_all(
            "SELECT * FROM payments WHERE wallet_id = ? ORDER BY id DESC LIMIT ?",
            (wallet_id, limit),
        )
        return [from_row(Payment, row) for row in rows]

    async def undo_refund(self, tx: Transaction, payment_id: int) -> bool:
        """Back to 'paid' after Telegram definitely refused a refund we had booked."""
        res = await tx.execute(
            "UPDATE payments SET status = 'paid', refunded_at = NULL"
            " WHERE id = ? AND status = 'refunded'",
            (payment_id,),
        )
        return res.rowcount > 0


class SettingsRepo(_Base):
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
            (key, value, _now(now)),
        )

    async def delete(self, key: str, *, tx: Transaction | None = None) -> bool:
        res = await self._q(tx).execute("DELETE FROM settings WHERE key = ?", (key,))
        return res.rowcount > 0

    async def all(self) -> dict[str, str]:
        rows = await self._db.fetch_all("SELECT key, value FROM settings ORDER BY key")
        return {str(row[0]): str(row[1]) for row in rows}


class OutboxRepo(_Base):
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
        created = _now(now)
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

    async def get(self, message_id: int) -> OutboxMessage | None:
        row = await self._db.fetch_one("SELECT * FROM outbox WHERE id = ?", (message_id,))
        return None if row is None else from_row(OutboxMessage, row)

    async def claim_due(
        self, now: float, *, limit: int = 30, lease_seconds: float = 60.0
    ) -> list[OutboxMessage]:
        """Take up to `limit` due messages, oldest first. Each is leased: its next attempt
        moves `lease_seconds` ahead, so one that was claimed by a process that then died is
        sent again after the lease instead of never."""
        rows = await self._db.fetch_all(
            "UPDATE outbox SET next_attempt_at = ?, attempts = attempts + 1"
            " WHERE id IN (SELECT id FROM outbox WHERE state = 'pending'"
            " AND next_attempt_at <= ? ORDER BY next_attempt_at, id LIMIT ?) RETURNING *",
            (now + lease_seconds, now, limit),
        )
        messages = [from_row(OutboxMessage, row) for row in rows]
        messages.sort(key=lambda m: (m.created_at, m.id))
        return messages

    async def mark_sent(
        self, outbox_id: int, *, message_id: int | None, now: float | None = None
    ) -> bool:
        res = await self._db.execute(
            "UPDATE outbox SET state = 'sent', sent_at = ?, message_id = ?, last_error = NULL"
            " WHERE id = ? AND state = 'pending'",
            (_now(now), message_id, outbox_id),
        )
        return res.rowcount > 0

    async def mark_failed(self, outbox_id: int, error: str, *, retry_at: float | None) -> bool:
        """Record a failed attempt: with `retry_at` it stays pending until then, without it the
        message is given up as 'failed'."""
        if retry_at is not None:
            res = await self._db.execute(
                "UPDATE outbox SET last_error = ?, next_attempt_at = ?"
                " WHERE id = ? AND state = 'pending'",
                (error, retry_at, outbox_id),
            )
        else:
            res = await self._db.execute(
                "UPDATE outbox SET state = 'failed', last_error = ?"
                " WHERE id = ? AND state = 'pending'",
                (error, outbox_id),
            )
        return res.rowcount > 0

    async def mark_dropped(self, outbox_id: int, reason: str) -> bool:
        """Not worth sending any more (the user blocked the bot)."""
        res = await self._db.execute(
            "UPDATE outbox SET state = 'dropped', last_error = ?"
            " WHERE id = ? AND state = 'pending'",
            (reason, outbox_id),
        )
        return res.rowcount > 0

    async def drop_pending_for_chat(self, chat_id: int, reason: str) -> int:
        res = await self._db.execute(
            "UPDATE outbox SET state = 'dropped', last_error = ?"
            " WHERE chat_id = ? AND state = 'pending'",
            (reason, chat_id),
        )
        return res.rowcount

    async def count_by_state(self) -> dict[str, int]:
        rows = await self._db.fetch_all("SELECT state, COUNT(*) FROM outbox GROUP BY state")
        return {str(row[0]): int(row[1]) for row in rows}

    async def next_due_at(self) -> float | None:
        value = await self._db.fetch_value(
            "SELECT MIN(next_attempt_at) FROM outbox WHERE state = 'pending'"
        )
        return None if value is None else float(value)


class ActionKeysRepo(_Base):
    """Idempotency keys of money movements started from Telegram (see migration 0004)."""

    async def claim(
        self, tx: Transaction, key: str, kind: str, *, now: float | None = None
    ) -> bool:
        """Take the key inside the movement's transaction; False if it was taken before
        (the caller then moves nothing)."""
        row = await tx.fetch_one(
            "INSERT INTO action_keys (key, kind, created_at) VALUES (?, ?, ?)"
            " ON CONFLICT (key) DO NOTHING RETURNING key",
            (key, kind, _now(now)),
        )
        return row is not None

    async def attach(self, tx: Transaction, key: str, ledger_id: int) -> None:
        await tx.execute("UPDATE action_keys SET ledger_id = ? WHERE key = ?", (ledger_id, key))

    async def ledger_id(self, key: str, *, tx: Transaction | None = None) -> int | None:
        value = await self._q(tx).fetch_value(
            "SELECT ledger_id FROM action_keys WHERE key = ?", (key,)
        )
        return None if value is None else int(value)

    async def exists(self, key: str, *, tx: Transaction | None = None) -> bool:
        value = await self._q(tx).fetch_value("SELECT 1 FROM action_keys WHERE key = ?", (key,))
        return value is not None


class BroadcastsRepo(_Base):
    async def create(
        self, admin_id: int, text: str, *, tx: Transaction | None = None, now: float | None = None
    ) -> Broadcast:
        row = await self._q(tx).fetch_one(
            "INSERT INTO broadcasts (admin_id, text, created_at) VALUES (?, ?, ?) RETURNING *",
            (admin_id, text, _now(now)),
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
            (_now(now), recipients, broadcast_id),
        )
        return res.rowcount > 0

    async def cancel(
        self, broadcast_id: int, *, tx: Transaction | None = None, now: float | None = None
    ) -> bool:
        res = await self._q(tx).execute(
            "UPDATE broadcasts SET cancelled_at = ?"
            " WHERE id = ? AND confirmed_at IS NULL AND cancelled_at IS NULL",
            (_now(now), broadcast_id),
        )
        return res.rowcount > 0


@dataclass(frozen=True, slots=True)
class WalletAudit:
    wallet_id: int
    owner_kind: str
    owner_id: int
    balance: int
    ledger_sum: int
    entries: int


@dataclass(frozen=True, slots=True)
class ActivationAudit:
    """One activation with the ledger entries that concern it, summed."""

    id: int
    state: str
    wallet_id: int
    user_price: int
    created_at: float
    code: str | None
    upstream_id: str | None
    purchase_count: int
    purchase_sum: int
    refund_count: int
    refund_sum: int
    foreign_wallet_entries: int  # entries for this activation on a wallet that is not its own


@dataclass(frozen=True, slots=True)
class PaymentAudit:
    id: int
    wallet_id: int
    status: str
    amount_units: int
    credit_count: int
    credit_sum: int
    foreign_wallet_entries: int


class AuditRepo(_Base):
    """Read-only totals for `daisybot ledger-check`."""

    async def wallets(self) -> list[WalletAudit]:
        rows = await self._db.fetch_all(
            "SELECT w.id, w.owner_kind, w.owner_id, w.balance,"
            " COALESCE(SUM(l.amount), 0), COUNT(l.id)"
            " FROM wallets w LEFT JOIN ledger l ON l.wallet_id = w.id GROUP BY w.id ORDER BY w.id"
        )
        return [
            WalletAudit(
                wallet_id=int(r[0]),
                owner_kind=str(r[1]),
                owner_id=int(r[2]),
                balance=r[3],
                ledger_sum=int(r[4]),
                entries=int(r[5]),
            )
            for r in rows
        ]

    async def activations(self) -> list[ActivationAudit]:
        rows = await self._db.fetch_all(
            "SELECT a.id, a.state, a.wallet_id, a.user_price, a.created_at, a.code,"
            " a.upstream_id,"
            " COALESCE(SUM(l.kind = 'purchase'), 0),"
            " COALESCE(SUM(CASE WHEN l.kind = 'purchase' THEN l.amount END), 0),"
            " COALESCE(SUM(l.kind = 'refund'), 0),"
            " COALESCE(SUM(CASE WHEN l.kind = 'refund' THEN l.amount END), 0),"
            " COALESCE(SUM(l.wallet_id <> a.wallet_id), 0)"
            " FROM activations a LEFT JOIN ledger l ON l.activation_id = a.id"
            " GROUP BY a.id ORDER BY a.id"
        )
        return [
            ActivationAudit(
                id=int(r[0]),
                state=str(r[1]),
                wallet_id=int(r[2]),
                user_price=int(r[3]),
                created_at=float(r[4]),
                code=r[5],
                upstream_id=r[6],
                purchase_count=int(r[7]),
                purchase_sum=int(r[8]),
                refund_count=int(r[9]),
                refund_sum=int(r[10]),
                foreign_wallet_entries=int(r[11]),
            )
            for r in rows
        ]

    async def payments(self) -> list[PaymentAudit]:
        rows = await self._db.fetch_all(
            "SELECT p.id, p.wallet_id, p.status, p.amount_units,"
            " COALESCE(SUM(l.kind = 'stars'), 0),"
            " COALESCE(SUM(CASE WHEN l.kind = 'stars' THEN l.amount END), 0),"
            " COALESCE(SUM(l.wallet_id <> p.wallet_id), 0)"
            " FROM payments p LEFT JOIN ledger l ON l.payment_id = p.id"
            " GROUP BY p.id ORDER BY p.id"
        )
        return [
            PaymentAudit(
                id=int(r[0]),
                wallet_id=int(r[1]),
                status=str(r[2]),
                amount_units=int(r[3]),
                credit_count=int(r[4]),
                credit_sum=int(r[5]),
                foreign_wallet_entries=int(r[6]),
            )
            for r in rows
        ]

    async def unpaired_transfers(self) -> list[tuple[int, int, int]]:
        """(wallet, counterparty, net) for every pair of wallets whose transfers do not
        cancel out: money moved between wallets must neither appear nor vanish."""
        rows = await self._db.fetch_all(
            "SELECT MIN(wallet_id, counterparty_wallet_id), MAX(wallet_id, counterparty_wallet_id),"
            " SUM(amount) FROM ledger WHERE kind IN ('transfer_in', 'transfer_out')"
            " GROUP BY 1, 2 HAVING SUM(amount) <> 0"
        )
        return [(int(r[0]), int(r[1]), int(r[2])) for r in rows]

    async def entries_without_wallet(self) -> int:
        value = await self._db.fetch_value(
            "SELECT COUNT(*) FROM ledger l LEFT JOIN wallets w ON w.id = l.wallet_id"
            " WHERE w.id IS NULL"
        )
        return int(value)

    async def non_integer_money(self) -> list[str]:
        """Money cells that are not INTEGER (only possible if a CHECK was bypassed)."""
        rows = await self._db.fetch_all(
            "SELECT 'wallet ' || id FROM wallets WHERE typeof(balance) <> 'integer'"
            " UNION ALL SELECT 'ledger entry ' || id FROM ledger"
            " WHERE typeof(amount) <> 'integer'"
            " UNION ALL SELECT 'activation ' || id FROM activations"
            " WHERE typeof(user_price) <> 'integer'"
        )
        return [str(r[0]) for r in rows]


class Repo:
    """One holder for every repository, built on one Database."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.users = UsersRepo(db)
        self.chats = ChatsRepo(db)
        self.wallets = WalletsRepo(db)
        self.ledger = LedgerRepo(db)
        self.activations = ActivationsRepo(db)
        self.payments = PaymentsRepo(db)
        self.settings = SettingsRepo(db)
        self.outbox = OutboxRepo(db)
        self.audit = AuditRepo(db)
        self.queue = QueueRepo(db)
        self.action_keys = ActionKeysRepo(db)
        self.broadcasts = BroadcastsRepo(db)
