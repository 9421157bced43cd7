"""`daisybot backup FILE` and `daisybot restore FILE`.

backup: a consistent copy of DATABASE_PATH (or `--db`) in FILE, safe while the bot runs.
restore: FILE becomes DATABASE_PATH, only while no bot has it open, then ledger-check runs on
what was restored. Exit codes: 0 done (and the books balance), 1 restored but ledger-check
found discrepancies, 2 refused or failed (nothing was changed), 3 refused because the
database is in use.
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import sys
from pathlib import Path

from bot.ledger_check import check_file
from storage.backup import BackupError, DatabaseInUse, backup, restore
from storage.migrator import MigrationError

EXIT_OK = 0
EXIT_LEDGER = 1
EXIT_REFUSED = 2
EXIT_IN_USE = 3


def add_backup_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", type=Path, help="where to write the copy")
    parser.add_argument("--db", type=Path, help="SQLite file (default: DATABASE_PATH)")


def add_restore_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", type=Path, help="the backup to restore")
    parser.add_argument("--db", type=Path, help="SQLite file to replace (default: DATABASE_PATH)")


def _database(args: argparse.Namespace, command: str) -> Path | None:
    if args.db is not None:
        return Path(args.db)
    from bot.config import SettingsError, load_settings

    try:
        return load_settings(require_token=False).database_path
    except SettingsError as exc:
        print(f"{command}: {exc}", file=sys.stderr)
        return None


def run_backup(args: argparse.Namespace) -> int:
    db = _database(args, "backup")
    if db is None:
        return EXIT_REFUSED
    try:
        copied = backup(db, args.file)
    except BackupError as exc:
        print(f"backup: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    print(f"backup: {db} -> {copied.path} ({copied.bytes} bytes, schema {copied.schema_version})")
    return EXIT_OK


def run_restore(args: argparse.Namespace) -> int:
    db = _database(args, "restore")
    if db is None:
        return EXIT_REFUSED
    try:
        copied = restore(args.file, db)
    except DatabaseInUse as exc:
        print(f"restore: refused: {exc}; nothing was changed", file=sys.stderr)
        return EXIT_IN_USE
    except BackupError as exc:
        print(f"restore: refused: {exc}; nothing was changed", file=sys.stderr)
        return EXIT_REFUSED
    print(f"restore: {args.file} -> {copied.path} (schema {copied.schema_version})")
    try:
        report = asyncio.run(check_file(copied.path))
    except (sqlite3.Error, MigrationError) as exc:
        print(f"restore: ledger-check cannot read {copied.path}: {exc}", file=sys.stderr)
        return EXIT_LEDGER
    for problem in report.problems:
        print(problem)
    print(report.summary(), file=sys.stdout if report.ok else sys.stderr)
    return EXIT_OK if report.ok else EXIT_LEDGER


__all__ = ["add_backup_arguments", "add_restore_arguments", "run_backup", "run_restore"]
