"""Webhook mode: how many updates a second does one bot process handle, and how long from
Telegram's POST of an update to the bot's answer, with N users at once?

The whole bot runs as in production (`bot.app.create_app` with WEBHOOK_URL set: aiogram's
aiohttp webhook server with the secret check, the dedup record of every update_id, the
dispatcher, purchase queue, poller and outbox sender). The Bot API emulator POSTs each update
to it as Telegram does (the secret header, one update at a time per chat, up to setWebhook's
max_connections = 40 at once); a sandbox DaisySim runs in a process of its own. Each of N users
sends /start, waits for the menu, then /balance, waits for the screen, ROUNDS times over, all N
at once: 2 x ROUNDS x N updates, each answered with one message.

Telegram's flood limits are lifted, in the emulator and in the bot's own pacing
(`create_app(telegram_limits=...)`): Telegram's 30 messages a second would otherwise cap every
figure at 30 answers a second whatever the bot can do (bench.replies measures replies under
them). This measures the bot's own side: webhook server, dispatcher, database, replies. The
emulator and its HTTP client run in the same process and take their share of the one core, so
the figures are a floor. `--mode polling` runs the same load polling, for comparison.

Reported from the emulator's records (monotonic times): updates per second (updates over the
time from the first POST to the last answer), and p50 / p99 / max of the time from an update's
first POST to the bot's answer in that chat.

    python -m bench.webhook                 # N = 100 and 500, about a minute
    python -m bench.webhook --n 100 --mode webhook polling

Prints a table, then one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

from bench.common import RemoteSandbox, json_line, percentile, table, wait_for
from bot.app import App, create_app
from bot.config import Settings
from bot.emulator import BotAPIEmulator, ChatMessage, EmulatedUser, FloodLimits
from bot.telegram.limits import TelegramLimits

TOKEN = "4242:WEBHOOK-token"
KEY = "webhook-key"
SECRET = "bench-webhook-secret"
FIRST_USER = 800_000
ROUNDS = 3
# Far above what one process sends: the bot's pacing for Telegram never holds a reply here.
UNLIMITED = TelegramLimits(
    global_per_second=1_000_000, chat_per_second=1_000.0, chat_burst=1_000, group_per_minute=10**6
)
COMMANDS = ("/start", "/balance")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.asynccontextmanager
async def running_bot(settings: Settings, emulator: BotAPIEmulator) -> AsyncIterator[App]:
    app = await create_app(settings, telegram_limits=UNLIMITED)
    ready = asyncio.ensure_future(
        emulator.wait_webhook(timeout=15)
        if settings.webhook_mode
        else emulator.wait_polling(timeout=15)
    )
    running = asyncio.create_task(app.run())
    try:
        await ready
        yield app
    finally:
        ready.cancel()
        await app.stop()
        await asyncio.wait_for(running, timeout=30)


def answer_to(user: EmulatedUser, sent: ChatMessage) -> ChatMessage | None:
    return next((m for m in user.history if m.from_bot and m.message_id > sent.message_id), None)


async def run(n: int, mode: str, workdir: Path) -> dict[str, object]:
    sandbox = await RemoteSandbox.start(time_scale=1.0, seed=7)
    try:
        async with BotAPIEmulator(token=TOKEN, flood=FloodLimits.off()) as emulator:
            values: dict[str, Any] = {
                "bot_token": TOKEN,
                "telegram_api_url": emulator.api_url,
                "daisysim_api_key": KEY,
                "daisysim_base_url": sandbox.base_url,
                "database_path": workdir / f"webhook-{mode}-{n}.sqlite3",
                "log_level": "WARNING",
            }
            if mode == "webhook":
                port = free_port()
                values.update(
                    webhook_url=f"http://127.0.0.1:{port}/tg/webhook",
                    webhook_secret=SECRET,
                    webhook_listen=f"127.0.0.1:{port}",
                )
            settings = Settings(_env_file=None, **values)
            async with running_bot(settings, emulator) as app:
                await app.catalogue.services("USA")  # warm, as on a bot running a while
                return await _measure(emulator, n, mode)
    finally:
        await sandbox.stop()


async def _user(user: EmulatedUser, timeout: float) -> list[tuple[ChatMessage, ChatMessage]]:
    """One person: each command, then wait for its answer before the next."""
    exchanges = []
    for _ in range(ROUNDS):
        for command in COMMANDS:
            sent = await user.send(command)
            answer = await user.wait_for(after=sent, timeout=timeout)
            exchanges.append((sent, answer))
    return exchanges


async def _measure(emulator: BotAPIEmulator, n: int, mode: str) -> dict[str, object]:
    users = [emulator.user(FIRST_USER + i, f"User {i}", language_code="en") for i in range(n)]
    timeout = n / 5 + 30
    began = time.monotonic()
    results = await asyncio.gather(*(_user(u, timeout) for u in users), return_exceptions=True)
    exchanges = [pair for r in results if isinstance(r, list) for pair in r]
    with contextlib.suppress(TimeoutError):
        await wait_for(lambda: emulator.pending_update_count == 0, timeout=5, what="confirmed")

    # Where the clock starts for each update: its first POST (webhook) or the getUpdates
    # answer that carried it (polling).
    update_of = {
        (r.update["message"]["chat"]["id"], r.update["message"]["message_id"]): r
        for r in emulator.updates
        if r.kind == "message"
    }
    first_post: dict[int, float] = {}
    for delivery in emulator.webhook_deliveries:
        first_post.setdefault(delivery.update_id, delivery.at)
    latencies: list[float] = []
    first, last = float("inf"), began
    for sent, answer in exchanges:
        record = update_of[(sent.chat_id, sent.message_id)]
        start = first_post.get(record.update_id) if mode == "webhook" else record.delivered_at
        if start is None:
            continue
        latencies.append(answer.received_at - start)
        first, last = min(first, start), max(last, answer.received_at)
    expected = n * ROUNDS * len(COMMANDS)
    span = last - first if latencies else 0.0
    handled = len(latencies)
    return {
        "mode": mode,
        "n": n,
        "updates": expected,
        "answered": handled,
        "updates_per_s": round(handled / span, 1) if span > 0 else 0.0,
        "p50_ms": round(statistics.median(latencies) * 1000, 1) if latencies else None,
        "p99_ms": round(percentile(latencies, 99) * 1000, 1) if latencies else None,
        "max_ms": round(max(latencies) * 1000, 1) if latencies else None,
        "redelivered": sum(1 for d in emulator.webhook_deliveries if not d.accepted),
        "met": handled == expected,
    }


async def main_async(sizes: Sequence[int], modes: Sequence[str]) -> int:
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-webhook-") as tmp:
        for mode in modes:
            for n in sizes:
                results.append(await run(n, mode, Path(tmp)))
    print(
        table(
            ["mode", "N", "updates", "answered", "updates/s", "p50 ms", "p99 ms", "max ms"],
            [
                [
                    r["mode"],
                    r["n"],
                    r["updates"],
                    r["answered"],
                    r["updates_per_s"],
                    r["p50_ms"],
                    r["p99_ms"],
                    r["max_ms"],
                ]
                for r in results
            ],
        )
    )
    print(json_line({"bench": "webhook", "rounds": ROUNDS, "results": results}))
    return 0 if all(r["met"] for r in results) else 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--n", type=int, nargs="+", default=[100, 500])
    parser.add_argument("--mode", nargs="+", choices=["webhook", "polling"], default=["webhook"])
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    return asyncio.run(main_async(args.n, args.mode))


if __name__ == "__main__":
    sys.exit(main())
