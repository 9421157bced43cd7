"""Chaos soak: nothing may be lost when the bot is killed and the upstream misbehaves.

The real bot runs as a subprocess (`python -m bot run`, settings from the environment)
against the sandbox DaisySim and the Bot API emulator, both in this process on loopback.
A few dozen emulated users do everything at once (buy taps, double taps, Refresh, Cancel,
Buy again) while a share of the upstream's purchase, check-all, cancel and history calls
misbehave (5xx, 409, 429, connections dropped before and after the upstream acted, answers
slower than the client's 15 s timeout, malformed bodies), and the bot is killed with SIGKILL
at random moments, right after a buy, Refresh or Cancel tap, and while a purchase call is in
flight; each time it restarts on the same database.

At the end the faults are cleared, the bot (running again) is given time to settle, and then
stopped, and the harness checks the books against the upstream's and the users' chats:

- ledger-check clean (`bot.ledger_check.check_ledger`);
- every upstream order linked to exactly one activation;
- every activation charged once; refunded iff it ended without a code; none unsettled;
- every code the upstream delivered reached its user's chat (codes lost: zero);
- no code announced twice without a crash (duplicates after a kill are counted apart);
- zero upstream 429s other than injected ones;
- the upstream's refunds equal the bot's refunds of numbers that were sold.

    python -m bench.chaos                  # 30 users, 180 s, 8 kills (~4 min)
    python -m bench.chaos --short          # the CI preset: 8 users, 20 s, 3 kills, scale 30
    python -m bench.chaos --users 40 --seconds 300 --kills 12 --seed 7 --fault-rate 0.05

The plan is a function of the seed: every user's sequence of actions and pauses, the moment
and kind of every kill, and which upstream calls get which fault (the n-th call of an
endpoint). What comes of it still depends on how the processes interleave. Prints a table,
then one JSON line; exits 1 when a check fails.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import logging
import os
import random
import signal
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.common import json_line, table
from bot.emulator import (
    BotAPIEmulator,
    ChatMessage,
    EmulatedUser,
    EmulatorError,
    EmulatorEvent,
    FloodLimits,
)
from bot.ledger_check import check_ledger
from bot.sandbox import Sandbox
from bot.sandbox.control import Endpoint, FaultKind, LogEntry, OrderInfo
from bot.services import money
from bot.services import wallet as wallet_service
from bot.services.purchase import token_of
from storage.db import Database
from storage.models import REFUNDED_STATES, UNSETTLED_STATES, Activation
from storage.repo import Repo

TOKEN = "4242:CHAOS-token"
KEY = "chaos-key"
ROOT = Path(__file__).resolve().parent.parent
FIRST_USER = 700_000
FUNDS = 1_000_000  # $100 each: money never runs out, so every buy tap reaches the upstream
BUY_LABEL = "Signal —"
# The Bot API client's timeout for one DaisySim call (bot.app.DAISYSIM_TIMEOUT_SECONDS): a
# delayed answer goes just past it.
SLOW_ANSWER_SECONDS = 16.0
FAULTED_ENDPOINTS: tuple[Endpoint, ...] = ("purchase", "check-all", "cancel", "history")
# (kind, extra arguments of SandboxControl.add_fault), drawn uniformly.
FAULTS: tuple[tuple[FaultKind, dict[str, Any]], ...] = (
    ("error", {"code": "SERVER_ERROR"}),
    ("error", {"code": "PROVIDER_ERROR"}),
    ("error", {"code": "CONCURRENT_ERROR"}),
    ("error", {"code": "RATE_LIMITED", "seconds": 1}),
    ("drop_before", {}),
    ("drop_after", {}),
    ("delay_before", {"delay": SLOW_ANSWER_SECONDS}),
    ("delay_after", {"delay": SLOW_ANSWER_SECONDS}),
    ("malformed", {"variant": "truncated"}),
)
KILL_KINDS = ("random", "after_buy", "after_refresh", "after_cancel", "in_flight")
# How long a targeted kill waits for its moment (a user tapping, a purchase leaving).
KILL_ARM_SECONDS = 8.0
# An in-flight purchase is held upstream (before or after it is applied) for this share of
# the reconcile grace (120 upstream s), so the kill lands while the call is open and a bot
# that measures the grace from the send time still waits long enough.
IN_FLIGHT_SHARE_OF_GRACE = 0.4
# user action -> weight
ACTIONS = {"buy": 30, "double_buy": 8, "refresh": 27, "cancel": 22, "buy_again": 13}
CODE_MESSAGE = "🔑"
ERROR_MARKERS = ("went wrong", "Traceback")


@dataclass(frozen=True)
class Plan:
    users: int
    seconds: float
    kills: int
    seed: int
    fault_rate: float
    scale: float
    settle_seconds: float


@dataclass
class Kill:
    kind: str  # what was planned
    at: float  # monotonic
    hit: str  # what it actually landed on ("after_refresh", or "random" if its moment never came)


@dataclass
class CodeMessage:
    chat_id: int
    phone: str
    code: str
    at: float


@dataclass
class Counts:
    actions: Counter[str] = field(default_factory=Counter)
    unanswered_taps: int = 0  # the bot was down, or the tap's answer never came
    error_messages: int = 0  # "Something went wrong" and the like in a chat


class BotProcess:
    """`python -m bot run` with a fixed environment, killed and restarted on one database."""

    def __init__(self, env: dict[str, str], workdir: Path, emulator: BotAPIEmulator) -> None:
        self.env = env
        self.workdir = workdir
        self.emulator = emulator
        self.process: asyncio.subprocess.Process | None = None
        self.starts = 0
        self.log_path = workdir / "bot.log"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.returncode is None

    async def start(self) -> None:
        polled = asyncio.create_task(self.emulator.wait_polling(timeout=60))
        with self.log_path.open("ab") as log:
            self.process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "bot",
                "run",
                cwd=self.workdir,  # no .env here: the environment is everything
                env=self.env,
                stdout=log,
                stderr=log,
            )
        self.starts += 1
        await polled

    async def kill(self) -> None:
        assert self.process is not None
        assert self.process.returncode is None
        self.process.send_signal(signal.SIGKILL)
        await self.process.wait()

    async def stop(self) -> int | None:
        """SIGINT, as Ctrl-C: the bot finishes what it is doing and exits."""
        if self.process is None or self.process.returncode is not None:
            return None if self.process is None else self.process.returncode
        self.process.send_signal(signal.SIGINT)
        try:
            return await asyncio.wait_for(self.process.wait(), timeout=30)
        except TimeoutError:
            self.process.kill()
            return await self.process.wait()

    def tracebacks(self) -> list[str]:
        """The exception line of every traceback in the bot's log."""
        found: list[str] = []
        inside = False
        for line in self.log_path.read_text(errors="replace").splitlines():
            if line.startswith("Traceback"):
                inside = True
            elif inside and line and not line.startswith((" ", "\t")):
                found.append(line[:200])
                inside = False
        return found


