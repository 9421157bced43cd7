"""The redelivery guard: `repo.updates` records each update_id once, and `DedupMiddleware`
handles an update only the first time its id is seen, pruning ids older than a day as it goes.
Real SQLite; the middleware gets a real aiogram Update and a handler that records calls."""

from __future__ import annotations

from typing import Any

from aiogram.types import TelegramObject, Update

from bot.metrics import Metrics
from bot.telegram.middlewares import HANDLED_UPDATES_PRUNE_EVERY, DedupMiddleware
from storage.db import Database
from storage.repo import Repo

DAY = 86_400.0


async def test_an_update_id_is_claimed_once_and_old_ones_pruned(db: Database) -> None:
    repo = Repo(db)
    assert await repo.updates.claim(7, now=1_000.0)
    assert not await repo.updates.claim(7, now=1_001.0)
    assert await repo.updates.claim(8, now=1_000.0 + DAY)
    assert await repo.updates.prune(1_000.0 + DAY - 1) == 1
    assert await repo.updates.count() == 1
    # Forgotten, an id could be taken again (Telegram reuses none within a week).
    assert await repo.updates.claim(7, now=1_000.0 + DAY)


def _update(update_id: int) -> Update:
    return Update.model_validate(
        {
            "update_id": update_id,
            "message": {
                "message_id": 1,
                "date": 0,
                "chat": {"id": 5, "type": "private", "first_name": "A"},
                "from": {"id": 5, "is_bot": False, "first_name": "A"},
                "text": "hi",
            },
        }
    )


async def test_the_middleware_handles_each_update_once_and_prunes_hourly(db: Database) -> None:
    repo = Repo(db)
    metrics = Metrics()
    now = [10 * DAY]
    middleware = DedupMiddleware(repo, metrics, clock=lambda: now[0])
    handled: list[int] = []

    async def handler(event: TelegramObject, data: dict[str, Any]) -> str:
        assert isinstance(event, Update)
        handled.append(event.update_id)
        return "done"

    await repo.updates.claim(1, now=now[0] - 2 * DAY)  # from a run two days ago
    assert await middleware(handler, _update(2), {}) == "done"
    assert await repo.updates.count() == 1  # the first update pruned the old id
    assert await middleware(handler, _update(2), {}) is None
    assert await middleware(handler, _update(3), {}) == "done"
    assert handled == [2, 3]
    assert metrics.registry.get_sample_value("daisybot_updates_duplicate_total") == 1.0

    # Pruning waits an hour between runs, then forgets what is older than a day.
    start = now[0]
    await repo.updates.claim(99, now=start - 2 * DAY)
    now[0] = start + HANDLED_UPDATES_PRUNE_EVERY / 2
    assert await middleware(handler, _update(4), {}) == "done"
    assert await repo.updates.count() == 4  # 2, 3, 4 and the old 99: no prune yet
    now[0] = start + HANDLED_UPDATES_PRUNE_EVERY
    assert await middleware(handler, _update(5), {}) == "done"
    assert await repo.updates.count() == 4  # 99 forgotten, 5 recorded
    assert not await repo.updates.claim(2)
    assert await repo.updates.claim(99)
    assert handled == [2, 3, 4, 5]
