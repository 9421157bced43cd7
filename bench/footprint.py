"""The bot's footprint with a realistic database: memory, and the database work of polling.

A database with 10 000 users (each with a wallet and a top-up), 10 000 finished activations
(completed, cancelled, expired, with their purchase and refund entries) and 1 000
waiting ones, each linked to a real number in the sandbox. The bot then starts as in
production (`create_app` with the purchase queue, the poller and the outbox sender) in a child
process of its own, so the memory measured is the bot's alone, against the Bot API emulator
and the sandbox served from this process.

Reported: the child's resident memory (VmRSS from /proc/self/status) before any import, after
importing aiogram's types alone (the framework's share), after start-up and after each full
poll cycle (every waiting activation checked once), its peak (VmHWM); and the database work
of polling: the CPU time of the SQLite connection's own thread (aiosqlite runs every statement
there) over a full cycle, and the wall and SQLite-thread time of the poller's two reads: the
whole waiting set (at start-up, then every few minutes as a safety net) and the look for rows
changed since the last one (twice a second).

The bot's package is imported first, as `python -m bot` does: it has aiogram build its Bot API
types on first use (bot/lazy_types.py), which is most of the difference from a plain
`import aiogram` (about 165 MB on its own).

Real time by default (`--scale 1`): the 50 check-all batches of a cycle then take about a
minute under the 60-a-minute check limit, as in production. A faster sandbox clock shortens
the cycle, and with it the number of the poller's periodic reads that fall into one.

    python -m bench.footprint
    python -m bench.footprint --users 10000 --waiting 1000 --finished 10000 --cycles 1

Prints a table, then one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import random
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

# Only the standard library at the top: the bot's process imports this module too, and must
# not carry the emulator's or the sandbox's code in the memory it reports.
if TYPE_CHECKING:
    from bot.daisysim import Purchase
    from bot.sandbox import Sandbox

TOKEN = "4242:FOOTPRINT-token"
KEY = "footprint-key"
FIRST_USER = 1_000_000
DAY = 86_400.0
SERVICES = (
    ("Signal", "Signal", 6_000),
    ("WhatsApp", "WhatsApp", 18_500),
    ("Telegram", "Telegram", 14_000),
)
# Provisioning 1 000 numbers must not take 100 upstream minutes: the sandbox gives this run a
# big purchase budget. The bot's own client keeps the real limits.
PROVISION_LIMIT = (1_000_000, 60.0)
RSS_TARGET_MB = 150.0
DB_TARGET_MS = 50.0


def rss_mb() -> tuple[float, float]:
    """(VmRSS, VmHWM) of this process in MB."""
    values: dict[str, float] = {}
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values[key] = int(rest.split()[0]) / 1024
    return values["VmRSS"], values["VmHWM"]


# --- the parent: data, servers, measurement ---------------------------------------------


async def provision(sandbox: Sandbox, count: int) -> list[tuple[Purchase, str]]:
    """`count` real waiting numbers upstream, each tagged like the bot tags its purchases."""
    from bot.daisysim import DaisySimClient, RateLimits
    from bot.services.money import new_recon_token
    from bot.services.purchase import reconciliation_tag

    limits = RateLimits(purchase=PROVISION_LIMIT).scaled(sandbox.config.time_scale)
    bought: list[tuple[Purchase, str]] = []
    async with DaisySimClient(sandbox.base_url, KEY, limits=limits) as client:
        for start in range(0, count, 50):
            tokens = [new_recon_token() for _ in range(min(50, count - start))]
            chunk = await asyncio.gather(
                *(
                    client.purchase("USA", "Signal", app_name=reconciliation_tag("Signal", t))
                    for t in tokens
                )
            )
            bought.extend(zip(chunk, tokens, strict=True))
    return bought


async def seed(path: Path, users: int, finished: int, waiting: list[tuple[Purchase, str]]) -> None:
    """The schema by the bot's own migrations, the rows in bulk (the repositories write one row
    per round trip, which would make the setup, not the bot, the slow part of this benchmark).
    The rows are what the bot writes; the schema's CHECKs and ledger triggers hold them to
    it (balances follow the ledger, signs match kinds)."""
    from storage.db import Database

    db = await Database.open(path)
    await db.close()
    await asyncio.to_thread(_bulk_insert, path, users, finished, waiting)


def _bulk_insert(
    path: Path, users: int, finished: int, waiting: list[tuple[Purchase, str]]
) -> None:
    from bot.services.money import new_recon_token

    rng = random.Random(5)
    now = time.time()
    conn = sqlite3.connect(path)
    try:
        conn.execute("PRAGMA foreign_keys = ON")
        with conn:
            user_rows = []
            wallet_rows = []
            ledger_rows: list[tuple[Any, ...]] = []
            for n in range(users):
                created = now - 31 * DAY + n
                user_rows.append(
                    (FIRST_USER + n, f"user{n}", f"User {n}", "ru" if n % 3 == 0 else "en", created)
                )
                wallet_rows.append((n + 1, FIRST_USER + n, created))
                ledger_rows.append((n + 1, 1_000_000, "topup", None, 0, "seed", created))
            conn.executemany(
                "INSERT INTO users (id, username, first_name, language, created_at)"
                " VALUES (?, ?, ?, ?, ?)",
                user_rows,
            )
            conn.executemany(
                "INSERT INTO wallets (id, owner_kind, owner_id, created_at)"
                " VALUES (?, 'user', ?, ?)",
                wallet_rows,
            )
            activation_rows: list[tuple[Any, ...]] = []
            for n in range(finished):
                index = rng.randrange(users)
                code, name, price = rng.choice(SERVICES)
                created = now - rng.uniform(DAY, 30 * DAY)
                roll = rng.random()
                state = "completed" if roll < 0.6 else "cancelled" if roll < 0.8 else "expired"
                activation_id = n + 1
                activation_rows.append(
                    (
                        activation_id,
                        FIRST_USER + index,
                        index + 1,
                        FIRST_USER + index,
                        state,
                        code,
                        name,
                        "USA",
                        price,
                        price,
                        price,
                        f"seed-finished-{n}",
                        new_recon_token(),
                        f"9{n:08d}",
                        f"+1940{n:07d}",
                        f"{rng.randrange(10**6):06d}" if state == "completed" else None,
                        created,
                        created + 1,
                        created + 181,
                        created + 40 if state == "completed" else None,
                        created + (40 if state == "completed" else 600),
                        None,
                    )
                )
                ledger_rows.append(
                    (index + 1, -price, "purchase", activation_id, None, None, created)
                )
                if state != "completed":
                    ledger_rows.append(
                        (index + 1, price, "refund", activation_id, None, state, created + 600)
                    )
            for n, (bought, token) in enumerate(waiting):
                index = n % users
                price = bought.amount_charged_units
                # Bought a minute ago: far from the automatic cancel.
                created = now - 60
                activation_id = finished + n + 1
                activation_rows.append(
                    (
                        activation_id,
                        FIRST_USER + index,
                        index + 1,
                        FIRST_USER + index,
                        "waiting",
                        "Signal",
                        "Signal",
                        "USA",
                        price,
                        price,
                        price,
                        f"seed-waiting-{bought.activation_id}",
                        token,
                        bought.activation_id,
                        bought.phone_number,
                        None,
                        created,
                        created,
                        created + 180,
                        None,
                        None,
                        created,
                    )
                )
                ledger_rows.append(
                    (index + 1, -price, "purchase", activation_id, None, None, created)
                )
            conn.executemany(
                "INSERT INTO activations (id, user_id, wallet_id, chat_id, state, service_code,"
                " service_name, country, user_price, upstream_price, upstream_amount,"
                " idempotency_key, recon_token, upstream_id, phone_number, code, created_at,"
                " purchased_at, cancel_after, completed_at, finished_at, next_poll_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                activation_rows,
            )
            # In time order, as they happened: a wallet never goes below zero on the way.
            ledger_rows.sort(key=lambda r: r[-1])
            conn.executemany(
                "INSERT INTO ledger (wallet_id, amount, kind, activation_id, actor_id, note,"
                " created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                ledger_rows,
            )
    finally:
        conn.close()


@dataclass
class Measured:
    bare_rss_mb: float
    aiogram_rss_mb: float
    list_waiting_db_cpu_ms: float
    startup_rss_mb: float
    cycles: list[dict[str, float]]
    peak_rss_mb: float
    list_waiting_ms: float
    changes_ms: float
    changes_db_cpu_ms: float
    startup_s: float


async def run_child(env: dict[str, str], cycles: int, waiting: int) -> Measured:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.footprint",
        "--child",
        "--cycles",
        str(cycles),
        "--waiting",
        str(waiting),
        env=env,
        stdout=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    events: dict[str, Any] = {"cycle": []}
    try:
        while True:
            line = await asyncio.wait_for(process.stdout.readline(), timeout=120)
            if not line:
                break
            event = json.loads(line)
            if event["event"] == "cycle":
                events["cycle"].append(event)
            else:
                events[event["event"]] = event
    finally:
        if process.returncode is None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(process.wait(), timeout=30)
        if process.returncode is None:
            process.kill()
            await process.wait()
    if "done" not in events:
        raise RuntimeError(f"the bot process did not finish its measurements: {events}")
    return Measured(
        bare_rss_mb=events["started"]["bare_rss_mb"],
        aiogram_rss_mb=events["started"]["aiogram_rss_mb"],
        list_waiting_db_cpu_ms=events["done"]["list_waiting_db_cpu_ms"],
        startup_rss_mb=events["started"]["rss_mb"],
        cycles=events["cycle"],
        peak_rss_mb=events["done"]["peak_rss_mb"],
        list_waiting_ms=events["done"]["list_waiting_ms"],
        changes_ms=events["done"]["changes_ms"],
        changes_db_cpu_ms=events["done"]["changes_db_cpu_ms"],
        startup_s=events["started"]["startup_s"],
    )


async def main_async(users: int, waiting: int, finished: int, cycles: int, scale: float) -> int:
    from bot.emulator import BotAPIEmulator
    from bot.sandbox import Sandbox
    from bot.services.poller import FULL_SYNC_SECONDS

    with tempfile.TemporaryDirectory(prefix="footprint-") as tmp:
        path = Path(tmp) / "bot.sqlite3"
        async with Sandbox(
            time_scale=scale,
            start_balance_units=10**12,
            rate_limits={"purchase": PROVISION_LIMIT},
            activation_lifetime=10**9,
            seed=9,
        ) as sandbox:
            started = time.monotonic()
            numbers = await provision(sandbox, waiting)
            await seed(path, users, finished, numbers)
            seeded = time.monotonic() - started
            async with BotAPIEmulator(token=TOKEN) as emulator:
                env = dict(os.environ)
                env.update(
                    BOT_TOKEN=TOKEN,
                    TELEGRAM_API_URL=emulator.api_url,
                    DAISYSIM_API_KEY=KEY,
                    DAISYSIM_BASE_URL=sandbox.base_url,
                    DATABASE_PATH=str(path),
                    DAISYSIM_TIME_SCALE=str(scale),
                    CANCEL_LOCK_SECONDS=str(180.0 / scale),
                    LOG_LEVEL="WARNING",
                )
                measured = await run_child(env, cycles, waiting)
            size_mb = path.stat().st_size / 2**20

    print(
        f"footprint: {users} users, {finished} finished + {waiting} waiting activations "
        f"(database {size_mb:.1f} MB, built in {seeded:.1f} s); upstream time scale {scale:g}"
    )
    rows = [
        ["python, before any import", f"{measured.bare_rss_mb:.1f}", "", "", ""],
        ["after `import bot, aiogram.types`", f"{measured.aiogram_rss_mb:.1f}", "", "", ""],
        ["bot after start-up", f"{measured.startup_rss_mb:.1f}", "", "", ""],
    ]
    for cycle in measured.cycles:
        rows.append(
            [
                f"after poll cycle {int(cycle['index'])}",
                f"{cycle['rss_mb']:.1f}",
                f"{cycle['db_cpu_ms']:.1f}",
                f"{cycle['process_cpu_ms']:.0f}",
                f"{cycle['wall_s']:.1f}",
            ]
        )
    rows.append(["peak (VmHWM)", f"{measured.peak_rss_mb:.1f}", "", "", ""])
    headers = ["moment", "RSS MB", "DB thread CPU ms", "process CPU ms", "cycle s"]
    table = [headers, *rows]
    widths = [max(len(r[i]) for r in table) for i in range(len(headers))]
    for index, row in enumerate(table):
        print(
            "  ".join(
                c.rjust(w) if i else c.ljust(w)
                for i, (c, w) in enumerate(zip(row, widths, strict=True))
            )
        )
        if index == 0:
            print("  ".join("-" * w for w in widths))
    print(
        "the poller's full read of every waiting activation (at start-up, then every "
        f"{FULL_SYNC_SECONDS / 60:g} min): {measured.list_waiting_ms:.1f} ms wall, "
        f"{measured.list_waiting_db_cpu_ms:.1f} ms on the SQLite thread"
    )
    print(
        f"its look for changed rows (twice a second): {measured.changes_ms:.2f} ms wall, "
        f"{measured.changes_db_cpu_ms:.2f} ms on the SQLite thread"
    )

    db_ms = max((c["db_cpu_ms"] for c in measured.cycles), default=0.0)
    rss_max = max([measured.startup_rss_mb, *(c["rss_mb"] for c in measured.cycles)])
    payload = {
        "bench": "footprint",
        "users": users,
        "waiting": waiting,
        "finished": finished,
        "time_scale": scale,
        "db_size_mb": round(size_mb, 1),
        "startup_rss_mb": round(measured.startup_rss_mb, 1),
        "cycle_rss_mb": [round(c["rss_mb"], 1) for c in measured.cycles],
        "peak_rss_mb": round(measured.peak_rss_mb, 1),
        "cycle_db_cpu_ms": [round(c["db_cpu_ms"], 1) for c in measured.cycles],
        "cycle_wall_s": [round(c["wall_s"], 2) for c in measured.cycles],
        "list_waiting_ms": round(measured.list_waiting_ms, 2),
        "list_waiting_db_cpu_ms": round(measured.list_waiting_db_cpu_ms, 2),
        "changes_ms": round(measured.changes_ms, 3),
        "changes_db_cpu_ms": round(measured.changes_db_cpu_ms, 3),
        "bare_rss_mb": round(measured.bare_rss_mb, 1),
        "aiogram_import_rss_mb": round(measured.aiogram_rss_mb, 1),
        "targets_met": rss_max <= RSS_TARGET_MB and db_ms < DB_TARGET_MS,
    }
    print(json.dumps(payload, sort_keys=True, separators=(",", ":")))
    return 0 if payload["targets_met"] else 1


# --- the child: the bot itself ----------------------------------------------------------


def _db_thread() -> threading.Thread:
    """aiosqlite runs every statement of a connection on one thread of its own."""
    found = [t for t in threading.enumerate() if "_connection_worker_thread" in t.name]
    if len(found) != 1:
        raise RuntimeError(f"expected one SQLite thread, found {[t.name for t in found]}")
    return found[0]


def _thread_cpu(thread: threading.Thread) -> float:
    assert thread.ident is not None
    return time.clock_gettime(time.pthread_getcpuclockid(thread.ident))


async def _timed(
    db_thread: threading.Thread, read: Callable[[], Awaitable[object]]
) -> tuple[float, float]:
    """Median wall and SQLite-thread time of seven runs of `read`, in ms."""
    walls, cpus = [], []
    for _ in range(7):
        t0, c0 = time.perf_counter(), _thread_cpu(db_thread)
        await read()
        walls.append((time.perf_counter() - t0) * 1000)
        cpus.append((_thread_cpu(db_thread) - c0) * 1000)
    return statistics.median(walls), statistics.median(cpus)


def _emit(event: str, **fields: Any) -> None:
    print(json.dumps({"event": event, **fields}), flush=True)


async def child(cycles: int, waiting: int) -> None:
    bare, _ = rss_mb()
    # As `python -m bot` does: the bot package first, whose import makes aiogram build its Bot
    # API types on first use (bot/lazy_types.py). Then aiogram, measured apart: the framework's
    # own share of the bot's memory.
    from bot import lazy_types

    lazy_types.install()  # done by importing `bot`; said here for the reader
    import aiogram.types  # noqa: F401

    framework, _ = rss_mb()
    from bot.app import create_app
    from bot.config import Settings

    began = time.monotonic()
    settings = Settings(_env_file=None)
    app = await create_app(settings)
    polling = asyncio.create_task(app.start_polling())
    try:
        deadline = time.monotonic() + 60

        p = app.poller
        while p.stats.ticks == 0:
            if polling.done() or time.monotonic() > deadline:
                raise RuntimeError("the bot did not start")
            await asyncio.sleep(0.05)
        rss, _ = rss_mb()
        _emit(
            "started",
            rss_mb=rss,
            startup_s=time.monotonic() - began,
            bare_rss_mb=bare,
            aiogram_rss_mb=framework,
        )

        db_thread = _db_thread()
        for index in range(1, cycles + 1):
            target = p.stats.ids_checked + waiting
            cpu0, proc0, wall0 = _thread_cpu(db_thread), time.process_time(), time.monotonic()
            while p.stats.ids_checked < target:
                if time.monotonic() - wall0 > 90:
                    raise RuntimeError(f"poll cycle {index} did not finish")
                await asyncio.sleep(0.02)
            db_cpu = _thread_cpu(db_thread) - cpu0
            proc = time.process_time() - proc0
            rss, _ = rss_mb()
            _emit(
                "cycle",
                index=index,
                rss_mb=rss,
                db_cpu_ms=db_cpu * 1000,
                process_cpu_ms=proc * 1000,
                wall_s=time.monotonic() - wall0,
            )
        repo = app.repo.activations
        mark = await repo.change_mark()
        full_ms, full_cpu = await _timed(db_thread, repo.list_waiting)
        changes_ms, changes_cpu = await _timed(db_thread, lambda: repo.changed_since(mark))
        _, peak = rss_mb()
        _emit(
            "done",
            peak_rss_mb=peak,
            list_waiting_ms=full_ms,
            list_waiting_db_cpu_ms=full_cpu,
            changes_ms=changes_ms,
            changes_db_cpu_ms=changes_cpu,
        )
    finally:
        await app.stop()
        await asyncio.wait_for(polling, timeout=30)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.footprint", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--waiting", type=int, default=1_000)
    parser.add_argument("--finished", type=int, default=10_000)
    parser.add_argument("--cycles", type=int, default=1)
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if args.child:
        asyncio.run(child(args.cycles, args.waiting))
        return 0
    return asyncio.run(main_async(args.users, args.waiting, args.finished, args.cycles, args.scale))


if __name__ == "__main__":
    sys.exit(main())