class Chaos:
    def __init__(
        self, plan: Plan, sandbox: Sandbox, emulator: BotAPIEmulator, bot: BotProcess
    ) -> None:
        self.plan = plan
        self.sandbox = sandbox
        self.control = sandbox.control
        self.emulator = emulator
        self.bot = bot
        self.rng = random.Random(plan.seed)
        self.fault_rng = random.Random(f"{plan.seed}:faults")
        self.counts = Counts()
        self.kills: list[Kill] = []
        self.code_messages: list[CodeMessage] = []
        self.log: list[LogEntry] = []
        self.faults_armed: Counter[str] = Counter()
        # A targeted kill waiting for its moment: the kind, set by the killer, taken by the
        # first user tap of that kind (or the purchase watcher), who then kills.
        self.pending_kill: str | None = None
        self.stopped_at: datetime | None = None  # when the final stop began
        self.tap_delay = 0.0  # how long after the tap a targeted kill lands
        self.kill_lock = asyncio.Lock()
        self.killed = asyncio.Event()

    # ------------------------------------------------------------------ observation

    def on_event(self, event: EmulatorEvent) -> None:
        message = event.message
        if event.kind != "message" or message is None or not message.from_bot:
            return
        if message.text.startswith(CODE_MESSAGE):
            # The code comes first (what the user copies), the number after it.
            codes = message.entity_texts("code")
            if len(codes) >= 2:
                self.code_messages.append(
                    CodeMessage(message.chat_id, codes[-1], codes[0], event.at)
                )
        if any(marker in message.text for marker in ERROR_MARKERS):
            self.counts.error_messages += 1

    async def collect_log(self) -> None:
        after = self.log[-1].seq if self.log else 0
        self.log.extend(await self.control.request_log(after))

    # ------------------------------------------------------------------ faults

    async def inject_faults(self, stop: asyncio.Event) -> None:
        """Watch the calls arriving upstream; each one arms, with probability fault-rate, a
        fault on the next call of its endpoint."""
        seen: Counter[str] = Counter()
        while not stop.is_set():
            stats = await self.control.stats()
            for endpoint in FAULTED_ENDPOINTS:
                fresh = stats.requests.get(endpoint, 0) - seen[endpoint]
                seen[endpoint] += fresh
                for _ in range(fresh):
                    if self.fault_rng.random() < self.plan.fault_rate:
                        kind, extra = self.fault_rng.choice(FAULTS)
                        await self.control.add_fault(endpoint, kind, key=KEY, **extra)
                        self.faults_armed[f"{endpoint}:{kind}"] += 1
            await self.collect_log()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=0.25)

    # ------------------------------------------------------------------ kills

    async def do_kill(self, planned: str, hit: str) -> None:
        async with self.kill_lock:
            if not self.bot.running:
                return
            await self.bot.kill()
            self.kills.append(Kill(planned, time.monotonic(), hit))
            self.killed.set()

    async def tap_moment(self, action: str) -> None:
        """A user just tapped `action`: if a kill waits for that, it happens now."""
        if self.pending_kill == f"after_{action}":
            planned, self.pending_kill = self.pending_kill, None
            # The update has been queued; the bot fetches it at once. A few ms to a quarter
            # of a second later the handler is somewhere between its commit and its answer.
            await asyncio.sleep(self.tap_delay)
            await self.do_kill(planned, planned)

    async def killer(self, deadline: float) -> None:
        start = time.monotonic()
        span = deadline - start
        count = self.plan.kills
        kinds = [KILL_KINDS[i % len(KILL_KINDS)] for i in range(count)]
        self.rng.shuffle(kinds)
        # Evenly spread between 10 % and 85 % of the run, each jittered within its slot.
        slot = span * 0.75 / max(count, 1)
        moments = [
            start + span * 0.1 + slot * (i + self.rng.uniform(0.1, 0.9)) for i in range(count)
        ]
        # Drawn up front, so the same seed gives the same kills whatever the timing.
        tap_delays = [self.rng.uniform(0.0, 0.25) for _ in range(count)]
        downtimes = [self.rng.uniform(0.3, 1.5) for _ in range(count)]
        held: list[FaultKind] = [
            self.rng.choice(("delay_before", "delay_after")) for _ in range(count)
        ]
        for i, (kind, moment) in enumerate(zip(kinds, moments, strict=True)):
            self.tap_delay = tap_delays[i]
            await asyncio.sleep(max(0.0, moment - time.monotonic()))
            if not self.bot.running:
                continue
            if kind == "random":
                await self.do_kill(kind, kind)
            elif kind == "in_flight":
                await self.kill_in_flight(held[i])
            else:
                self.killed.clear()
                self.pending_kill = kind
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.killed.wait(), timeout=KILL_ARM_SECONDS)
                if self.pending_kill == kind:  # no such tap came: kill anyway
                    self.pending_kill = None
                    await self.do_kill(kind, "random")
            await self.restart(downtimes[i])

    async def kill_in_flight(self, kind: FaultKind) -> None:
        """Hold the next purchase upstream (before or after it is applied) and kill the bot
        while its call is open."""
        delay = IN_FLIGHT_SHARE_OF_GRACE * max(1.0, 120.0 / self.plan.scale)
        before = (await self.control.stats()).requests.get("purchase", 0)
        fault_id = await self.control.add_fault(
            "purchase",
            kind,
            key=KEY,
            delay=delay,
        )
        self.faults_armed[f"purchase:{kind} (kill)"] += 1
        until = time.monotonic() + KILL_ARM_SECONDS
        while time.monotonic() < until:
            arrived = (await self.control.stats()).requests.get("purchase", 0) > before
            armed = any(f.get("fault_id") == fault_id for f in await self.control.faults())
            if arrived and not armed:
                await asyncio.sleep(delay / 4)
                await self.do_kill("in_flight", f"in_flight ({kind})")
                return
            await asyncio.sleep(0.05)
        await self.do_kill("in_flight", "random")

    async def restart(self, downtime: float) -> None:
        if self.bot.running:
            return
        await asyncio.sleep(downtime)
        await self.bot.start()

    # ------------------------------------------------------------------ users

    async def user_loop(self, user: EmulatedUser, deadline: float) -> None:
        rng = random.Random(f"{self.plan.seed}:user:{user.id}")
        await asyncio.sleep(rng.uniform(0.0, 1.0))
        while time.monotonic() < deadline:
            action = rng.choices(list(ACTIONS), weights=list(ACTIONS.values()))[0]
            try:
                await self.act(user, action, rng, deadline)
            except (EmulatorError, TimeoutError):
                self.counts.unanswered_taps += 1
            await asyncio.sleep(rng.uniform(0.2, 1.2))

    async def act(
        self, user: EmulatedUser, action: str, rng: random.Random, deadline: float
    ) -> None:
        timeout = max(1.0, min(20.0, deadline - time.monotonic() + 5.0))
        cards = [m for m in user.messages if m.from_bot and m.text.startswith("📱")]
        if action in ("buy", "double_buy"):
            sent = await user.send("/buy")
            services = await user.wait_for(_has_button(BUY_LABEL), after=sent, timeout=timeout)
            self.counts.actions[action] += 1
            taps = 2 if action == "double_buy" else 1
            presses = [
                asyncio.ensure_future(user.press(services, BUY_LABEL, timeout=timeout))
                for _ in range(taps)
            ]
            await asyncio.sleep(0)
            await self.tap_moment("buy")
            await _gather_taps(presses)
            return
        label = {"refresh": "🔄 Refresh", "cancel": "Cancel", "buy_again": "🔁 Buy again"}[action]
        candidates = [c for c in cards if _has_button(label)(c)]
        if not candidates:
            return
        card = rng.choice(candidates)
        if action == "refresh" and self.pending_kill == "after_refresh":
            # A code is waiting upstream when this Refresh asks: the Refresh stores it and
            # announces it, and the kill lands around that.
            await self.deliver_code_for(card)
        self.counts.actions[action] += 1
        press = asyncio.ensure_future(user.press(card, label, timeout=timeout))
        await asyncio.sleep(0)
        await self.tap_moment(action)
        await _gather_taps([press])

    async def deliver_code_for(self, card: ChatMessage) -> None:
        phones = [p for p in card.entity_texts("code") if p.startswith("+")]
        if not phones:
            return
        account = await self.control.account(KEY)
        for order in account.orders:
            if order.phone_number == phones[0] and order.status == "Waiting":
                await self.control.deliver_code(order.activation_id)
                return

    # ------------------------------------------------------------------ run

    async def run(self, users: list[EmulatedUser]) -> None:
        deadline = time.monotonic() + self.plan.seconds
        stop_faults = asyncio.Event()
        injector = asyncio.create_task(self.inject_faults(stop_faults))
        killer = asyncio.create_task(self.killer(deadline))
        loops = [asyncio.create_task(self.user_loop(u, deadline)) for u in users]
        try:
            await asyncio.gather(*loops)
            await killer
        finally:
            stop_faults.set()
            await injector
            for task in (killer, *loops):
                task.cancel()
        await self.control.clear_faults()
        if not self.bot.running:
            await self.bot.start()


