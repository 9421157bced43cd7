"""A burst of buyers against the upstream's 10 purchases a minute: does the queue hold?

N users (30 and 100) tap "buy" at the same moment. The whole bot runs as in production (the
app with its purchase queue, poller and outbox sender) against the Bot API emulator and a
sandbox DaisySim in a process of its own, both on loopback, with the sandbox's real rate
limits scaled in time (`--scale`, default 10: an upstream minute lasts six real seconds, and the
client's limiter is scaled to match).

Reported per N: buyers who saw an error (or were not sold a number), the 429s the upstream
served, whether the upstream sold in the order of the taps (the first ten go straight through
together; everyone after them strictly in tap order), and the wait of the first, the median
and the last buyer from the tap to the number on their screen, in real seconds and in
upstream-equivalent seconds (real × scale), against the ideal of ceil(k/10) minutes for the
k-th buyer (served within the ceil(k/10)-th minute). Because that ideal is an upper bound, the
table also shows how far each wait is beyond the earliest any client could manage:
(ceil(k/10) - 1) minutes, when ten are sold per minute from the tap on. The emulator's flood
limits are off, as in the end-to-end tests: what is measured is the upstream's limit.

    python -m bench.burst                # N = 30 and 100, under two minutes
    python -m bench.burst --n 30 --scale 20

Prints a table, then one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import math
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench.common import RemoteSandbox
from bot.app import App, create_app
from bot.config import Settings
from bot.emulator import BotAPIEmulator, ChatMessage, EmulatedUser, FloodLimits
from bot.ledger_check import check_ledger
from bot.services import money
from bot.services.purchase import token_of

TOKEN = "4242:BURST-token"
KEY = "burst-key"
BUY_LABEL = "Signal — $0.60"
PRICE_UNITS = 6_000
FUNDS = 100_000
PER_WINDOW = 10  # the upstream's purchases per minute
UPSTREAM_MINUTE = 60.0
TOLERANCE = 0.05
FIRST_USER = 600_000


@contextlib.asynccontextmanager
async def running_bot(settings: Settings, emulator: BotAPIEmulator) -> AsyncIterator[App]:
    """The production app (queue, poller, outbox sender), polling the emulator."""
    app = await create_app(settings)
    polling = asyncio.create_task(app.start_polling())
    try:
        await emulator.wait_polling(timeout=15)
        yield app
    finally:
        await app.stop()
        await asyncio.wait_for(polling, timeout=15)


def has_number(message: ChatMessage) -> bool:
    return message.text.startswith("📱") and any(
        c.startswith("+1") for c in message.entity_texts("code")
    )


@dataclass
class Wait:
    k: int  # 1-based rank of the tap
    real: float  # seconds from the tap to the number on screen
    bought_real: float  # seconds from the tap to the upstream's answer (the bot's record)
    scale: float

    @property
    def upstream(self) -> float:
        return self.real * self.scale

    @property
    def ideal(self) -> float:
        return math.ceil(self.k / PER_WINDOW) * UPSTREAM_MINUTE

    @property
    def earliest(self) -> float:
        return (math.ceil(self.k / PER_WINDOW) - 1) * UPSTREAM_MINUTE

    @property
    def within(self) -> bool:
        return self.upstream <= self.ideal * (1 + TOLERANCE)


@dataclass
class BurstResult:
    n: int
    scale: float
    errors: int
    upstream_429: int
    telegram_429: int
    order_kept: bool
    queued: int
    all_within: bool
    max_over_earliest_upstream_s: float
    books_balanced: bool
    waits: list[Wait]
    elapsed_real: float

    def pick(self, k: int) -> Wait:
        return next(w for w in self.waits if w.k == k)


async def run_burst(n: int, scale: float, workdir: Path) -> BurstResult:
    sandbox = await RemoteSandbox.start(time_scale=scale, start_balance_units=10**12, seed=11)
    try:
        async with BotAPIEmulator(token=TOKEN, flood=FloodLimits.off()) as emulator:
            settings = Settings(
                _env_file=None,
                bot_token=TOKEN,
                telegram_api_url=emulator.api_url,
                daisysim_api_key=KEY,
                daisysim_base_url=sandbox.base_url,
                database_path=workdir / f"burst-{n}.sqlite3",
                daisysim_time_scale=scale,
                cancel_lock_seconds=180.0 / scale,
                log_level="WARNING",
            )
            async with running_bot(settings, emulator) as app:
                return await _burst(app, emulator, sandbox, n, scale)
    finally:
        await sandbox.stop()


async def _setup_buyer(
    app: App, emulator: BotAPIEmulator, user_id: int
) -> tuple[EmulatedUser, ChatMessage]:
    user = emulator.user(user_id, f"Buyer {user_id}", language_code="en")
    menu = await user.wait_for(after=await user.send("/start"), timeout=30)
    wallet = await app.repo.wallets.get_by_owner("user", user_id)
    assert wallet is not None
    await money.credit(app.repo, wallet.id, FUNDS, actor_id=0, note="burst bench")
    await user.press(menu, "🛒", timeout=30)
    services = await user.wait_for_edit(menu, timeout=30)
    return user, services


async def _burst(
    app: App, emulator: BotAPIEmulator, sandbox: RemoteSandbox, n: int, scale: float
) -> BurstResult:
    people = await asyncio.gather(*(_setup_buyer(app, emulator, FIRST_USER + i) for i in range(n)))
    window = UPSTREAM_MINUTE / scale
    timeout = (n / PER_WINDOW + 3) * window + 30

    tapped_at = time.monotonic()
    tapped_wall = time.time()
    presses = await asyncio.gather(
        *(user.press(services, BUY_LABEL, timeout=timeout) for user, services in people),
        return_exceptions=True,
    )
    cards = await asyncio.gather(
        *(user.wait_for(has_number, after=services, timeout=timeout) for user, services in people),
        return_exceptions=True,
    )
    elapsed = time.monotonic() - tapped_at

    errors = 0
    waits: list[Wait] = []
    tokens: dict[str, int] = {}
    queued = 0
    for k, ((user, _), press, card) in enumerate(zip(people, presses, cards, strict=True), 1):
        activations = await app.repo.activations.last_for_user(user.id, 10)
        failed = (
            isinstance(press, BaseException)
            or isinstance(card, BaseException)
            or len(activations) != 1
            or activations[0].state != "waiting"
            or any(
                marker in m.text
                for m in user.history
                for marker in ("not charged", "try again", "went wrong", "Traceback")
            )
        )
        if failed:
            errors += 1
            continue
        assert not isinstance(press, BaseException)
        assert not isinstance(card, BaseException)
        if (press.text or "").startswith("You are in line"):
            queued += 1
        activation = activations[0]
        tokens[activation.recon_token] = k
        bought = (activation.purchased_at or tapped_wall) - tapped_wall
        waits.append(Wait(k, card.received_at - tapped_at, bought, scale))

    account = await sandbox.control.account(KEY)
    sold = [tokens.get(token_of(o.service) or "", 0) for o in account.orders]
    # The first window's purchases go out together (straight through); after them, strictly
    # one after the other in the order of the taps.
    first = min(PER_WINDOW, n)
    order_kept = (
        sorted(sold) == list(range(1, n + 1))
        and sorted(sold[:first]) == list(range(1, first + 1))
        and sold[first:] == list(range(first + 1, n + 1))
    )
    stats = await sandbox.control.stats()
    problems = await check_ledger(app.repo)
    return BurstResult(
        n=n,
        scale=scale,
        errors=errors,
        upstream_429=stats.rate_limited_total,
        telegram_429=emulator.flood_429_count,
        order_kept=order_kept,
        queued=queued,
        all_within=bool(waits) and all(w.within for w in waits) and errors == 0,
        max_over_earliest_upstream_s=max((w.upstream - w.earliest for w in waits), default=0.0),
        books_balanced=problems == [],
        waits=waits,
        elapsed_real=elapsed,
    )


def _row(result: BurstResult) -> list[str]:
    def fmt(w: Wait) -> str:
        return f"{w.real:.2f}s = {w.upstream:.0f}/{w.ideal:.0f} up-s"

    n = result.n
    ks = (1, math.ceil(n / 2), n)
    cells = []
    for k in ks:
        try:
            cells.append(f"k={k}: {fmt(result.pick(k))}")
        except StopIteration:
            cells.append(f"k={k}: error")
    return [
        str(n),
        str(result.errors),
        str(result.upstream_429),
        "yes" if result.order_kept else "NO",
        *cells,
        f"{result.max_over_earliest_upstream_s:.1f}",
        "yes" if result.all_within else "NO",
    ]


def print_table(results: Sequence[BurstResult]) -> None:
    headers = [
        "N",
        "errors",
        "429s",
        "order kept",
        "first buyer",
        "median buyer",
        "last buyer",
        "max over earliest (up-s)",
        f"all within {TOLERANCE:.0%} of ideal",
    ]
    rows = [headers, *(_row(r) for r in results)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(headers))]
    for index, row in enumerate(rows):
        print("  ".join(cell.rjust(width) for cell, width in zip(row, widths, strict=True)))
        if index == 0:
            print("  ".join("-" * width for width in widths))


def summary(results: Sequence[BurstResult]) -> dict[str, Any]:
    runs = []
    for r in results:
        n = r.n
        picked = {}
        for name, k in (("first", 1), ("median", math.ceil(n / 2)), ("last", n)):
            with contextlib.suppress(StopIteration):
                w = r.pick(k)
                picked[name] = {
                    "k": k,
                    "wait_real_s": round(w.real, 3),
                    "wait_upstream_s": round(w.upstream, 1),
                    "bought_upstream_s": round(w.bought_real * r.scale, 1),
                    "ideal_upstream_s": w.ideal,
                    "earliest_upstream_s": w.earliest,
                }
        base = asdict(r)
        base.pop("waits")
        base["waits"] = picked
        base["median_over_earliest_upstream_s"] = round(
            statistics.median(w.upstream - w.earliest for w in r.waits) if r.waits else 0.0, 1
        )
        runs.append(base)
    ok = all(
        r.errors == 0 and r.upstream_429 == 0 and r.order_kept and r.all_within for r in results
    )
    return {"bench": "burst", "targets_met": ok, "runs": runs}


async def main_async(sizes: Sequence[int], scale: float) -> int:
    results = []
    with tempfile.TemporaryDirectory(prefix="burst-") as tmp:
        for n in sizes:
            results.append(await run_burst(n, scale, Path(tmp)))
    print(
        f"purchase burst: upstream limit {PER_WINDOW}/min, time scale {scale:g} "
        f"(1 upstream minute = {UPSTREAM_MINUTE / scale:.2f} real s); waits are tap -> number "
        "on screen, 'real s = upstream s / ideal upstream s'"
    )
    print_table(results)
    payload = summary(results)
    print(json.dumps(payload, sort_keys=True, separators=(",", ":")))
    return 0 if payload["targets_met"] else 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.burst", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--n", type=int, nargs="+", default=[30, 100], help="burst sizes")
    parser.add_argument("--scale", type=float, default=10.0, help="upstream time scale")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    return asyncio.run(main_async(args.n, args.scale))


if __name__ == "__main__":
    sys.exit(main())
