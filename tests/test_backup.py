"""Backups and restore: a copy taken while users buy is consistent and restores into books
that balance; restore refuses a database in use and a file that is not a database; the daily
job keeps exactly BACKUP_KEEP copies and tells the admins when it fails; the CLI's exit codes.
The real app against the emulator and the sandbox, real SQLite files."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.__main__ import cli
from bot.app import App
from bot.emulator import BotAPIEmulator
from bot.ledger_check import check_file
from bot.services.backups import BACKUP_JOB_ID
from storage.backup import (
    DatabaseInUse,
    NotADatabase,
    backup,
    backup_files,
    backup_name,
    daily_backup,
    restore,
)
from storage.db import Database
from tests.conftest import AppFactory
from tests.e2e.helpers import buy_from, open_services, start
from tests.fixtures.waiting import wait_until

ADMIN = 900
Entry = tuple[int, int, int, str]


def entries_of(path: Path) -> list[Entry]:
    """Every ledger entry of the file (id, wallet, amount, kind), in order."""
    with sqlite3.connect(path) as conn:
        rows = conn.execute("SELECT id, wallet_id, amount, kind FROM ledger ORDER BY id").fetchall()
    return [(int(r[0]), int(r[1]), int(r[2]), str(r[3])) for r in rows]


def balances_of(path: Path) -> dict[int, int]:
    with sqlite3.connect(path) as conn:
        rows = conn.execute("SELECT id, balance FROM wallets").fetchall()
    return {int(r[0]): int(r[1]) for r in rows}


async def buyer(emu: BotAPIEmulator, app: App, user_id: int) -> None:
    user, menu = await start(emu, app, user_id, name=f"U{user_id}")
    await buy_from(user, await open_services(user, menu), "Signal — $0.60", timeout=20)


async def test_a_backup_taken_while_users_buy_restores_into_balanced_books(
    bot_app: App, emulator: BotAPIEmulator, tmp_path: Path
) -> None:
    live = Path(bot_app.settings.database_path)
    # What was recorded before the backups: every copy must hold at least this.
    await asyncio.gather(*(buyer(emulator, bot_app, 3000 + i) for i in range(3)))
    before = entries_of(live)
    assert len(before) == 6  # three top-ups, three purchases

    copies: list[Path] = []
    buying = asyncio.gather(*(buyer(emulator, bot_app, 3100 + i) for i in range(6)))
    # Copies, one after another, for as long as the purchases run (at least one).
    while not buying.done() or not copies:
        copy = tmp_path / f"copy-{len(copies)}.sqlite3"
        await asyncio.to_thread(backup, live, copy)
        copies.append(copy)
    await buying
    after = entries_of(live)
    assert len(after) == 6 + 12

    for i, copy in enumerate(copies):
        target = tmp_path / "restored" / f"bot-{i}.sqlite3"
        restored = await asyncio.to_thread(restore, copy, target)
        assert restored.path == target
        report = await check_file(target)
        assert report.ok, report.problems
        got = entries_of(target)
        # A snapshot: everything recorded before it, and exactly a prefix of what followed.
        assert got[: len(before)] == before
        assert got == after[: len(got)]
        # Every wallet's balance is the sum of its entries in the copy: the same instant.
        sums: dict[int, int] = {}
        for _, wallet, amount, _ in got:
            sums[wallet] = sums.get(wallet, 0) + amount
        assert {w: b for w, b in balances_of(target).items() if w in sums} == sums
    # The last copy was taken after the last purchase finished: all of it.
    assert entries_of(tmp_path / "restored" / f"bot-{len(copies) - 1}.sqlite3") == after


async def test_restore_is_refused_while_the_bot_has_the_database_open(
    bot_app: App, emulator: BotAPIEmulator, tmp_path: Path
) -> None:
    live = Path(bot_app.settings.database_path)
    await start(emulator, bot_app, 3201)
    # A backup of another, empty database: restoring it would wipe the user.
    other = await Database.open(tmp_path / "other" / "bot.sqlite3")
    await other.close()
    snapshot = tmp_path / "other.bak"
    backup(tmp_path / "other" / "bot.sqlite3", snapshot)
    before = entries_of(live)
    assert before

    with pytest.raises(DatabaseInUse, match="in use"):
        restore(snapshot, live)
    code = await asyncio.to_thread(cli, ["restore", str(snapshot), "--db", str(live)])
    assert code == 3
    assert entries_of(live) == before
    assert await bot_app.repo.users.get(3201) is not None
    # No half-restored file left beside it either.
    assert sorted(p.name for p in live.parent.iterdir() if p.suffix == ".tmp") == []


async def test_restore_works_once_the_bot_has_stopped(
    app_factory: AppFactory, emulator: BotAPIEmulator, tmp_path: Path
) -> None:
    async with app_factory() as app:
        await buyer(emulator, app, 3301)
        live = Path(app.settings.database_path)
        snapshot = tmp_path / "snap.sqlite3"
        backup(live, snapshot)
        recorded = entries_of(live)
    # The bot stopped: its database may be replaced, and the bot starts on the restored one.
    code = await asyncio.to_thread(cli, ["restore", str(snapshot), "--db", str(live)])
    assert code == 0
    assert entries_of(live) == recorded
    async with app_factory() as again:
        assert await again.repo.users.get(3301) is not None


@pytest.mark.parametrize(
    "content",
    [b"", b"this is not a database\n" * 100, b"SQLite format 3\x00" + b"\xff" * 5000],
    ids=["empty", "text", "bad-pages"],
)
def test_a_file_that_is_not_a_database_is_refused(
    tmp_path: Path, content: bytes, capsys: pytest.CaptureFixture[str]
) -> None:
    junk = tmp_path / "junk.sqlite3"
    junk.write_bytes(content)
    target = tmp_path / "bot.sqlite3"
    target.write_bytes(b"the database that must survive")
    with pytest.raises(NotADatabase):
        restore(junk, target)
    assert cli(["restore", str(junk), "--db", str(target)]) == 2
    assert "refused" in capsys.readouterr().err
    assert target.read_bytes() == b"the database that must survive"


async def test_retention_keeps_exactly_backup_keep_copies(tmp_path: Path) -> None:
    db = await Database.open(tmp_path / "bot.sqlite3")
    await db.close()
    folder = tmp_path / "backups"
    folder.mkdir()
    (folder / "notes.txt").write_text("not ours")
    (folder / "daisybot-manual.sqlite3").write_text("not a daily name")
    start_at = datetime(2026, 12, 1, 3, 0, tzinfo=UTC)
    times = [start_at + timedelta(days=i) for i in range(10)]
    for when in times:
        daily_backup(tmp_path / "bot.sqlite3", folder, 7, when)
    kept = backup_files(folder)
    assert [p.name for p in kept] == [backup_name(when) for when in times[-7:]]
    assert kept[0].name == "daisybot-20261204T030000Z.sqlite3"
    # Files the retention does not own are never deleted.
    assert (folder / "notes.txt").exists()
    assert (folder / "daisybot-manual.sqlite3").exists()
    for path in kept:
        assert (await check_file(path)).ok


async def test_the_daily_job_is_scheduled_and_writes_a_copy(
    app_factory: AppFactory, emulator: BotAPIEmulator, tmp_path: Path
) -> None:
    folder = tmp_path / "daily"
    async with app_factory(backup_dir=str(folder), backup_hour_utc=4, backup_keep=2) as app:
        job = app.scheduler.get_job(BACKUP_JOB_ID)
        assert job is not None
        assert "hour='4'" in str(job.trigger)
        await start(emulator, app, 3401)
        assert app.daily_backup is not None
        copied = await app.daily_backup.run()
        assert copied is not None
        assert backup_files(folder) == [copied.path]
        assert (await check_file(copied.path)).ok
    async with app_factory() as app:
        assert app.scheduler.get_job(BACKUP_JOB_ID) is None  # BACKUP_DIR unset: no job


async def test_a_failed_backup_alerts_the_admins(
    app_factory: AppFactory, emulator: BotAPIEmulator, tmp_path: Path
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("BACKUP_DIR points at a file, so no folder can be made there")
    async with app_factory(backup_dir=str(blocker / "sub"), admin_ids=str(ADMIN)) as app:
        admin, _ = await start(emulator, app, ADMIN, name="Admin", funds=0)
        assert app.daily_backup is not None
        assert await app.daily_backup.run() is None
        alert = await admin.wait_for(lambda m: "daily backup failed" in m.text)
        assert "BACKUP_DIR" in alert.text
        # The bot keeps working.
        await wait_until(lambda: app.scheduler.running, what="the scheduler still running")


async def test_cli_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    live = tmp_path / "bot.sqlite3"
    db = await Database.open(live)
    await db.close()
    copy = tmp_path / "copy.sqlite3"
    assert await asyncio.to_thread(cli, ["backup", str(copy), "--db", str(live)]) == 0
    assert "backup:" in capsys.readouterr().out
    # No database to back up.
    missing = ["backup", str(tmp_path / "x"), "--db", str(tmp_path / "none")]
    assert await asyncio.to_thread(cli, missing) == 2
    # Restored into a fresh path: ledger-check runs and passes.
    fresh = tmp_path / "fresh" / "bot.sqlite3"
    assert await asyncio.to_thread(cli, ["restore", str(copy), "--db", str(fresh)]) == 0
    assert "ledger OK" in capsys.readouterr().out
    # A backup whose books do not balance is restored, but the exit code says so.
    with sqlite3.connect(copy) as conn:
        # A cached balance off its ledger: what a hand-edited or damaged file looks like.
        conn.execute(
            "INSERT INTO wallets (owner_kind, owner_id, balance, created_at)"
            " VALUES ('user', 1, 0, 0)"
        )
        conn.execute("UPDATE wallets SET balance = 5 WHERE owner_id = 1")
    assert await asyncio.to_thread(cli, ["restore", str(copy), "--db", str(fresh)]) == 1
    out = capsys.readouterr()
    assert "cached balance 5 != ledger sum 0" in out.out
    assert "1 discrepancies" in out.err