def _has_button(label: str) -> Any:
    def check(message: ChatMessage) -> bool:
        return any(label in b.text and b.callback_data for b in message.all_buttons)

    return check


async def _gather_taps(presses: Sequence[asyncio.Future[Any]]) -> None:
    results = await asyncio.gather(*presses, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException) and not isinstance(
            result, EmulatorError | TimeoutError
        ):
            raise result
    if any(isinstance(r, BaseException) for r in results):
        raise TimeoutError("a tap got no answer")


# ---------------------------------------------------------------------- setup


async def provision_users(db_path: Path, count: int) -> list[int]:
    """Users who exist with money before the bot first starts (an admin's top-up)."""
    db = await Database.open(db_path)
    try:
        repo = Repo(db)
        ids = [FIRST_USER + n for n in range(count)]
        for user_id in ids:
            await repo.users.upsert(user_id, username=None, first_name=f"U{user_id}", language="en")
            wallet = await wallet_service.get_or_create_user_wallet(repo, user_id)
            await money.credit(repo, wallet.id, FUNDS, actor_id=0, note="chaos bench")
        return ids
    finally:
        await db.close()


def bot_env(
    plan: Plan, sandbox: Sandbox, emulator: BotAPIEmulator, db_path: Path
) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DAISYSIM_", "BOT_", "TELEGRAM_", "DATABASE_", "MARKUP_"))
    }
    env.update(
        {
            "PYTHONPATH": str(ROOT),  # this checkout's bot, whatever cwd the process has
            "BOT_TOKEN": TOKEN,
            "TELEGRAM_API_URL": emulator.api_url,
            "DAISYSIM_API_KEY": KEY,
            "DAISYSIM_BASE_URL": sandbox.base_url,
            "DATABASE_PATH": str(db_path),
            "DAISYSIM_TIME_SCALE": f"{plan.scale:g}",
            "CANCEL_LOCK_SECONDS": f"{180.0 / plan.scale:g}",
            "AUTO_CANCEL_AFTER_SECONDS": f"{600.0 / plan.scale:g}",
            "LOG_LEVEL": "WARNING",
        }
    )
    return env


