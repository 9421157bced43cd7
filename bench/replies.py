"""N new users each send /start within one second: how fast do their answers come?

The whole bot runs as in production (`bot.app.create_app`: dispatcher, purchase queue,
poller, outbox sender) polling the Bot API emulator, which enforces Telegram's flood limits in
real time (about 30 messages a second overall, one a second per private chat with short
bursts); a sandbox DaisySim serves the catalogue from a process of its own. Each of N users
sends /start once, the N messages spread evenly over one second.

Reported from the emulator's own records (monotonic times of the user's message and of the
bot's first answer in that chat): answers per second (N over the time from the first /start
to the last answer), p50 / p99 / max of the time from a /start to its answer, and 429s.
Telegram lets about 30 messages a second through, so the last of N answers cannot come
before about N/30 s; the target is at least 28 answers a second and a p99 within 0.5 s of
N/30 s, with zero 429s.

    python -m bench.replies              # N = 100 and 300, under a minute
    python -m bench.replies --n 100

Prints a table, then one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

from bench.common import RemoteSandbox, json_line, table, wait_for
from bot.app import App, create_app
from bot.config import Settings
from bot.emulator import BotAPIEmulator, ChatMessage, EmulatedUser, FloodLimits

TOKEN = "4242:REPLIES-token"
KEY = "replies-key"
FIRST_USER = 700_000
TELEGRAM_PER_SECOND = 30.0
TARGET_RATE = 28.0
P99_SLACK = 0.5


@contextlib.asynccontextmanager
async def running_bot(settings: Settings, emulator: BotAPIEmulator) -> AsyncIterator[App]:
    app = await create_app(settings)
    polling = asyncio.create_task(app.start_polling())
    try:
        await emulator.wait_polling(timeout=15)
        yield app
    finally:
        await app.stop()
        await asyncio.wait_for(polling, timeout=15)


def first_answer(user: EmulatedUser, sent: ChatMessage) -> ChatMessage | None:
    return next((m for m in user.history if m.from_bot and m.message_id > sent.message_id), None)


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


async def run(n: int, workdir: Path) -> dict[str, object]:
    sandbox = await RemoteSandbox.start(time_scale=1.0, seed=5)
    try:
        async with BotAPIEmulator(token=TOKEN, flood=FloodLimits()) as emulator:
            settings = Settings(
                _env_file=None,
                bot_token=TOKEN,
                telegram_api_url=emulator.api_url,
                daisysim_api_key=KEY,
                daisysim_base_url=sandbox.base_url,
                database_path=workdir / f"replies-{n}.sqlite3",
                log_level="WARNING",
            )
            async with running_bot(settings, emulator) as app:
                # The catalogue is warm, as on a bot that has been running for a while.
                await app.catalogue.services("USA")
                return await _measure(emulator, n)
    finally:
        await sandbox.stop()


async def _measure(emulator: BotAPIEmulator, n: int) -> dict[str, object]:
    users = [emulator.user(FIRST_USER + i, f"User {i}", language_code="en") for i in range(n)]
    sends: list[ChatMessage] = []
    began = time.monotonic()
    for i, user in enumerate(users):
        # Spread over one second: the i-th user types at began + i/n.
        delay = began + i / n - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        sends.append(await user.send("/start"))

    def all_answered() -> bool:
        return all(first_answer(u, s) is not None for u, s in zip(users, sends, strict=True))

    with contextlib.suppress(TimeoutError):
        await wait_for(all_answered, timeout=n / 10 + 30, what="answers")
    latencies: list[float] = []
    last = began
    for user, sent in zip(users, sends, strict=True):
        answer = first_answer(user, sent)
        if answer is None:
            continue
        latencies.append(answer.received_at - sent.received_at)
        last = max(last, answer.received_at)
    first_sent = sends[0].received_at
    span = last - first_sent
    answered = len(latencies)
    rate = answered / span if span > 0 else 0.0
    floor = n / TELEGRAM_PER_SECOND
    p50 = statistics.median(latencies) if latencies else float("nan")
    p99 = percentile(latencies, 0.99) if latencies else float("nan")
    return {
        "n": n,
        "answered": answered,
        "answers_per_s": round(rate, 1),
        "p50_s": round(p50, 2),
        "p99_s": round(p99, 2),
        "max_s": round(max(latencies), 2) if latencies else None,
        "floor_s": round(floor, 2),
        "telegram_429": emulator.flood_429_count,
        "met": answered == n
        and rate >= TARGET_RATE
        and p99 <= floor + P99_SLACK
        and emulator.flood_429_count == 0,
    }


async def main_async(sizes: Sequence[int]) -> int:
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-replies-") as tmp:
        for n in sizes:
            results.append(await run(n, Path(tmp)))
    print(
        table(
            ["N", "answered", "answers/s", "p50 s", "p99 s", "max s", "N/30 s", "429s", "met"],
            [
                [
                    r["n"],
                    r["answered"],
                    r["answers_per_s"],
                    r["p50_s"],
                    r["p99_s"],
                    r["max_s"],
                    r["floor_s"],
                    r["telegram_429"],
                    "yes" if r["met"] else "NO",
                ]
                for r in results
            ],
        )
    )
    print(json_line({"bench": "replies", "results": results}))
    return 0 if all(r["met"] for r in results) else 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--n", type=int, nargs="+", default=[100, 300])
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    return asyncio.run(main_async(args.n))


if __name__ == "__main__":
    sys.exit(main())
