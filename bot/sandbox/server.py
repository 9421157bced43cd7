"""The sandbox over HTTP (aiohttp.web): the DaisySim API, the control API and the runners.

Every request to the API goes through one middleware that applies armed faults, turns every
exception into the error envelope (never a traceback page) and writes the request log.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any, Final, Self

from aiohttp import web
from aiohttp.typedefs import Handler

from bot.sandbox.control import SandboxControl
from bot.sandbox.state import (
    ACCOUNT_STATUSES,
    DEFAULT_RATE_LIMITS,
    ENDPOINTS,
    ORDER_STATUSES,
    Account,
    Fault,
    SandboxConfig,
    SandboxError,
    SandboxState,
    parse_fault,
    validation_error,
)
from bot.sandbox.wire import dumps

logger = logging.getLogger(__name__)

API_PREFIX: Final = "/api/v1/server7"
CONTROL_PREFIX: Final = "/_control"
DEFAULT_PER_PAGE: Final = 20
MAX_PER_PAGE: Final = 100

_STATE_KEY: Final = web.AppKey("sandbox_state", SandboxState)
_STOPPING_KEY: Final = web.AppKey("sandbox_stopping", asyncio.Event)
# Where a response keeps its error code for the request log (StreamResponse is a mapping).
_CODE_SLOT: Final = web.ResponseKey("sandbox_code", str)


def _json_response(payload: object, status: int = 200) -> web.Response:
    return web.Response(
        text=dumps(payload), status=status, content_type="application/json", charset="utf-8"
    )


def _ok(data: object, message: str = "OK") -> web.Response:
    return _json_response({"success": True, "message": message, "data": data})


def _error(err: SandboxError) -> web.Response:
    payload: dict[str, object] = {"success": False, "error": err.message, "code": err.code}
    if err.data is not None:
        payload["data"] = err.data
    response = _json_response(payload, err.http_status)
    response[_CODE_SLOT] = err.code
    return response


def _http_exception_error(exc: web.HTTPException) -> SandboxError:
    if exc.status == 404:
        return SandboxError(404, "NOT_FOUND", "Endpoint not found.")
    if exc.status == 405:
        return SandboxError(405, "METHOD_NOT_ALLOWED", "Method not allowed.")
    if exc.status == 413:
        return SandboxError(413, "VALIDATION_ERROR", "The request body is too large.")
    return SandboxError(exc.status, "HTTP_ERROR", exc.reason)


def bearer_key(request: web.Request) -> str | None:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


async def _json_object(request: web.Request) -> dict[str, Any]:
    raw = await request.read()
    if not raw.strip():
        return {}
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError):
        raise validation_error("The request body is not valid JSON.") from None
    if not isinstance(value, dict):
        raise validation_error("The request body must be a JSON object.")
    return value


def _endpoint_of(request: web.Request) -> str | None:
    resource = request.match_info.route.resource
    name = resource.name if resource is not None else None
    return name if name in ENDPOINTS else None


async def _guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Run a handler; whatever it raises becomes an envelope."""
    try:
        return await handler(request)
    except SandboxError as err:
        return _error(err)
    except web.HTTPException as exc:
        return _error(_http_exception_error(exc))
    except Exception:
        logger.exception("sandbox handler failed on %s %s", request.method, request.path)
        return _error(SandboxError(500, "SERVER_ERROR", "Internal server error."))


async def _pause(request: web.Request, seconds: float) -> None:
    # Waits on the stop event so that shutting down never hangs on an armed delay.
    stopping = request.app[_STOPPING_KEY]
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stopping.wait(), timeout=seconds)


def _drop(request: web.Request) -> web.Response:
    # Closing the transport before anything is written makes the client see a connection
    # closed without an answer; the response returned below is never sent.
    transport = request.transport
    if transport is not None:
        transport.close()
    return web.Response(status=499)