# ---------------------------------------------------------------------- settling and checks


async def settle(chaos: Chaos, db_path: Path) -> float:
    """Wait until nothing is unsettled and the outbox is empty, twice in a row, no sooner
    than the bot's reconcile grace plus a reconcile period (real seconds)."""
    started = time.monotonic()
    grace = max(1.0, 120.0 / chaos.plan.scale) + max(2.0, 60.0 / chaos.plan.scale)
    quiet = 0
    while time.monotonic() - started < chaos.plan.settle_seconds:
        await chaos.collect_log()
        db = await Database.open(db_path, readonly=True)
        try:
            repo = Repo(db)
            unsettled = await repo.activations.count_by_state()
            outbox = await repo.outbox.count_by_state()
            waiting = {a.upstream_id for a in await repo.activations.list_waiting()}
        finally:
            await db.close()
        # A code that came upstream in the last moments must reach the bot before it stops.
        orders = (await chaos.control.account(KEY)).orders
        unseen_codes = sum(1 for o in orders if o.code is not None and o.activation_id in waiting)
        busy = (
            sum(unsettled.get(s, 0) for s in UNSETTLED_STATES)
            + outbox.get("pending", 0)
            + unseen_codes
        )
        quiet = quiet + 1 if busy == 0 else 0
        if quiet >= 2 and time.monotonic() - started >= grace:
            break
        await asyncio.sleep(1.0)
    return time.monotonic() - started


