"""What both delivery benchmarks share: a rig of the real poller and outbox sender between the
sandbox DaisySim and the Bot API emulator, in one process, over loopback HTTP.

The rig is the production composition minus the dispatcher (no user presses a button here):
settings → SQLite → DaisySimClient → aiogram Bot → OutboxSender + Poller, scheduled by an
APScheduler AsyncIOScheduler exactly as `bot.app.create_app` builds and schedules them.

Numbers come from the servers' own records: the emulator's `calls` (monotonic arrival time of
every Bot API request, and its 429 count) and the sandbox's request log and stats.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import secrets
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiogram import Bot
from aiogram.client.default import DefaultBotProperties
from aiogram.enums import ParseMode
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from bot.app import Delivery, build_delivery
from bot.config import Settings
from bot.daisysim import DaisySimClient, RateLimits
from bot.emulator import BotAPIEmulator, FloodLimits
from bot.sandbox import API_PREFIX, SandboxControl
from bot.services import money
from bot.services import wallet as wallet_service
from bot.services.money import PurchaseRequest
from bot.services.purchase_queue import PurchaseQueue
from bot.telegram.i18n import I18n
from bot.telegram.texts import render_card
from storage.db import Database
from storage.models import Activation
from storage.repo import Repo

KEY = "bench-key"
TOKEN = "4242:BENCH-token"
SERVICE = ("Signal", "Signal", 6_000)  # code, name, price in units
# Setting the numbers up is not what is measured: the upstream's purchase limit (10 a
# minute) would make 1 000 numbers take 100 minutes, so the rig's own purchases get a bigger
# budget (on the sandbox and on a provisioning client of its own). The poller's client keeps
# the real limits.
PROVISION_PURCHASE_LIMIT = (100_000, 60.0)


class RemoteSandbox:
    """The sandbox in a child process of its own, as the real upstream is: the requests it
    serves do not take turns on the bot's event loop (they would, in-process, and the
    figures would measure the rig more than the bot)."""

    def __init__(self, process: asyncio.subprocess.Process, root_url: str) -> None:
        self.process = process
        self.root_url = root_url
        self.base_url = root_url + API_PREFIX
        self.control = SandboxControl(root_url, timeout=30.0)

    @classmethod
    async def start(cls, **config: Any) -> RemoteSandbox:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            _SERVE_SANDBOX,
            json.dumps(config),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), timeout=30)
        if not line.startswith(b"http"):
            process.kill()
            await process.wait()
            raise RuntimeError(f"the sandbox did not start: {line!r}")
        return cls(process, line.decode().strip())

    async def stop(self) -> None:
        await self.control.aclose()
        if self.process.returncode is None:
            assert self.process.stdin is not None
            # Closing its stdin is the child's signal to stop.
            self.process.stdin.close()
            try:
                await asyncio.wait_for(self.process.wait(), timeout=10)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()


# The child imports the sandbox only (not aiogram and the rest), so it starts in a moment.
_SERVE_SANDBOX = """
import asyncio, json, sys
from bot.sandbox import Sandbox

async def serve(config):
    if "rate_limits" in config:
        config["rate_limits"] = {k: tuple(v) for k, v in config["rate_limits"].items()}
    async with Sandbox(**config) as sandbox:
        print(sandbox.root_url, flush=True)
        # Until the parent closes our stdin (or dies).
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)

asyncio.run(serve(json.loads(sys.argv[1])))
"""


@dataclass
class Rig:
    time_scale: float
    settings: Settings
    sandbox: RemoteSandbox
    emulator: BotAPIEmulator
    db: Database
    repo: Repo
    client: DaisySimClient
    provision_client: DaisySimClient
    # Buys the numbers a benchmark starts with, the way a tap does (through the queue).
    provision_queue: PurchaseQueue
    bot: Bot
    i18n: I18n
    delivery: Delivery
    scheduler: AsyncIOScheduler

    async def start_delivery(self, *, flood: FloodLimits | None = None) -> None:
        """Telegram's limits on from here (fresh buckets), then the poller and the sender."""
        self.emulator.flood_limits = flood or FloodLimits()
        self.delivery.poller.add_jobs(self.scheduler)
        self.scheduler.start()
        await self.delivery.start()


