"""Numbered SQL migrations applied in order, tracked by `PRAGMA user_version`.

A migration is `storage/migrations/NNNN_some_name.sql`; version N is the number. To change the
schema, ADD the next file; never edit one that has shipped (databases in the field already ran
it). Each file runs in one transaction together with the `user_version` bump, so a failing
migration leaves the database exactly at the previous version.

Foreign keys are switched off while migrating (SQLite's documented way to rebuild a table:
create the new one, copy, drop, rename) and `PRAGMA foreign_key_check` must come back empty
before a migration commits.
"""

from __future__ import annotations

import logging
import re
import sqlite3
from dataclasses import dataclass
from pathlib import Path

import aiosqlite

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


class MigrationError(RuntimeError):
    """The migration files or the database's schema version are not what this code expects."""


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str

    def statements(self) -> list[str]:
        return split_statements(self.sql)


def load_migrations(directory: Path | None = None) -> list[Migration]:
    """All migrations of `directory`, checked to be numbered 1, 2, 3, ... with no gap."""
    folder = directory or MIGRATIONS_DIR
    found: list[Migration] = []
    for path in sorted(folder.glob("*.sql")):
        match = _NAME.match(path.name)
        if match is None:
            raise MigrationError(f"migration file name must look like 0001_name.sql: {path.name}")
        found.append(Migration(int(match.group(1)), match.group(2), path.read_text("utf-8")))
    for expected, migration in enumerate(found, start=1):
        if migration.version != expected:
            raise MigrationError(
                f"migrations must be numbered without gaps or duplicates: expected {expected:04d}, "
                f"found {migration.version:04d}_{migration.name}.sql"
            )
    return found


def latest_version(directory: Path | None = None) -> int:
    migrations = load_migrations(directory)
    return migrations[-1].version if migrations else 0


def split_statements(sql: str) -> list[str]:
    """Split a script into statements; `sqlite3.complete_statement` knows about triggers,
    string literals and comments, so a `;` inside any of them does not end a statement."""
    statements: list[str] = []
    buffer = ""
    pieces = sql.split(";")
    for index, piece in enumerate(pieces):
        buffer += piece if index == len(pieces) - 1 else piece + ";"
        if buffer.endswith(";") and sqlite3.complete_statement(buffer):
            if _has_code(buffer):
                statements.append(buffer.strip())
            buffer = ""
    if _has_code(buffer):
        raise MigrationError(f"unterminated SQL statement: {buffer.strip()[:80]!r}")
    return statements


def _has_code(text: str) -> bool:
    without_comments = re.sub(r"--[^\n]*", "", text)
    without_comments = re.sub(r"/\*.*?\*/", "", without_comments, flags=re.S)
    return without_comments.strip(" \t\r\n;") != ""


async def _user_version(conn: aiosqlite.Connection) -> int:
    async with conn.execute("PRAGMA user_version") as cur:
        row = await cur.fetchone()
    return int(row[0]) if row is not None else 0


async def apply_migrations(
    conn: aiosqlite.Connection, migrations: list[Migration], *, target: int | None = None
) -> int:
    """Bring the database to `target` (default: the latest) and return its version.

    The connection must be in autocommit mode (isolation_level=None).
    """
    latest = migrations[-1].version if migrations else 0
    goal = latest if target is None else target
    if not 0 <= goal <= latest:
        raise MigrationError(f"no migration {goal:04d} (latest is {latest:04d})")
    current = await _user_version(conn)
    if current > latest:
        raise MigrationError(
            f"the database is at schema {current}, newer than this code's {latest}: "
            "run a newer version of the bot"
        )
    if current >= goal:
        return current
    await conn.execute("PRAGMA foreign_keys = OFF")
    try:
        for migration in migrations:
            if migration.version > goal:
                break
            await _apply_one(conn, migration)
    finally:
        await conn.execute("PRAGMA foreign_keys = ON")
    return await _user_version(conn)


async def _apply_one(conn: aiosqlite.Connection, migration: Migration) -> None:
    await conn.execute("BEGIN IMMEDIATE")
    try:
        # Read again under the write lock: another process may have migrated meanwhile.
        if await _user_version(conn) >= migration.version:
            await conn.execute("ROLLBACK")
            return
        for statement in migration.statements():
            await conn.execute(statement)
        async with conn.execute("PRAGMA foreign_key_check") as cur:
            broken = list(await cur.fetchall())
        if broken:
            raise MigrationError(
                f"migration {migration.version:04d}_{migration.name} breaks foreign keys: "
                f"{[tuple(row) for row in broken[:5]]}"
            )
        # A PRAGMA takes no parameters; the version is our own integer, never user input.
        await conn.execute(f"PRAGMA user_version = {int(migration.version)}")
        await conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            await conn.execute("ROLLBACK")
        raise
    log.info("applied migration %04d_%s", migration.version, migration.name)