@dataclass
class Check:
    name: str
    passed: bool
    figure: object
    evidence: list[str] = field(default_factory=list)


async def checks(
    chaos: Chaos, db_path: Path, user_ids: list[int]
) -> tuple[list[Check], dict[str, Any]]:
    account = await chaos.control.account(KEY)
    await chaos.collect_log()
    db = await Database.open(db_path, readonly=True)
    try:
        repo = Repo(db)
        problems = await check_ledger(repo)
        audits = {a.id: a for a in await repo.audit.activations()}
        activations: list[Activation] = []
        for user_id in user_ids:
            activations.extend(await repo.activations.last_for_user(user_id, 100_000))
    finally:
        await db.close()
    orders: dict[str, OrderInfo] = {o.activation_id: o for o in account.orders}
    by_upstream: dict[str, list[Activation]] = {}
    by_token = {a.recon_token: a for a in activations}
    for a in activations:
        if a.upstream_id is not None:
            by_upstream.setdefault(a.upstream_id, []).append(a)

    result: list[Check] = []
    result.append(Check("ledger-check clean", not problems, len(problems), problems[:5]))

    badly_linked = []
    for order in orders.values():
        linked = by_upstream.get(order.activation_id, [])
        if len(linked) != 1:
            token = token_of(order.service) or ""
            holder = by_token.get(token)
            badly_linked.append(
                f"order {order.activation_id} ({order.status}, refund {order.refund_units}) "
                f"linked to {len(linked)} activations; its token's activation: "
                + (f"{holder.id} ({holder.state})" if holder else "none")
            )
    result.append(
        Check(
            "every upstream order linked to one activation",
            not badly_linked,
            len(badly_linked),
            badly_linked[:5],
        )
    )

    charged = [
        f"activation {a.id}: {a.purchase_count} charges"
        for a in audits.values()
        if a.purchase_count != 1
    ]
    result.append(Check("each activation charged once", not charged, len(charged), charged[:5]))

    refund_wrong = [
        f"activation {a.id} ({a.state}, code {a.code!r}): refunded {a.refund_count}x"
        for a in audits.values()
        if a.refund_count > 1
        or (a.refund_count == 1) != (a.code is None and a.state in REFUNDED_STATES)
    ]
    result.append(
        Check("refunded iff no code", not refund_wrong, len(refund_wrong), refund_wrong[:5])
    )

    unsettled = [
        f"activation {a.id} is {a.state}" for a in audits.values() if a.state in UNSETTLED_STATES
    ]
    result.append(Check("none left unsettled", not unsettled, len(unsettled), unsettled[:5]))

    delivered = Counter((m.chat_id, m.code) for m in chaos.code_messages)
    lost = []
    late = 0
    for order in orders.values():
        if order.code is None:
            continue
        if (
            chaos.stopped_at is not None
            and order.completed_at is not None
            and datetime.fromisoformat(order.completed_at) >= chaos.stopped_at
        ):
            late += 1  # came upstream while the bot was being stopped: nobody could see it
            continue
        linked = by_upstream.get(order.activation_id) or [
            a for a in [by_token.get(token_of(order.service) or "")] if a is not None
        ]
        owner = linked[0] if linked else None
        chat = (owner.chat_id or owner.user_id) if owner else None
        if chat is None or delivered[(chat, order.code)] == 0:
            lost.append(
                f"order {order.activation_id} code {order.code} for "
                + (
                    f"activation {owner.id} ({owner.state}, code {owner.code!r})"
                    if owner
                    else "nobody"
                )
                + " never reached a chat"
            )
    result.append(Check("every delivered code reached its user", not lost, len(lost), lost[:5]))

    after_kill: list[str] = []
    no_crash: list[str] = []
    by_code: dict[tuple[int, str], list[float]] = {}
    for m in chaos.code_messages:
        by_code.setdefault((m.chat_id, m.code), []).append(m.at)
    for (chat, code), moments in by_code.items():
        moments.sort()
        for previous, later in itertools.pairwise(moments):
            crashed = any(previous <= k.at <= later for k in chaos.kills)
            (after_kill if crashed else no_crash).append(
                f"code {code} to chat {chat} again {later - previous:.1f}s later"
            )
    result.append(
        Check(
            "no duplicate code message without a crash", not no_crash, len(no_crash), no_crash[:5]
        )
    )

    injected_429 = sum(1 for e in chaos.log if e.status == 429 and e.fault is not None)
    real_429 = [
        f"{e.endpoint} seq {e.seq} {e.code}"
        for e in chaos.log
        if e.status == 429 and e.fault is None
    ]
    result.append(
        Check("zero upstream 429s but injected ones", not real_429, len(real_429), real_429[:5])
    )

    bot_refunds = 0
    refund_mismatch = []
    for order in orders.values():
        linked = by_upstream.get(order.activation_id, [])
        bot_refunded = any(audits[a.id].refund_count for a in linked if a.id in audits)
        if bot_refunded:
            bot_refunds += order.amount_units
        if bot_refunded != (order.refund_units > 0):
            refund_mismatch.append(
                f"order {order.activation_id} ({order.status}): upstream refunded "
                f"{order.refund_units}, bot refunded: {bot_refunded}"
                + ("" if linked else " (no activation linked)")
            )
    result.append(
        Check(
            "upstream refunds = bot refunds of sold numbers",
            account.refunds_units == bot_refunds and not refund_mismatch,
            f"{account.refunds_units} vs {bot_refunds}",
            refund_mismatch[:5],
        )
    )

    faults = Counter(f"{e.endpoint}:{e.fault}" for e in chaos.log if e.fault is not None)
    states = Counter(a.state for a in activations)
    figures: dict[str, Any] = {
        "actions": dict(chaos.counts.actions),
        "unanswered_taps": chaos.counts.unanswered_taps,
        "error_messages": chaos.counts.error_messages,
        "upstream_calls": Counter(e.endpoint for e in chaos.log if e.endpoint),
        "faults": dict(sorted(faults.items())),
        "faults_total": sum(faults.values()),
        "injected_429": injected_429,
        "kills": len(chaos.kills),
        "kills_by_moment": dict(Counter(k.hit for k in chaos.kills)),
        "restarts": chaos.bot.starts - 1,
        "orders": len(orders),
        "activations": dict(states),
        "codes_upstream": sum(1 for o in orders.values() if o.code is not None),
        "code_messages": len(chaos.code_messages),
        "codes_lost": len(lost),
        "codes_after_stop": late,
        "duplicates_after_kill": len(after_kill),
        "duplicates_without_crash": len(no_crash),
        "upstream_refunds_units": account.refunds_units,
        "bot_refunds_of_sold_units": bot_refunds,
        "bot_tracebacks": chaos.bot.tracebacks(),
    }
    figures["upstream_calls"] = dict(figures["upstream_calls"])
    return result, figures


