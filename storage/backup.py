"""Backups of the live database and their restore, with SQLite's online backup API.

`backup(src, dest)` copies a database while the bot writes to it: `Connection.backup` with
all pages in one step reads inside one read transaction, so the copy is one consistent
snapshot, and in WAL mode that read never blocks the bot's writers. The copy is written
next to its destination and renamed into place, so a half-written file never carries the
final name (a daily job that dies mid-copy leaves no "backup" that is not one).

`restore(src, dest)` replaces a database that nobody has open. Every process that opens the
database for writing holds a shared `flock` on `<db>.lock` (`hold_in_use_lock`, taken by
`Database.open`); restore needs that lock exclusively and does not wait for it, so it
refuses while the bot runs instead of pulling the file from under it.

Blocking `sqlite3` on purpose: these run in the CLI or in a worker thread, never on the loop.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

LOCK_SUFFIX = ".lock"
# Daily backups are named `daisybot-20261204T030000Z.sqlite3`; the UTC time sorts by name.
BACKUP_PREFIX = "daisybot-"
BACKUP_SUFFIX = ".sqlite3"
_STAMP = "%Y%m%dT%H%M%SZ"


class BackupError(Exception):
    """A backup or restore that did not happen; the message says why, for a person."""


class DatabaseInUse(BackupError):
    """Another process (the running bot) has the database open."""


class NotADatabase(BackupError):
    """The file to restore is not a readable, intact SQLite database."""


def lock_path(db_path: str | Path) -> Path:
    return Path(f"{db_path}{LOCK_SUFFIX}")


def hold_in_use_lock(db_path: str | Path) -> IO[bytes]:
    """Open `<db>.lock` and hold a shared lock on it until the returned file is closed.

    Shared, so several processes may have the database open at once (the crash tests run a
    second one); only restore asks for it exclusively. Blocks while a restore runs: the bot
    then opens the restored file, not the one being replaced.
    """
    path = lock_path(db_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = path.open("ab")
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_SH)
    except BaseException:
        handle.close()
        raise
    return handle


@contextlib.contextmanager
def exclusive_lock(db_path: str | Path) -> Iterator[None]:
    """Hold `<db>.lock` exclusively, or raise DatabaseInUse at once."""
    path = lock_path(db_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("ab") as handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise DatabaseInUse(
                f"{db_path} is in use (a running bot holds {path}); stop the bot first"
            ) from None
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


@dataclass(frozen=True, slots=True)
class Copied:
    path: Path
    bytes: int
    schema_version: int


def backup(src: str | Path, dest: str | Path) -> Copied:
    """A consistent copy of the database at `src` in `dest` (replaced if it exists)."""
    src_path, dest_path = Path(src), Path(dest)
    if not src_path.is_file():
        raise BackupError(f"no database at {src_path}")
    try:
        # Read-write, though it only reads: a read-only connection cannot open a WAL database
        # whose -shm is missing or not ours to write.
        source = sqlite3.connect(src_path)
    except sqlite3.Error as exc:
        raise BackupError(f"cannot open {src_path}: {exc}") from None
    try:
        # The bot's own busy timeout: a checkpoint in progress is waited for, not failed on.
        source.execute("PRAGMA busy_timeout = 10000")
        return _copy_into(source, dest_path)
    except sqlite3.DatabaseError as exc:
        raise BackupError(f"cannot back up {src_path}: {exc}") from None
    finally:
        source.close()


def restore(src: str | Path, dest: str | Path) -> Copied:
    """Replace the database at `dest` with the backup at `src`, atomically.

    Refuses (DatabaseInUse) while any process has `dest` open, and (NotADatabase) when `src`
    is not an intact SQLite database; in both cases `dest` is untouched.
    """
    src_path, dest_path = Path(src), Path(dest)
    source = _open_checked(src_path)
    try:
        with exclusive_lock(dest_path):
            copied = _copy_into(source, dest_path, before_rename=_drop_wal_of(dest_path))
    finally:
        source.close()
    return copied


def _open_checked(path: Path) -> sqlite3.Connection:
    if not path.is_file():
        raise NotADatabase(f"no such file: {path}")
    try:
        conn = sqlite3.connect(path)
    except sqlite3.Error as exc:
        raise NotADatabase(f"{path} cannot be opened: {exc}") from None
    try:
        verdict = conn.execute("PRAGMA quick_check").fetchone()
        tables = conn.execute("SELECT count(*) FROM sqlite_master WHERE type = 'table'").fetchone()
    except sqlite3.DatabaseError as exc:
        conn.close()
        raise NotADatabase(f"{path} is not a SQLite database: {exc}") from None
    if verdict is None or verdict[0] != "ok" or not tables or tables[0] == 0:
        conn.close()
        detail = "it is empty" if verdict and verdict[0] == "ok" else f"{verdict}"
        raise NotADatabase(f"{path} is not a usable database backup ({detail})")
    return conn


def _drop_wal_of(dest: Path) -> list[Path]:
    # A WAL left by the replaced database would be replayed into the restored one.
    return [Path(f"{dest}-wal"), Path(f"{dest}-shm")]


def _copy_into(
    source: sqlite3.Connection, dest: Path, *, before_rename: list[Path] | None = None
) -> Copied:
    """Copy `source` into a temporary file beside `dest`, make it durable, rename it over."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        target = sqlite3.connect(tmp)
        try:
            # pages=-1: everything in one step, so one read transaction, one snapshot.
            source.backup(target, pages=-1)
            # A self-contained file: no -wal beside it to lose when it is copied elsewhere.
            target.execute("PRAGMA journal_mode = DELETE")
            version = int(target.execute("PRAGMA user_version").fetchone()[0])
        finally:
            target.close()
        with tmp.open("rb+") as handle:
            os.fsync(handle.fileno())
        for stale in before_rename or []:
            stale.unlink(missing_ok=True)
        tmp.replace(dest)
        _fsync_dir(dest.parent)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return Copied(path=dest, bytes=dest.stat().st_size, schema_version=version)


