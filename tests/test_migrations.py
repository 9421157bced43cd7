"""Migrations: all of them on an empty database, and each one on a database holding data.

The stairway is generic: for every migration N, build the database at N-1 (applying each
version's seed rows from tests/fixtures/migrations/NNNN.sql on the way), check every table
holds rows, migrate to N and check every row is still there (on the columns both versions
have). A later migration that loses data, or cannot run on a populated table (a NOT NULL
column without a default, a broken table rebuild), fails here.
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from bot.ledger_check import check_ledger
from storage.db import Database
from storage.migrator import MigrationError, load_migrations, split_statements
from storage.repo import Repo

MIGRATIONS = load_migrations()
LATEST = MIGRATIONS[-1].version
SEEDS = Path(__file__).parent / "fixtures" / "migrations"


def _seed(version: int, seeds: Path) -> str | None:
    path = seeds / f"{version:04d}.sql"
    return path.read_text("utf-8") if path.exists() else None


async def _apply_seed(db: Database, version: int, seeds: Path) -> None:
    sql = _seed(version, seeds)
    if sql is None:
        return
    async with db.transaction() as tx:
        for statement in split_statements(sql):
            await tx.execute(statement)


async def _tables(db: Database) -> list[str]:
    rows = await db.fetch_all(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        " ORDER BY name"
    )
    return [str(r[0]) for r in rows]


async def _snapshot(db: Database) -> dict[str, list[dict[str, Any]]]:
    snapshot: dict[str, list[dict[str, Any]]] = {}
    for table in await _tables(db):
        # Table names come from sqlite_master, not from input; quoted as identifiers.
        rows = await db.fetch_all(f'SELECT * FROM "{table}"')  # noqa: S608
        snapshot[table] = [dict(r) for r in rows]
    return snapshot


async def _open(path: Path, version: int, migrations: Path | None) -> Database:
    return await Database.open(path, migrate_to=version, migrations_dir=migrations)


async def _build(path: Path, version: int, migrations: Path | None, seeds: Path) -> None:
    """A database at `version`, with every seed up to that version applied at its version."""
    for v in range(version + 1):
        db = await _open(path, v, migrations)
        try:
            await _apply_seed(db, v, seeds)
        finally:
            await db.close()


async def _step(
    path: Path, version: int, *, migrations: Path | None = None, seeds: Path = SEEDS
) -> None:
    """Build at version-1 with data, migrate to `version`, assert nothing was lost."""
    await _build(path, version - 1, migrations, seeds)
    db = await _open(path, version - 1, migrations)
    try:
        before = await _snapshot(db)
    finally:
        await db.close()
    if version > 1:
        empty = [t for t, rows in before.items() if not rows]
        assert not empty, (
            f"tables {empty} hold no rows at version {version - 1}, so migration "
            f"{version:04d} is not tested against data in them: add rows to "
            f"tests/fixtures/migrations/{version - 1:04d}.sql"
        )
    db = await _open(path, version, migrations)
    try:
        assert await db.schema_version() == version
        after = await _snapshot(db)
        for table, rows in before.items():
            if table not in after:
                continue  # dropped on purpose by the migration
            kept = after[table]
            assert len(kept) >= len(rows), f"{table} lost rows in migration {version:04d}"
            for row in rows:
                common = {k: v for k, v in row.items() if kept and k in kept[0]}
                assert any(all(new[k] == v for k, v in common.items()) for new in kept), (
                    f"{table} row {row} changed or vanished in migration {version:04d}"
                )
        assert await db.fetch_value("PRAGMA foreign_key_check") is None
        # This version's own seed must apply to its schema (it feeds the next migration).
        await _apply_seed(db, version, seeds)
    finally:
        await db.close()


async def test_all_migrations_on_an_empty_database(tmp_path: Path) -> None:
    path = tmp_path / "fresh.sqlite3"
    db = await Database.open(path)
    try:
        assert await db.schema_version() == LATEST
        tables = set(await _tables(db))
        assert {"users", "chats", "wallets", "ledger", "activations", "payments"} <= tables
        assert {"settings", "outbox", "ledger_kinds"} <= tables
        assert await db.fetch_value("PRAGMA journal_mode") == "wal"
        assert await db.fetch_value("PRAGMA foreign_keys") == 1
        assert await db.fetch_value("PRAGMA busy_timeout") > 0
        assert await db.fetch_value("PRAGMA foreign_key_check") is None
        assert await db.fetch_value("PRAGMA integrity_check") == "ok"
    finally:
        await db.close()
    # Opening again applies nothing and changes nothing.
    db = await Database.open(path)
    try:
        assert await db.schema_version() == LATEST
    finally:
        await db.close()


def test_migration_files_are_numbered_without_gaps() -> None:
    assert [m.version for m in MIGRATIONS] == list(range(1, LATEST + 1))
    for migration in MIGRATIONS:
        assert migration.statements(), f"{migration.name} has no statements"


@pytest.mark.parametrize("version", [m.version for m in MIGRATIONS])
async def test_migration_keeps_existing_data(tmp_path: Path, version: int) -> None:
    await _step(tmp_path / f"stair{version}.sqlite3", version)


async def test_the_seeds_describe_a_healthy_ledger(tmp_path: Path) -> None:
    path = tmp_path / "seeded.sqlite3"
    await _build(path, LATEST, None, SEEDS)
    db = await Database.open(path)
    try:
        assert await check_ledger(Repo(db), unsettled_limit_seconds=1e12) == []
        assert await db.fetch_value("SELECT COUNT(*) FROM activations") >= 7
    finally:
        await db.close()


async def test_the_stairway_catches_a_migration_that_loses_rows(tmp_path: Path) -> None:
    migrations, seeds = tmp_path / "migrations", tmp_path / "seeds"
    migrations.mkdir()
    seeds.mkdir()
    (migrations / "0001_t.sql").write_text("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT);")
    (seeds / "0001.sql").write_text("INSERT INTO t (id, v) VALUES (1, 'a'), (2, 'b');")
    (migrations / "0002_oops.sql").write_text("DELETE FROM t WHERE id = 2;")
    await _step(tmp_path / "ok.sqlite3", 1, migrations=migrations, seeds=seeds)
    with pytest.raises(AssertionError, match="lost rows"):
        await _step(tmp_path / "bad.sqlite3", 2, migrations=migrations, seeds=seeds)
    (migrations / "0002_oops.sql").write_text("UPDATE t SET v = 'z' WHERE id = 2;")
    with pytest.raises(AssertionError, match="changed or vanished"):
        await _step(tmp_path / "bad2.sqlite3", 2, migrations=migrations, seeds=seeds)
    (migrations / "0002_oops.sql").write_text("CREATE TABLE u (x INTEGER);")
    (migrations / "0003_more.sql").write_text("ALTER TABLE u ADD COLUMN y INTEGER;")
    with pytest.raises(AssertionError, match="hold no rows"):
        await _step(tmp_path / "bad3.sqlite3", 3, migrations=migrations, seeds=seeds)


async def test_a_failing_migration_changes_nothing(tmp_path: Path) -> None:
    folder = tmp_path / "migrations"
    folder.mkdir()
    (folder / "0001_first.sql").write_text("CREATE TABLE t (x INTEGER);\n")
    (folder / "0002_broken.sql").write_text(
        "CREATE TABLE u (y INTEGER);\nINSERT INTO t (x) VALUES (1);\nTHIS IS NOT SQL;\n"
    )
    path = tmp_path / "broken.sqlite3"
    with pytest.raises(sqlite3.OperationalError):
        await Database.open(path, migrations_dir=folder)
    db = await Database.open(path, migrations_dir=folder, migrate_to=1)
    try:
        assert await db.schema_version() == 1
        assert await _tables(db) == ["t"]
        assert await db.fetch_value("SELECT COUNT(*) FROM t") == 0
    finally:
        await db.close()


async def test_a_migration_that_breaks_foreign_keys_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "migrations"
    folder.mkdir()
    (folder / "0001_parent.sql").write_text(
        "CREATE TABLE p (id INTEGER PRIMARY KEY);\n"
        "CREATE TABLE c (id INTEGER PRIMARY KEY, p_id INTEGER REFERENCES p (id));\n"
    )
    (folder / "0002_orphan.sql").write_text("INSERT INTO c (id, p_id) VALUES (1, 99);\n")
    path = tmp_path / "fk.sqlite3"
    with pytest.raises(MigrationError, match="foreign keys"):
        await Database.open(path, migrations_dir=folder)
    db = await Database.open(path, migrations_dir=folder, migrate_to=1)
    try:
        assert await db.schema_version() == 1
        assert await db.fetch_value("SELECT COUNT(*) FROM c") == 0
    finally:
        await db.close()


def test_numbering_gaps_and_bad_names_are_refused(tmp_path: Path) -> None:
    gap = tmp_path / "gap"
    gap.mkdir()
    (gap / "0001_a.sql").write_text("CREATE TABLE a (x);")
    (gap / "0003_c.sql").write_text("CREATE TABLE c (x);")
    with pytest.raises(MigrationError, match="expected 0002"):
        load_migrations(gap)
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "1_a.sql").write_text("CREATE TABLE a (x);")
    with pytest.raises(MigrationError, match=r"0001_name\.sql"):
        load_migrations(bad)


async def test_a_database_newer_than_the_code_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "future.sqlite3"
    db = await Database.open(path)
    await db.execute(f"PRAGMA user_version = {LATEST + 1}")
    await db.close()
    with pytest.raises(MigrationError, match="newer"):
        await Database.open(path)


async def test_two_processes_starting_at_once_migrate_once(tmp_path: Path) -> None:
    path = tmp_path / "race.sqlite3"
    first, second = await asyncio.gather(Database.open(path), Database.open(path))
    try:
        assert await first.schema_version() == LATEST
        assert await second.schema_version() == LATEST
        kinds = await first.fetch_value("SELECT COUNT(*) FROM ledger_kinds")
        assert kinds == 11  # 8 from 0001, crypto from 0009, promo and referral from 0010
    finally:
        await first.close()
        await second.close()


def test_statement_splitting_respects_triggers_strings_and_comments() -> None:
    sql = """
    -- a comment; with a semicolon
    CREATE TABLE t (x TEXT DEFAULT 'a;b');
    /* block; comment */
    CREATE TRIGGER t_no_delete BEFORE DELETE ON t
    BEGIN
        SELECT RAISE(ABORT, 'no; never');
    END;
    INSERT INTO t (x) VALUES ('1;2');
    -- trailing comment
    """
    statements = split_statements(sql)
    assert len(statements) == 3
    assert statements[1].startswith("/* block; comment */\n    CREATE TRIGGER")
    assert statements[1].endswith("END;")
    with pytest.raises(MigrationError, match="unterminated"):
        split_statements("CREATE TABLE t (x);\nINSERT INTO t VALUES (1)")