# ---------------------------------------------------------------------- main


async def run(plan: Plan) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="chaos-") as tmp:
        workdir = Path(tmp)
        db_path = workdir / "bot.sqlite3"
        user_ids = await provision_users(db_path, plan.users)
        async with (
            Sandbox(
                time_scale=plan.scale,
                start_balance_units=10**12,
                # Codes come on their own for two numbers in three (real seconds after the
                # purchase, from well inside the cancel lock to well past it, so that codes
                # race Cancel taps); the rest are cancelled by the users or by the bot.
                auto_code_after=(18.0 / plan.scale, 270.0 / plan.scale),
                auto_code_probability=0.65,
                seed=plan.seed,
            ) as sandbox,
            BotAPIEmulator(token=TOKEN, flood=FloodLimits.off()) as emulator,
        ):
            await sandbox.control.set_account(KEY, balance_units=10**12)
            bot = BotProcess(bot_env(plan, sandbox, emulator, db_path), workdir, emulator)
            chaos = Chaos(plan, sandbox, emulator, bot)
            emulator.add_listener(chaos.on_event)
            started = time.monotonic()
            await bot.start()
            try:
                users = []
                for user_id in user_ids:
                    user = emulator.user(user_id, f"U{user_id}", language_code="en")
                    await user.wait_for(after=await user.send("/start"), timeout=30)
                    users.append(user)
                await chaos.run(users)
                settled_in = await settle(chaos, db_path)
            finally:
                chaos.stopped_at = datetime.now(UTC)
                exit_code = await bot.stop()
            found, figures = await checks(chaos, db_path, user_ids)
            figures.update(
                {
                    "settle_s": round(settled_in, 1),
                    "elapsed_s": round(time.monotonic() - started, 1),
                    "last_exit_code": exit_code,
                }
            )
            if os.environ.get("CHAOS_KEEP_LOG"):
                print(bot.log_path.read_text(errors="replace")[-20_000:], file=sys.stderr)
    return {"plan": plan, "checks": found, "figures": figures}


