"""A restart of the bot with buyers waiting in the purchase queue: the line lives in the
database, so the next process serves every one of them, once, in order, and without a 429
(its fresh rate limiter is first told of the purchases the upstream still counts)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from bot.emulator import BotAPIEmulator
from bot.sandbox import Sandbox
from bot.services.purchase import token_of
from tests.conftest import DAISYSIM_KEY
from tests.e2e.helpers import assert_books_balanced, ledger, no_traceback
from tests.e2e.test_queue import SIGNAL, buyers, fill_the_window, has_number, only, queue_app


async def test_a_restart_with_fifteen_in_line_serves_all_fifteen_once(
    tmp_path: Path, emulator: BotAPIEmulator
) -> None:
    # 30× rather than 60×: the upstream's window is two real seconds, long enough to stop the
    # app with all fifteen still in line.
    scale = 30.0
    overrides = {"daisysim_time_scale": scale, "cancel_lock_seconds": 180.0 / scale}
    async with Sandbox(time_scale=scale, cancel_lock_seconds=180.0) as sandbox:
        async with queue_app(tmp_path, sandbox, emulator, **overrides) as app:
            people = await buyers(emulator, app, 5201, 15)
            await fill_the_window(emulator, app)
            # However slowly the taps go on a loaded machine, nobody is served before the
            # stop: the window stays closed for this process (the next one starts afresh).
            app.client.limiter["purchase"].pause(3600.0)
            answers = await asyncio.gather(*(u.press(s, SIGNAL) for u, s in people))
            assert [a.text for a in answers] == [
                f"You are in line: place {p}." for p in range(1, 16)
            ]
            places = [await u.wait_for(lambda m: "in line" in m.text, after=s) for u, s in people]
        # The app is down; its line is in the database.
        stats = await sandbox.control.stats()
        assert stats.requests.get("purchase", 0) == 10

        async with queue_app(tmp_path, sandbox, emulator, **overrides) as app:
            assert await app.repo.queue.count() == 15
            for (user, _), place in zip(people, places, strict=True):
                # The message that showed the place becomes the card.
                card = await user.wait_for_edit(place, has_number, timeout=20)
                activation = await only(app, user)
                assert activation.state == "waiting"
                assert activation.phone_number in card.entity_texts("code")
                assert [e.kind for e in await ledger(app, user.id)] == ["topup", "purchase"]
                no_traceback(user)
            stats = await sandbox.control.stats()
            assert stats.requests.get("purchase", 0) == 25
            assert stats.rate_limited_total == 0
            account = await sandbox.control.account(DAISYSIM_KEY)
            tokens = [token_of(o.service) for o in account.orders]
            assert len(tokens) == len(set(tokens)) == 25
            await assert_books_balanced(app)
