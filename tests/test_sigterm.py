"""SIGTERM mid-update, with `daisybot run` as a real process against the Bot API emulator and
the sandbox DaisySim: a purchase is on its way upstream (the sandbox holds its answer) when
the signal comes. The bot finishes it (the user gets the card, the database has the
activation linked to the upstream order, the books balance), exits 0 within the grace, and
leaves an update that arrives after the signal unconfirmed, so the next start answers it.
That next start is stopped with SIGINT, the Ctrl-C variant.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

from bot.emulator import BotAPIEmulator, ChatMessage
from bot.sandbox import Sandbox
from bot.sandbox.control import OrderInfo
from storage.db import Database
from storage.repo import Repo
from tests.conftest import BOT_TOKEN, DAISYSIM_KEY, TIME_SCALE
from tests.e2e.helpers import is_card
from tests.fixtures.waiting import wait_until

ADMIN = 900
ALICE = 1001
SIGNAL = "Signal — $0.60"
# The sandbox sits on the purchase this long (real seconds) before it buys and answers:
# well inside the grace, well past the moment the signal is sent.
PURCHASE_DELAY = 2.0
GRACE = 10.0


@dataclass(eq=False)
class BotProcess:
    """`python -m bot run` with its log (stderr and stdout together) read as it comes."""

    process: asyncio.subprocess.Process
    lines: list[str] = field(default_factory=list)
    reader: asyncio.Task[None] | None = None

    @property
    def log(self) -> str:
        return "".join(self.lines)

    async def _read(self) -> None:
        stream = self.process.stdout
        assert stream is not None
        while line := await stream.readline():
            self.lines.append(line.decode(errors="replace"))

    async def logged(self, text: str, *, timeout: float = 10.0) -> None:
        await wait_until(lambda: text in self.log, timeout=timeout, what=f"{text!r} in the log")

    async def exited(self, *, timeout: float) -> int:
        await asyncio.wait_for(self.process.wait(), timeout=timeout)
        if self.reader is not None:
            await self.reader
        code = self.process.returncode
        assert code is not None
        return code


def bot_env(tmp_path: Path, sandbox: Sandbox, emulator: BotAPIEmulator) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(
            ("DAISYSIM_", "BOT_", "TELEGRAM_", "DATABASE_", "MARKUP_", "ADMIN_", "MAINTENANCE")
        )
    }
    env.update(
        {
            "BOT_TOKEN": BOT_TOKEN,
            "TELEGRAM_API_URL": emulator.api_url,
            "DAISYSIM_API_KEY": DAISYSIM_KEY,
            "DAISYSIM_BASE_URL": sandbox.base_url,
            "DAISYSIM_TIME_SCALE": str(TIME_SCALE),
            "DATABASE_PATH": str(tmp_path / "bot.sqlite3"),
            "ADMIN_IDS": str(ADMIN),
            "SHUTDOWN_GRACE_SECONDS": str(GRACE),
            "OUTBOX_FLUSH_SECONDS": "2",
            "LOG_LEVEL": "DEBUG",
        }
    )
    return env


@contextlib.asynccontextmanager
async def bot_process(
    tmp_path: Path, env: dict[str, str], emulator: BotAPIEmulator
) -> AsyncIterator[BotProcess]:
    """The bot as a process, once it polls; killed at the end if the test did not stop it."""
    polled = asyncio.create_task(emulator.wait_polling(timeout=30))
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        "run",
        cwd=tmp_path,  # no .env here
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    running = BotProcess(process)
    running.reader = asyncio.create_task(running._read())
    try:
        exited = asyncio.create_task(process.wait())
        done, _ = await asyncio.wait({polled, exited}, return_when=asyncio.FIRST_COMPLETED)
        if polled not in done:
            raise AssertionError(f"the bot exited before polling:\n{running.log}")
        exited.cancel()
        polled.result()
        yield running
    finally:
        polled.cancel()
        if process.returncode is None:
            process.kill()
            await process.wait()
        await running.reader


async def say(emulator: BotAPIEmulator, user_id: int, text: str, expect: str) -> ChatMessage:
    """Send `text` and return the bot's answer, the first message after it holding `expect`
    (an outbox notice may come in between)."""
    user = emulator.user(user_id, "Root" if user_id == ADMIN else "Alice", language_code="en")
    sent = await user.send(text)
    return await user.wait_for(lambda m: expect in m.text, after=sent, timeout=10)


async def funded_buyer(emulator: BotAPIEmulator) -> ChatMessage:
    """Alice started the bot, an admin topped her up by $5, and she holds the service list."""
    await say(emulator, ALICE, "/start", "Balance")
    topped = await say(emulator, ADMIN, f"/topup {ALICE} 5", "topped up")
    assert "topped up by $5.00" in topped.text
    return await say(emulator, ALICE, "/buy", "Choose a service")


async def ledger_check(tmp_path: Path, env: dict[str, str]) -> None:
    """`daisybot ledger-check` on the database the bot left behind."""
    checked = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        "ledger-check",
        "--db",
        str(tmp_path / "bot.sqlite3"),
        cwd=tmp_path,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    report, _ = await asyncio.wait_for(checked.communicate(), timeout=30)
    assert checked.returncode == 0, report.decode()


async def test_sigterm_while_a_purchase_is_upstream_finishes_it_and_exits_0(
    tmp_path: Path, sandbox: Sandbox, emulator: BotAPIEmulator
) -> None:
    env = bot_env(tmp_path, sandbox, emulator)
    alice = emulator.user(ALICE, "Alice", language_code="en")
    async with bot_process(tmp_path, env, emulator) as bot:
        services = await funded_buyer(emulator)
        await sandbox.control.add_fault("purchase", "delay_before", delay=PURCHASE_DELAY)
        before = alice.messages[-1].message_id
        tapped = asyncio.create_task(alice.press(services, SIGNAL, timeout=10))

        async def upstream_has_it() -> bool:
            return (await sandbox.control.stats()).requests.get("purchase", 0) == 1

        await wait_until(upstream_has_it, timeout=10, what="the purchase to reach the sandbox")
        # The tap was taken (confirmed to Telegram); its purchase is held upstream.
        await emulator.wait_confirmed()
        assert (await sandbox.control.account(DAISYSIM_KEY)).orders == []
        signalled = time.monotonic()
        bot.process.send_signal(signal.SIGTERM)
        await bot.logged("Polling stopped")
        # Written after the bot stopped taking updates: it must stay with Telegram.
        late = await alice.send("/balance")
        code = await bot.exited(timeout=GRACE + 5)
        took = time.monotonic() - signalled
        assert code == 0, bot.log
        assert took < GRACE, (took, bot.log)
        assert took >= PURCHASE_DELAY * 0.9  # it did wait for the purchase
        assert (await tapped).text == "Buying…"
        log = bot.log
        assert "Received SIGTERM signal" in log
        assert "shutdown done" in log
        assert "Traceback" not in log
        assert BOT_TOKEN not in log

    # The card reached the user before the process ended.
    cards = [m for m in alice.messages if m.message_id > before and is_card(m)]
    assert len(cards) == 1, alice.transcript()
    [order] = (await sandbox.control.account(DAISYSIM_KEY)).orders
    assert order.phone_number in cards[0].text
    # Nothing answered the late message, and Telegram still holds it.
    # (The card itself may come after it: the purchase was still upstream then.)
    answered = [m for m in alice.messages if m.message_id > late.message_id and not is_card(m)]
    assert answered == [], alice.transcript()
    assert emulator.pending_update_count == 1

    # The database, opened after the exit: the purchase linked to the upstream order.
    db = await Database.open(tmp_path / "bot.sqlite3")
    try:
        [activation] = await Repo(db).activations.last_for_user(ALICE, 10)
    finally:
        await db.close()
    assert activation.upstream_id == order.activation_id
    assert activation.phone_number == order.phone_number
    assert activation.state == "waiting"
    assert activation.card_message_id == cards[0].message_id
    await ledger_check(tmp_path, env)

    # The next start answers the late message; Ctrl-C stops that one cleanly too.
    async with bot_process(tmp_path, env, emulator) as again:
        answer = await alice.wait_for(lambda m: "Balance" in m.text, after=late, timeout=15)
        assert "Balance: $4.40" in answer.text
        await emulator.wait_confirmed(timeout=10)
        again.process.send_signal(signal.SIGINT)
        assert await again.exited(timeout=GRACE + 5) == 0, again.log
        assert "Received SIGINT signal" in again.log
        assert "Traceback" not in again.log


async def test_sigterm_with_a_purchase_waiting_in_line_keeps_its_place_and_money(
    tmp_path: Path, sandbox: Sandbox, emulator: BotAPIEmulator
) -> None:
    """The upstream said "wait an hour" (429): the purchase waits in line, its price held.
    SIGTERM then sends nothing new upstream and refunds nothing; the next start serves it."""
    env = bot_env(tmp_path, sandbox, emulator)
    alice = emulator.user(ALICE, "Alice", language_code="en")
    async with bot_process(tmp_path, env, emulator) as bot:
        services = await funded_buyer(emulator)
        await sandbox.control.add_fault("purchase", "error", code="RATE_LIMITED", seconds=3600)
        before = alice.messages[-1].message_id
        await alice.press(services, SIGNAL, timeout=10)
        place = await alice.wait_for(lambda m: "in line" in m.text, after=before, timeout=10)
        await emulator.wait_confirmed()
        bot.process.send_signal(signal.SIGTERM)
        assert await bot.exited(timeout=GRACE + 5) == 0, bot.log
        assert "Traceback" not in bot.log
    stats = await sandbox.control.stats()
    assert stats.requests.get("purchase", 0) == 1  # the refused one; nothing sent at the stop
    db = await Database.open(tmp_path / "bot.sqlite3")
    try:
        repo = Repo(db)
        assert await repo.queue.count() == 1
        wallet = await repo.wallets.get_by_owner("user", ALICE)
        assert wallet is not None
        assert wallet.balance == 50_000 - 6_000  # held, not refunded
    finally:
        await db.close()
    await ledger_check(tmp_path, env)

    async with bot_process(tmp_path, env, emulator) as again:

        async def bought() -> list[OrderInfo]:
            return (await sandbox.control.account(DAISYSIM_KEY)).orders

        [order] = await wait_until(bought, timeout=20, what="the queued purchase sent")
        # The message that showed the place becomes the card with that number (on the way it
        # may show "buying…" for as long as the call is in flight).
        card = await alice.wait_for_edit(place, lambda m: order.phone_number in m.text)
        assert is_card(card)
        again.process.send_signal(signal.SIGTERM)
        assert await again.exited(timeout=GRACE + 5) == 0, again.log
    await ledger_check(tmp_path, env)