def report(plan: Plan, found: list[Check], figures: dict[str, Any]) -> dict[str, Any]:
    print(
        f"chaos: {plan.users} users, {plan.seconds:g} s, {plan.kills} kills, seed {plan.seed}, "
        f"fault rate {plan.fault_rate:.0%}, time scale {plan.scale:g}"
    )
    rows: list[list[object]] = [
        ["actions", ", ".join(f"{k} {v}" for k, v in sorted(figures["actions"].items()))],
        ["unanswered taps", figures["unanswered_taps"]],
        ["error messages to users", figures["error_messages"]],
        [
            "upstream calls",
            ", ".join(f"{k} {v}" for k, v in sorted(figures["upstream_calls"].items())),
        ],
        [
            "faults served",
            f"{figures['faults_total']}: "
            + ", ".join(f"{k} {v}" for k, v in figures["faults"].items()),
        ],
        [
            "kills",
            f"{figures['kills']}: "
            + ", ".join(f"{k} {v}" for k, v in sorted(figures["kills_by_moment"].items())),
        ],
        ["orders upstream / codes upstream", f"{figures['orders']} / {figures['codes_upstream']}"],
        ["activations", ", ".join(f"{k} {v}" for k, v in sorted(figures["activations"].items()))],
        ["code messages", figures["code_messages"]],
        ["duplicates after a kill", figures["duplicates_after_kill"]],
        ["bot tracebacks in its log", len(figures["bot_tracebacks"])],
        ["settled in / elapsed (s)", f"{figures['settle_s']} / {figures['elapsed_s']}"],
    ]
    print(table(["figure", "value"], rows))
    print()
    print(
        table(
            ["check", "result", "figure"],
            [[c.name, "pass" if c.passed else "FAIL", c.figure] for c in found],
        )
    )
    for c in found:
        for line in c.evidence if not c.passed else ():
            print(f"  {c.name}: {line}")
    for line in figures["bot_tracebacks"]:
        print(f"  bot traceback: {line}")
    payload = {
        "bench": "chaos",
        "plan": {
            "users": plan.users,
            "seconds": plan.seconds,
            "kills": plan.kills,
            "seed": plan.seed,
            "fault_rate": plan.fault_rate,
            "scale": plan.scale,
        },
        "checks": {c.name: c.passed for c in found},
        "all_passed": all(c.passed for c in found),
        **figures,
    }
    print(json_line(payload))
    return payload


