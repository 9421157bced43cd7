"""The one SQLite connection of the process, its transactions and its migrations.

Every coroutine shares one aiosqlite connection. SQLite transactions belong to a connection,
not to a coroutine, so two coroutines that interleave statements would silently share one
transaction: an asyncio.Lock is held for the whole of a transaction, and every single read
outside a transaction takes the same lock. Writers use `BEGIN IMMEDIATE` so a second process on
the same file (the crash tests, `daisybot ledger-check`) waits on `busy_timeout` instead of
failing half-way through a transaction with SQLITE_BUSY.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, TypeAlias

import aiosqlite

from storage.backup import hold_in_use_lock
from storage.migrator import MigrationError, apply_migrations, load_migrations

log = logging.getLogger(__name__)

Params: TypeAlias = Sequence[Any]
Row: TypeAlias = sqlite3.Row

DEFAULT_BUSY_TIMEOUT_MS = 10_000


@dataclass(frozen=True, slots=True)
class ExecResult:
    rowcount: int
    lastrowid: int | None


class _Executor:
    """Statements on the shared connection; callers must hold the database lock."""

    def __init__(self, conn: aiosqlite.Connection) -> None:
        self._conn = conn

    async def _execute(self, sql: str, params: Params) -> ExecResult:
        async with self._conn.execute(sql, tuple(params)) as cur:
            return ExecResult(rowcount=cur.rowcount, lastrowid=cur.lastrowid)

    async def _fetch_one(self, sql: str, params: Params) -> Row | None:
        async with self._conn.execute(sql, tuple(params)) as cur:
            row: Row | None = await cur.fetchone()
            return row

    async def _fetch_all(self, sql: str, params: Params) -> list[Row]:
        async with self._conn.execute(sql, tuple(params)) as cur:
            return list(await cur.fetchall())


class Transaction(_Executor):
    """The handle of one open `BEGIN IMMEDIATE` transaction; valid only inside its block."""

    def __init__(self, conn: aiosqlite.Connection) -> None:
        super().__init__(conn)
        self._open = True

    def _check(self) -> None:
        if not self._open:
            raise RuntimeError("transaction handle used after its block ended")

    async def execute(self, sql: str, params: Params = ()) -> ExecResult:
        self._check()
        return await self._execute(sql, params)

    async def fetch_one(self, sql: str, params: Params = ()) -> Row | None:
        self._check()
        return await self._fetch_one(sql, params)

    async def fetch_all(self, sql: str, params: Params = ()) -> list[Row]:
        self._check()
        return await self._fetch_all(sql, params)

    async def fetch_value(self, sql: str, params: Params = ()) -> Any:
        row = await self.fetch_one(sql, params)
        return None if row is None else row[0]


class Database:
    """Owns the connection; open with `await Database.open(path)`, end with `await close()`."""

    def __init__(self, conn: aiosqlite.Connection, path: str) -> None:
        self._conn = conn
        self._exec = _Executor(conn)
        self._lock = asyncio.Lock()
        self._owner: asyncio.Task[Any] | None = None
        self.path = path
        # The shared lock on `<db>.lock` (storage/backup.py): `daisybot restore` refuses while
        # any writer holds it. Read-only opens (ledger-check) do not take it.
        self._in_use: IO[bytes] | None = None
        # Activation ids whose upstream purchase call is running in THIS process, with the event
        # set when it settles. Reconciliation must not judge those by /history yet (the request
        # may still be queued in the rate limiter), and a double tap waits for the first tap.
        self.inflight_purchases: dict[int, asyncio.Event] = {}

    @classmethod
    async def open(
        cls,
        path: str | Path,
        *,
        migrate_to: int | None = None,
        migrations_dir: Path | None = None,
        busy_timeout_ms: int = DEFAULT_BUSY_TIMEOUT_MS,
        readonly: bool = False,
    ) -> Database:
        """Open (creating the file if needed) and bring the schema up to date.

        `migrate_to` stops at that schema version (the migration tests build old databases);
        `readonly` opens an existing file without migrating it (`daisybot ledger-check`).
        """
        path_str = str(path)
        target = await asyncio.to_thread(_locate, path_str, readonly)
        in_use = None if readonly else await asyncio.to_thread(hold_in_use_lock, path_str)
        try:
            conn = await aiosqlite.connect(target, uri=readonly, isolation_level=None)
        except BaseException:
            if in_use is not None:
                in_use.close()
            raise
        try:
            conn.row_factory = sqlite3.Row
            await conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
            if not readonly:
                await _enable_wal(conn, busy_timeout_ms)
                # FULL, not NORMAL: a purchase that happened upstream must survive a power cut
                # here, or reconciliation would have no row to attach it to.
                await conn.execute("PRAGMA synchronous = FULL")
                await apply_migrations(conn, load_migrations(migrations_dir), target=migrate_to)
            await conn.execute("PRAGMA foreign_keys = ON")
        except BaseException:
            await conn.close()
            if in_use is not None:
                in_use.close()
            raise
        database = cls(conn, path_str)
        database._in_use = in_use
        return database

    async def close(self) -> None:
        async with self._lock:
            await self._conn.close()
            if self._in_use is not None:
                self._in_use.close()
                self._in_use = None

    async def schema_version(self) -> int:
        value = await self.fetch_value("PRAGMA user_version")
        return int(value)

    async def _acquire(self) -> None:
        task = asyncio.current_task()
        if task is not None and task is self._owner:
            # Waiting on our own lock would hang forever; fail loudly instead.
            raise RuntimeError("nested database use inside a transaction: pass the tx handle")
        await self._lock.acquire()
        self._owner = task

    def _release(self) -> None:
        self._owner = None
        self._lock.release()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Transaction]:
        """`async with db.transaction() as tx:` — commit on success, roll back on any error."""
        await self._acquire()
        try:
            if self._conn.in_transaction:
                # Only possible after a cancelled COMMIT/ROLLBACK; never build on top of it.
                log.error("connection was left inside a transaction; rolling it back")
                await _uncancellable(self._conn.rollback())
            await self._conn.execute("BEGIN IMMEDIATE")
            tx = Transaction(self._conn)
            try:
                yield tx
                tx._open = False
                await _uncancellable(self._exec._execute("COMMIT", ()))
            except BaseException:
                tx._open = False
                # A failed COMMIT can leave the transaction open as well as a failed body.
                if self._conn.in_transaction:
                    await _uncancellable(self._exec._execute("ROLLBACK", ()))
                raise
        finally:
            self._release()

    async def execute(self, sql: str, params: Params = ()) -> ExecResult:
        """One statement in its own implicit transaction."""
        await self._acquire()
        try:
            return await self._exec._execute(sql, params)
        finally:
            self._release()

    async def fetch_one(self, sql: str, params: Params = ()) -> Row | None:
        await self._acquire()
        try:
            return await self._exec._fetch_one(sql, params)
        finally:
            self._release()

    async def fetch_all(self, sql: str, params: Params = ()) -> list[Row]:
        await self._acquire()
        try:
            return await self._exec._fetch_all(sql, params)
        finally:
            self._release()

    async def fetch_value(self, sql: str, params: Params = ()) -> Any:
        row = await self.fetch_one(sql, params)
        return None if row is None else row[0]


async def _enable_wal(conn: aiosqlite.Connection, busy_timeout_ms: int) -> None:
    """Switch to WAL. The switch takes an exclusive lock and SQLite answers SQLITE_BUSY at
    once, without its busy handler, when another process is opening the same new file at the
    same moment (two processes starting together): retry within the busy timeout instead."""
    deadline = time.monotonic() + busy_timeout_ms / 1000
    while True:
        try:
            await conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
        # A short back-off: the other process holds the lock only for its own switch.
        await asyncio.sleep(0.01)


def _locate(path: str, readonly: bool) -> str:
    """What to hand to sqlite: the path itself, or a read-only URI for an existing file."""
    if readonly:
        resolved = Path(path).resolve()
        if not resolved.exists():
            raise FileNotFoundError(path)
        return f"file:{resolved}?mode=ro"
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    return path


async def _uncancellable(aw: Awaitable[Any]) -> None:
    """Finish a COMMIT/ROLLBACK even if our task is cancelled meanwhile.

    The statement runs in aiosqlite's thread whatever happens to the awaiting task; releasing
    the lock before it finished would let the next transaction start on a half-closed one.
    """
    fut = asyncio.ensure_future(aw)
    cancelled = False
    while True:
        try:
            await asyncio.shield(fut)
            break
        except asyncio.CancelledError:
            cancelled = True
            if fut.done():
                break
    if cancelled:
        raise asyncio.CancelledError
    fut.result()


__all__ = ["Database", "ExecResult", "MigrationError", "Row", "Transaction"]