def _fsync_dir(directory: Path) -> None:
    # The rename is durable only once the directory entry is on disk too.
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# --- the daily job's files ----------------------------------------------------------------


def backup_name(when: datetime) -> str:
    return f"{BACKUP_PREFIX}{when.astimezone(UTC).strftime(_STAMP)}{BACKUP_SUFFIX}"


def backup_files(directory: Path) -> list[Path]:
    """The daily backups in `directory`, oldest first (their names sort by time)."""
    if not directory.is_dir():
        return []
    found = []
    for path in directory.iterdir():
        name = path.name
        if not (name.startswith(BACKUP_PREFIX) and name.endswith(BACKUP_SUFFIX)):
            continue
        stamp = name[len(BACKUP_PREFIX) : -len(BACKUP_SUFFIX)]
        try:
            datetime.strptime(stamp, _STAMP)
        except ValueError:
            continue  # someone else's file: never deleted by the retention
        found.append(path)
    return sorted(found, key=lambda p: p.name)


def prune(directory: Path, keep: int) -> list[Path]:
    """Delete all but the newest `keep` daily backups; the deleted ones."""
    files = backup_files(directory)
    doomed = files[: max(0, len(files) - keep)]
    for path in doomed:
        path.unlink(missing_ok=True)
    return doomed


def daily_backup(db_path: Path, directory: Path, keep: int, now: datetime) -> Copied:
    """One timestamped copy in `directory`, then the retention."""
    copied = backup(db_path, directory / backup_name(now))
    prune(directory, keep)
    return copied


__all__ = [
    "BackupError",
    "Copied",
    "DatabaseInUse",
    "NotADatabase",
    "backup",
    "backup_files",
    "backup_name",
    "daily_backup",
    "exclusive_lock",
    "hold_in_use_lock",
    "lock_path",
    "prune",
    "restore",
]