def parse_plan(argv: Sequence[str] | None) -> Plan:
    parser = argparse.ArgumentParser(
        prog="python -m bench.chaos", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--users", type=int, default=None, help="emulated users (30)")
    parser.add_argument("--seconds", type=float, default=None, help="length of the chaos (180)")
    parser.add_argument("--kills", type=int, default=None, help="SIGKILLs of the bot (8)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--fault-rate",
        type=float,
        default=None,
        help="share of upstream calls that arm a fault on the next one (0.04)",
    )
    parser.add_argument("--scale", type=float, default=None, help="upstream time scale (10)")
    parser.add_argument("--short", action="store_true", help="the CI preset (< 60 s)")
    args = parser.parse_args(argv)
    short = args.short
    users = args.users if args.users is not None else (8 if short else 30)
    seconds = args.seconds if args.seconds is not None else (20.0 if short else 180.0)
    kills = args.kills if args.kills is not None else (3 if short else 8)
    # The short preset runs the upstream clock faster, so that the 180 s cancel lock and the
    # auto-cancel pass within its 20 s and cancels and Buy again happen at all.
    scale = args.scale if args.scale is not None else (30.0 if short else 10.0)
    fault_rate = args.fault_rate if args.fault_rate is not None else (0.08 if short else 0.04)
    if users < 1 or seconds <= 0 or kills < 0 or not 0 <= fault_rate <= 1 or scale <= 0:
        parser.error("users ≥ 1, seconds > 0, kills ≥ 0, 0 ≤ fault rate ≤ 1, scale > 0")
    return Plan(
        users=users,
        seconds=seconds,
        kills=kills,
        seed=args.seed,
        fault_rate=fault_rate,
        scale=scale,
        settle_seconds=30.0 if short else 90.0,
    )


def _not_a_killed_client(record: logging.LogRecord) -> bool:
    return not (record.exc_info and isinstance(record.exc_info[1], ConnectionResetError))


def main(argv: Sequence[str] | None = None) -> int:
    plan = parse_plan(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    # The sandbox logs every request whose client (the bot) was killed mid-way; those are
    # this harness's doing, any other failure still shows.
    logging.getLogger("bot.sandbox.server").addFilter(_not_a_killed_client)
    outcome = asyncio.run(run(plan))
    payload = report(plan, outcome["checks"], outcome["figures"])
    return 0 if payload["all_passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