@contextlib.asynccontextmanager
async def rig(
    *,
    time_scale: float,
    poll_min_interval: float = 2.0,
    auto_cancel_after: float = 86_400.0,
    workdir: Path | None = None,
) -> AsyncIterator[Rig]:
    with contextlib.ExitStack() as stack:
        if workdir is None:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-")))
        async with contextlib.AsyncExitStack() as astack:
            sandbox = await RemoteSandbox.start(
                time_scale=time_scale,
                start_balance_units=10**12,
                rate_limits={"purchase": PROVISION_PURCHASE_LIMIT},
                # Numbers must not run out of time upstream while a fast-clocked rig is
                # still setting up the others.
                activation_lifetime=10**9,
                seed=7,
            )
            astack.push_async_callback(sandbox.stop)
            # Flood limits off while the rig sends the cards; `start_delivery` turns them on.
            emulator = await astack.enter_async_context(
                BotAPIEmulator(token=TOKEN, flood=FloodLimits.off())
            )
            settings = Settings(
                _env_file=None,
                bot_token=TOKEN,
                telegram_api_url=emulator.api_url,
                daisysim_api_key=KEY,
                daisysim_base_url=sandbox.base_url,
                database_path=workdir / "bench.sqlite3",
                daisysim_time_scale=time_scale,
                poll_min_interval_seconds=poll_min_interval,
                cancel_lock_seconds=180.0 / time_scale,
                auto_cancel_after_seconds=auto_cancel_after,
            )
            db = await Database.open(settings.database_path)
            astack.push_async_callback(db.close)
            client = DaisySimClient(sandbox.base_url, KEY, limits=RateLimits().scaled(time_scale))
            astack.push_async_callback(client.aclose)
            provision_client = DaisySimClient(
                sandbox.base_url,
                KEY,
                limits=RateLimits(purchase=PROVISION_PURCHASE_LIMIT).scaled(time_scale),
            )
            astack.push_async_callback(provision_client.aclose)
            provision_queue = PurchaseQueue(
                Repo(db), provision_client, cancel_lock_seconds=settings.cancel_lock_seconds
            )
            await provision_queue.start()
            astack.push_async_callback(provision_queue.stop)
            bot = Bot(
                token=TOKEN,
                session=emulator.aiogram_session(),
                default=DefaultBotProperties(parse_mode=ParseMode.HTML),
            )
            astack.push_async_callback(bot.session.close)
            i18n = I18n()
            delivery = build_delivery(settings, repo=Repo(db), client=client, bot=bot, i18n=i18n)
            scheduler = AsyncIOScheduler(timezone="UTC")
            the_rig = Rig(
                time_scale=time_scale,
                settings=settings,
                sandbox=sandbox,
                emulator=emulator,
                db=db,
                repo=Repo(db),
                client=client,
                provision_client=provision_client,
                provision_queue=provision_queue,
                bot=bot,
                i18n=i18n,
                delivery=delivery,
                scheduler=scheduler,
            )
            try:
                yield the_rig
            finally:
                if scheduler.running:
                    scheduler.shutdown(wait=False)
                await delivery.stop()


async def provision(
    the_rig: Rig, count: int, *, first_user_id: int = 100_000, with_cards: bool = True
) -> list[Activation]:
    """`count` users who started the bot, each with one waiting number (and its card)."""
    # One after another: the database commits serially anyway, and concurrent setup only
    # adds contention (measured: slower).
    return [await _provision_one(the_rig, first_user_id + n, with_cards) for n in range(count)]


async def _provision_one(the_rig: Rig, user_id: int, with_cards: bool) -> Activation:
    repo = the_rig.repo
    code, name, price = SERVICE
    user = the_rig.emulator.user(user_id, f"U{user_id}")
    await user.send("/start")  # nobody polls: it only marks the chat as started
    await repo.users.upsert(user_id, username=None, first_name=f"U{user_id}", language="en")
    wallet = await wallet_service.get_or_create_user_wallet(repo, user_id)
    await money.credit(repo, wallet.id, price, actor_id=0, note="bench")
    activation = await the_rig.provision_queue.buy(
        PurchaseRequest(
            user_id=user_id,
            wallet_id=wallet.id,
            service_code=code,
            service_name=name,
            user_price=price,
            upstream_price=price,
            idempotency_key=f"{user_id}:{secrets.token_hex(4)}",
            chat_id=user_id,
        ),
    )
    # The provisioning limit leaves room for every purchase: none waits in line.
    assert isinstance(activation, Activation), activation
    if with_cards:
        text, markup = render_card(activation, the_rig.i18n.translator("en"), time.time())
        message = await the_rig.bot.send_message(user_id, text, reply_markup=markup)
        await repo.activations.set_card(activation.id, user_id, message.message_id)
        activation = await repo.activations.get(activation.id) or activation
    return activation


async def wait_for(condition: Any, *, timeout: float, what: str, interval: float = 0.02) -> None:
    """Poll a condition until it holds or the deadline passes."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout}s")
        await asyncio.sleep(interval)


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty sample."""
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    cells = [[str(h) for h in headers]] + [[_cell(v) for v in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = []
    for index, row in enumerate(cells):
        lines.append("  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)))
        if index == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.2f}"
    return str(value)


def json_line(payload: dict[str, Any]) -> str:
    return json.dumps(payload, sort_keys=True, separators=(",", ":"))
