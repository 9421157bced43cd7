"""The optional daily backup (BACKUP_DIR): one timestamped copy of the live database, the
newest BACKUP_KEEP kept, the admins alerted when it fails. The copy itself is
storage/backup.py; here is only when, where and who is told."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from bot.config import Settings
from bot.services.admin import alert_admins
from bot.services.notify import BackupFailed, Notifier
from storage.backup import BackupError, Copied, daily_backup
from storage.repo import Repo

log = logging.getLogger(__name__)

BACKUP_JOB_ID = "daily-backup"


@dataclass(frozen=True, slots=True)
class DailyBackup:
    """Built by the composition root when BACKUP_DIR is set."""

    repo: Repo
    settings: Settings
    notifier: Notifier
    directory: Path
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)

    async def run(self) -> Copied | None:
        """Take today's copy; on failure alert the admins (once per failed day) and return
        None. Never raises: a failed backup must not stop the scheduler or the bot."""
        now = self.clock()
        try:
            # Blocking sqlite3 and file I/O: in a worker thread, the loop keeps serving.
            copied = await asyncio.to_thread(
                daily_backup,
                Path(self.repo.db.path),
                self.directory,
                self.settings.backup_keep,
                now,
            )
        except (BackupError, OSError) as exc:
            log.error("the daily backup into %s failed: %s", self.directory, exc)
            await alert_admins(
                self.repo,
                self.settings,
                self.notifier,
                BackupFailed(str(exc)),
                dedupe=f"backup:{now:%Y%m%d%H}",
            )
            return None
        log.info("daily backup written: %s (%d bytes)", copied.path, copied.bytes)
        return copied


__all__ = ["BACKUP_JOB_ID", "DailyBackup"]