def _malformed(response: web.StreamResponse, variant: str) -> web.Response:
    if variant == "truncated":
        body = response.body if isinstance(response, web.Response) else None
        raw = body if isinstance(body, bytes) else b'{"success": true, "message": "OK", "data": {'
        return web.Response(body=raw[: max(1, len(raw) // 2)], content_type="application/json")
    if variant == "wrong_shape":
        return _json_response({"success": True, "message": "OK", "data": {"unexpected": [1, 2, 3]}})
    return web.Response(
        text="<html><body><h1>502 Bad Gateway</h1></body></html>", content_type="text/html"
    )


@web.middleware
async def _api_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.path.startswith(CONTROL_PREFIX):
        return await _guard(request, handler)

    state = request.app[_STATE_KEY]
    endpoint = _endpoint_of(request)
    key = bearer_key(request)
    entry: dict[str, object] = {
        "time": time.time(),
        "clock": state.clock.now(),
        "key": key,
        "method": request.method,
        "path": request.path,
        "endpoint": endpoint,
        "status": None,
        "code": None,
        "fault": None,
    }
    fault: Fault | None = None
    if endpoint is not None:
        state.request_counts[endpoint] += 1
        fault = state.take_fault(endpoint, key)
        if fault is not None:
            entry["fault"] = fault.kind
            logger.debug("sandbox fault %s on %s", fault.kind, endpoint)

    response: web.StreamResponse | None = None
    if fault is not None:
        if fault.kind == "drop_before":
            state.record(entry)
            return _drop(request)
        if fault.kind == "delay_before":
            await _pause(request, fault.delay)
        elif fault.kind == "error":
            response = _error(fault.error())
    if response is None:
        response = await _guard(request, handler)
    if fault is not None:
        if fault.kind == "drop_after":
            state.record(entry)
            return _drop(request)
        if fault.kind == "delay_after":
            await _pause(request, fault.delay)
        elif fault.kind == "malformed":
            response = _malformed(response, fault.variant)

    entry["status"] = response.status
    entry["code"] = response.get(_CODE_SLOT)
    state.record(entry)
    return response


# ------------------------------------------------------------------------------- the API


def _authorised(request: web.Request, endpoint: str) -> tuple[SandboxState, Account]:
    state = request.app[_STATE_KEY]
    state.tick()
    account = state.authenticate(bearer_key(request))
    state.consume_rate_limit(account, endpoint)
    return state, account


async def _balance(request: web.Request) -> web.Response:
    state, account = _authorised(request, "balance")
    return _ok(state.balance(account))


async def _countries(request: web.Request) -> web.Response:
    state, _ = _authorised(request, "countries")
    return _ok(state.countries())


async def _apps(request: web.Request) -> web.Response:
    state, _ = _authorised(request, "apps")
    return _ok(state.apps(request.match_info["country"]))


async def _purchase(request: web.Request) -> web.Response:
    state, account = _authorised(request, "purchase")
    body = await _json_object(request)
    return _ok(state.purchase(account, body), "Number purchased successfully.")


async def _check(request: web.Request) -> web.Response:
    state, account = _authorised(request, "check")
    return _ok(state.check(account, request.match_info["activation_id"]))


async def _check_all(request: web.Request) -> web.Response:
    state, account = _authorised(request, "check-all")
    body = await _json_object(request)
    return _ok(state.check_all(account, body))


async def _cancel(request: web.Request) -> web.Response:
    state, account = _authorised(request, "cancel")
    answer = state.cancel(account, request.match_info["activation_id"])
    return _ok(answer, "Activation cancelled and refunded.")


def _int_query(request: web.Request, name: str, default: int) -> int:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise validation_error(f"The {name} field must be an integer.") from None
    if value < 1:
        raise validation_error(f"The {name} field must be at least 1.")
    return value


async def _history(request: web.Request) -> web.Response:
    state, account = _authorised(request, "history")
    raw_status = request.query.get("status") or None
    status: str | None = None
    if raw_status is not None:
        status = next((s for s in ORDER_STATUSES if s.lower() == raw_status.lower()), None)
        if status is None:
            raise validation_error(f"The status must be one of {', '.join(ORDER_STATUSES)}.")
    page = _int_query(request, "page", 1)
    per_page = min(_int_query(request, "per_page", DEFAULT_PER_PAGE), MAX_PER_PAGE)
    return _ok(state.history(account, status, page, per_page))


# ------------------------------------------------------------------------ the control API


def _control_state(request: web.Request) -> SandboxState:
    state = request.app[_STATE_KEY]
    state.tick()
    return state


def _opt_int(body: dict[str, Any], name: str, *, minimum: int = 0) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise validation_error(f"{name} must be an integer >= {minimum}")
    return value


def _req_str(body: dict[str, Any], name: str) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value:
        raise validation_error(f"{name} must be a non-empty string")
    return value


async def _control_reset(request: web.Request) -> web.Response:
    request.app[_STATE_KEY].reset()
    return _ok({})


async def _control_set_account(request: web.Request) -> web.Response:
    state = _control_state(request)
    body = await _json_object(request)
    key = _req_str(body, "key")
    balance_units = _opt_int(body, "balance_units")
    status = body.get("status")
    if status is not None and status not in ACCOUNT_STATUSES:
        raise validation_error(f"status must be one of {', '.join(ACCOUNT_STATUSES)}")
    account = state.set_account(key, balance_units, status)
    return _ok(state.account_view(account))


async def _control_get_account(request: web.Request) -> web.Response:
    state = _control_state(request)
    key = request.query.get("key", "")
    account = state.accounts.get(key)
    if account is None:
        raise SandboxError(404, "NOT_FOUND", "No such account (it opens on its first request).")
    return _ok(state.account_view(account))


async def _control_get_stock(request: web.Request) -> web.Response:
    return _ok(_control_state(request).stock_view())


async def _control_set_stock(request: web.Request) -> web.Response:
    state = _control_state(request)
    body = await _json_object(request)
    app = _req_str(body, "app")
    provider_id = body.get("provider_id")
    if provider_id is not None and not isinstance(provider_id, str):
        raise validation_error("provider_id must be a string or null")
    pool = state.set_stock(
        app, provider_id, _opt_int(body, "count"), _opt_int(body, "price_units", minimum=1)
    )
    return _ok(
        {
            "app": app,
            "provider_id": pool.provider_id,
            "count": pool.count,
            "price_units": pool.price_units,
        }
    )


async def _control_deliver(request: web.Request) -> web.Response:
    state = _control_state(request)
    body = await _json_object(request)
    activation_id = _req_str(body, "activation_id")
    code = body.get("code")
    if code is not None and (not isinstance(code, str) or not code):
        raise validation_error("code must be a non-empty string or null")
    order = state.deliver_code(activation_id, code)
    return _ok(state.order_view(order))


async def _control_add_fault(request: web.Request) -> web.Response:
    state = _control_state(request)
    fault = state.add_fault(parse_fault(await _json_object(request)))
    return _ok(fault.view())


async def _control_list_faults(request: web.Request) -> web.Response:
    return _ok([f.view() for f in _control_state(request).faults])


async def _control_clear_faults(request: web.Request) -> web.Response:
    _control_state(request).faults.clear()
    return _ok({})


async def _control_log(request: web.Request) -> web.Response:
    state = _control_state(request)
    after = request.query.get("after", "0")
    try:
        after_seq = int(after)
    except ValueError:
        raise validation_error("after must be an integer") from None
    entries = [e for e in state.request_log if isinstance(e["seq"], int) and e["seq"] > after_seq]
    return _ok(entries)


async def _control_stats(request: web.Request) -> web.Response:
    state = _control_state(request)
    return _ok(
        {
            "requests": {e: state.request_counts[e] for e in ENDPOINTS},
            "rate_limited": {
                "total": sum(state.rate_limited_counts.values()),
                "by_endpoint": {e: state.rate_limited_counts[e] for e in ENDPOINTS},
            },
            "clock": state.clock.now(),
            "time_scale": state.clock.scale,
        }
    )


async def _control_clock(request: web.Request) -> web.Response:
    state = request.app[_STATE_KEY]
    if request.method == "POST":
        body = await _json_object(request)
        advance = body.get("advance")
        if (
            not isinstance(advance, int | float)
            or isinstance(advance, bool)
            or not 0 <= advance < math.inf
        ):
            raise validation_error("advance must be a non-negative number of upstream seconds")
        state.clock.advance(float(advance))
    state.tick()
    return _ok({"now": state.clock.now(), "time_scale": state.clock.scale})


def build_app(state: SandboxState, stopping: asyncio.Event) -> web.Application:
    app = web.Application(middlewares=[_api_middleware])
    app[_STATE_KEY] = state
    app[_STOPPING_KEY] = stopping
    p = API_PREFIX
    app.router.add_get(f"{p}/balance", _balance, name="balance")
    app.router.add_get(f"{p}/countries", _countries, name="countries")
    app.router.add_get(f"{p}/apps/{{country}}", _apps, name="apps")
    app.router.add_post(f"{p}/purchase", _purchase, name="purchase")
    app.router.add_get(f"{p}/check/{{activation_id}}", _check, name="check")
    app.router.add_post(f"{p}/check-all", _check_all, name="check-all")
    app.router.add_post(f"{p}/cancel/{{activation_id}}", _cancel, name="cancel")
    app.router.add_get(f"{p}/history", _history, name="history")

    c = CONTROL_PREFIX
    app.router.add_post(f"{c}/reset", _control_reset)
    app.router.add_post(f"{c}/accounts", _control_set_account)
    app.router.add_get(f"{c}/accounts", _control_get_account)
    app.router.add_get(f"{c}/stock", _control_get_stock)
    app.router.add_post(f"{c}/stock", _control_set_stock)
    app.router.add_post(f"{c}/codes", _control_deliver)
    app.router.add_get(f"{c}/faults", _control_list_faults)
    app.router.add_post(f"{c}/faults", _control_add_fault)
    app.router.add_delete(f"{c}/faults", _control_clear_faults)
    app.router.add_get(f"{c}/log", _control_log)
    app.router.add_get(f"{c}/stats", _control_stats)
    app.router.add_get(f"{c}/clock", _control_clock)
    app.router.add_post(f"{c}/clock", _control_clock)
    return app


# ---------------------------------------------------------------------------- the runners


class Sandbox:
    """A DaisySim sandbox on a loopback port, for tests, benchmarks and the keyless bot.

    `async with Sandbox(time_scale=60) as sb:` then point a client at `sb.base_url` and drive
    the world through `sb.control`. Durations (`activation_lifetime`, `cancel_lock_seconds`,
    `check_cache_seconds`) are upstream seconds; `auto_code_after` is (min, max) real seconds.
    """

    def __init__(
        self,
        time_scale: float = 1.0,
        keys: list[str] | None = None,
        start_balance_units: int = 500_000,
        auto_code_after: tuple[float, float] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        auto_code_probability: float = 1.0,
        activation_lifetime: float = 1200.0,
        cancel_lock_seconds: float = 180.0,
        check_cache_seconds: float = 15.0,
        single_pool_stock: int = 1000,
        rate_limits: dict[str, tuple[int, float]] | None = None,
        seed: int | None = None,
    ) -> None:
        limits = dict(DEFAULT_RATE_LIMITS)
        limits.update(rate_limits or {})
        self.config = SandboxConfig(
            time_scale=time_scale,
            keys=frozenset(keys) if keys is not None else None,
            start_balance_units=start_balance_units,
            auto_code_after=auto_code_after,
            auto_code_probability=auto_code_probability,
            activation_lifetime=activation_lifetime,
            cancel_lock=cancel_lock_seconds,
            check_cache_ttl=check_cache_seconds,
            single_pool_stock=single_pool_stock,
            rate_limits=limits,
            seed=seed,
        )
        self.host = host
        self._requested_port = port
        self.port = 0
        # In-process access for inspection; tests should prefer `control` (the same HTTP path
        # a benchmark in another process uses).
        self.state = SandboxState(self.config)
        self._runner: web.AppRunner | None = None
        self._stopping: asyncio.Event | None = None
        self._control: SandboxControl | None = None

    @property
    def root_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def base_url(self) -> str:
        return f"{self.root_url}{API_PREFIX}"

    @property
    def control(self) -> SandboxControl:
        if self._control is None:
            raise RuntimeError("the sandbox is not started")
        return self._control

    async def start(self) -> None:
        if self._runner is not None:
            return
        self._stopping = asyncio.Event()
        app = build_app(self.state, self._stopping)
        # access_log=None: the request log in the control API replaces it, and tests stay quiet.
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        try:
            site = web.TCPSite(runner, self.host, self._requested_port)
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        address = runner.addresses[0]
        self.port = int(address[1])
        self._control = SandboxControl(self.root_url)
        logger.info("DaisySim sandbox listening on %s", self.base_url)

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is None:
            return
        if self._stopping is not None:
            self._stopping.set()
        if self._control is not None:
            await self._control.aclose()
            self._control = None
        await runner.cleanup()
        logger.info("DaisySim sandbox stopped")

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()


def _announce(sandbox: Sandbox) -> None:
    print(
        f"DaisySim sandbox is running (time scale {sandbox.config.time_scale:g}).\n"
        f"  DAISYSIM_BASE_URL={sandbox.base_url}\n"
        f"  control API:      {sandbox.root_url}{CONTROL_PREFIX}\n"
        "Press Ctrl-C to stop.",
        flush=True,
    )


async def serve(
    host: str,
    port: int,
    *,
    time_scale: float,
    keys: list[str] | None,
    start_balance_units: int,
    auto_code_after: tuple[float, float] | None,
    auto_code_probability: float = 1.0,
    seed: int | None = None,
    on_ready: Callable[[Sandbox], None] | None = _announce,
) -> None:
    """Run a sandbox until cancelled; `on_ready` gets it once it listens (default: print URLs)."""
    async with Sandbox(
        time_scale=time_scale,
        keys=keys,
        start_balance_units=start_balance_units,
        auto_code_after=auto_code_after,
        host=host,
        port=port,
        auto_code_probability=auto_code_probability,
        seed=seed,
    ) as sandbox:
        if on_ready is not None:
            on_ready(sandbox)
        await asyncio.get_running_loop().create_future()
