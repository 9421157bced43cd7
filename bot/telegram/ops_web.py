"""`/metrics`, `/healthz` and `/readyz` for Prometheus and an orchestrator, as aiohttp routes.

`add_ops_routes(web_app, ops)` mounts them on any aiohttp application (the webhook server's);
in polling mode `OpsServer` serves them alone on `METRICS_LISTEN`. None of them shows a user,
an amount, a token or a key: counts, ages and one word per check.

* `/healthz`: the process answers and the database takes a write (an empty `BEGIN IMMEDIATE`
  transaction, which needs SQLite's write lock). 200 or 503.
* `/readyz`: the upstream is reachable, the poller ticked within a minute and the outbox is
  not stuck. The upstream counts as reachable when the API itself answered recently and
  nothing failed since; otherwise one `GET /balance` (no rate limit on it, never retried) is
  tried, at most every few seconds however often the probe is scraped, so readiness never
  spends the check, purchase or cancel budgets.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from bot.daisysim import DaisySimClient, DaisySimError
from bot.metrics import Metrics, StateSnapshot
from bot.services.poller import Poller
from bot.services.purchase_queue import LEFT_QUEUE
from bot.telegram.outbox import OutboxSender
from storage.repo import Repo

logger = logging.getLogger(__name__)

# An answer from the API this recent (upstream seconds) proves it is there without a probe.
UPSTREAM_FRESH_SECONDS = 30.0
# A probe's result stands this long (upstream seconds): scrapers cannot make it hammer.
PROBE_EVERY_SECONDS = 5.0
PROBE_TIMEOUT_SECONDS = 5.0
# Real seconds: the poller's job ticks several times a second, whatever the upstream's clock.
POLLER_STALE_SECONDS = 60.0
# A due message this old while the sender finished no attempt for as long: stuck.
OUTBOX_STUCK_SECONDS = 60.0

_GONE = frozenset({"NOT_FOUND", "INVALID"})


def refund_reason(state: str, error_code: str | None) -> str:
    """A few stable words for `daisybot_refunds_total{reason}` from how an activation ended."""
    if state == "failed":
        return "purchase_failed"  # rejected upstream, or never sold (reconciled)
    if state == "cancelled":
        return "left_queue" if error_code == LEFT_QUEUE else "cancelled"
    if state == "expired":
        return "gone" if error_code in _GONE else "no_code"
    return state


@dataclass(eq=False)
class Ops:
    """What the three endpoints read. Built once in the composition root."""

    metrics: Metrics
    repo: Repo
    client: DaisySimClient
    poller: Poller
    sender: OutboxSender
    time_scale: float = 1.0
    clock: Callable[[], float] = time.monotonic
    wall: Callable[[], float] = time.time
    _probe: asyncio.Task[bool] | None = field(default=None, init=False)
    _probed_at: float | None = field(default=None, init=False)
    _probe_ok: bool = field(default=False, init=False)

    # --- /metrics -------------------------------------------------------------------------

    async def snapshot(self) -> StateSnapshot:
        now = self.wall()
        backlog = await self.repo.outbox.backlog(now)
        refunds: dict[str, int] = {}
        for (state, error_code), count in (await self.repo.activations.refund_counts()).items():
            reason = refund_reason(state, error_code)
            refunds[reason] = refunds.get(reason, 0) + count
        last_tick = self.poller.last_tick_at
        return StateSnapshot(
            queue_length=await self.repo.queue.count(),
            outbox_pending=backlog.pending,
            outbox_due=backlog.due,
            outbox_oldest_due_age=(
                0.0 if backlog.oldest_due_at is None else max(0.0, now - backlog.oldest_due_at)
            ),
            reconcile_backlog=await self.repo.activations.count_unsettled(),
            refunds=refunds,
            poller_cycle_seconds=self.poller.cycle_seconds(),
            poller_last_tick_age=None if last_tick is None else self.poller.clock() - last_tick,
        )

    async def render_metrics(self) -> bytes:
        self.metrics.set_state(await self.snapshot())
        return generate_latest(self.metrics.registry)

    # --- /healthz -------------------------------------------------------------------------

    async def database_writable(self) -> bool:
        try:
            async with self.repo.transaction():
                # BEGIN IMMEDIATE has taken the write lock; committing nothing is the write.
                pass
        except Exception:
            logger.exception("health check: the database does not take a write")
            return False
        return True

    # --- /readyz --------------------------------------------------------------------------

    async def readiness(self) -> dict[str, str]:
        """One word per check: "ok" or what is wrong."""
        checks = {
            "upstream": "ok" if await self.upstream_reachable() else "unreachable",
            "poller": self._poller_state(),
            "outbox": await self._outbox_state(),
        }
        return checks

    async def upstream_reachable(self) -> bool:
        now = self.clock()
        answered, failed = self.client.last_answer_at, self.client.last_failure_at
        fresh = UPSTREAM_FRESH_SECONDS / self.time_scale
        if (
            answered is not None
            and now - answered <= fresh
            and (failed is None or failed < answered)
        ):
            return True
        every = PROBE_EVERY_SECONDS / self.time_scale
        if self._probed_at is not None and now - self._probed_at < every:
            return self._probe_ok
        if self._probe is None or self._probe.done():
            self._probe = asyncio.get_running_loop().create_task(self._ping(), name="ops-probe")
        # Shielded: a scraper that hangs up must not cancel the probe others wait for.
        return await asyncio.shield(self._probe)

    async def close(self) -> None:
        """Cancel a probe still in flight, before the client closes under it."""
        probe, self._probe = self._probe, None
        if probe is not None and not probe.done():
            probe.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await probe

    async def _ping(self) -> bool:
        try:
            await asyncio.wait_for(self.client.ping(), PROBE_TIMEOUT_SECONDS)
        except (DaisySimError, TimeoutError) as exc:
            logger.warning("readiness: the upstream does not answer (%s)", type(exc).__name__)
            ok = False
        else:
            ok = True
        self._probed_at, self._probe_ok = self.clock(), ok
        return ok

    def _poller_state(self) -> str:
        last = self.poller.last_tick_at
        if not self.poller.started or last is None:
            return "not started"
        if self.poller.clock() - last > POLLER_STALE_SECONDS:
            return "stalled"
        return "ok"

    async def _outbox_state(self) -> str:
        if not self.sender.running:
            return "not running"
        backlog = await self.repo.outbox.backlog(self.wall())
        if (
            backlog.oldest_due_at is None
            or self.wall() - backlog.oldest_due_at <= OUTBOX_STUCK_SECONDS
        ):
            return "ok"
        last = self.sender.last_attempt_at
        if last is None or self.sender.clock() - last > OUTBOX_STUCK_SECONDS:
            return "stuck"
        return "ok"


def add_ops_routes(web_app: web.Application, ops: Ops) -> None:
    """Mount GET /metrics, /healthz and /readyz on `web_app`."""

    async def metrics(_: web.Request) -> web.Response:
        body = await ops.render_metrics()
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def healthz(_: web.Request) -> web.Response:
        if await ops.database_writable():
            return web.json_response({"status": "ok"})
        return web.json_response({"status": "fail", "database": "not writable"}, status=503)

    async def readyz(_: web.Request) -> web.Response:
        checks = await ops.readiness()
        ready = all(value == "ok" for value in checks.values())
        body: Mapping[str, object] = {"status": "ok" if ready else "fail", **checks}
        return web.json_response(body, status=200 if ready else 503)

    handlers: dict[str, Callable[[web.Request], Awaitable[web.Response]]] = {
        "/metrics": metrics,
        "/healthz": healthz,
        "/readyz": readyz,
    }
    for path, handler in handlers.items():
        web_app.router.add_get(path, handler)


def parse_listen(listen: str) -> tuple[str, int]:
    """`host:port` (`[::1]:9100` for IPv6); ValueError otherwise."""
    host, sep, port = listen.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"not host:port: {listen!r}")
    return host.strip("[]"), int(port)


@dataclass(eq=False)
class OpsServer:
    """The three routes on an aiohttp server of their own (polling mode's `METRICS_LISTEN`)."""

    ops: Ops
    listen: str
    # More routes for the same server (the Crypto Pay webhook), added before `start`.
    extra_routes: list[Callable[[web.Application], None]] = field(default_factory=list)
    _runner: web.AppRunner | None = None
    _port: int | None = None

    @property
    def url(self) -> str:
        """Where it listens, with the port the system chose for `:0`."""
        host, _ = parse_listen(self.listen)
        if self._port is None:
            raise RuntimeError("the ops server is not running")
        shown = f"[{host}]" if ":" in host else host
        return f"http://{shown}:{self._port}"

    async def start(self) -> None:
        if self._runner is not None:
            return
        host, port = parse_listen(self.listen)
        web_app = web.Application()
        add_ops_routes(web_app, self.ops)
        for add in self.extra_routes:
            add(web_app)
        runner = web.AppRunner(web_app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self._port = int(runner.addresses[0][1])
        logger.info("metrics and health checks on %s", self.url)

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()
        self._port = None
