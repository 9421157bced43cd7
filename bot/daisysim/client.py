"""The DaisySim API client: one httpx.AsyncClient, typed answers, typed errors, rate limits
and a retry policy that can never buy a number twice.

Retry policy, per endpoint:

- reads (balance, countries, apps, check, check-all, history) are idempotent: retried on any
  transport error, on any 5xx (PROVIDER_ERROR, SERVER_ERROR, a gateway's HTML page) and on
  CONCURRENT_ERROR;
- cancel: retried only when the request was provably never sent (connect errors) and on
  CONCURRENT_ERROR (a definite "nothing happened, try again");
- purchase: the same two cases only. Anything else that leaves the outcome unknown (a read
  timeout, a dropped connection, a 5xx other than OUT_OF_STOCK, a success that cannot be
  read) raises PurchaseOutcomeUnknown and is never retried: the caller reconciles it through
  /history, because a blind retry after a timeout can buy two numbers.

429s are not retried here: the endpoint group is paused for the seconds the server named and
RateLimited goes to the caller. A rate-limited request whose outcome is unknown keeps its slot
for one more client timeout before its window starts: the server may still count it after we
stopped waiting (bot/daisysim/limiter.py).
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections.abc import AsyncIterator, Callable, Sequence
from decimal import Decimal
from enum import Enum
from types import TracebackType
from typing import Any, Self, TypeVar
from urllib.parse import quote

import httpx
from pydantic import SecretStr

from bot.daisysim.errors import (
    APIError,
    ConcurrentError,
    DaisySimError,
    MalformedResponse,
    OutOfStock,
    ProviderError,
    PurchaseOutcomeUnknown,
    RateLimited,
    ServerError,
    TransportError,
    error_from_envelope,
)
from bot.daisysim.limiter import Group, Outcome, RateLimiter, RateLimits
from bot.daisysim.models import (
    App,
    Balance,
    CancelResult,
    CheckResult,
    Country,
    HistoryPage,
    Order,
    Purchase,
    WireFormatError,
    parse_apps,
    parse_balance,
    parse_cancel,
    parse_check,
    parse_check_all,
    parse_countries,
    parse_history,
    parse_purchase,
)
from bot.metrics import Metrics

logger = logging.getLogger(__name__)

T = TypeVar("T")

MAX_CHECK_ALL_IDS = 20
# Raised before a single byte of the request left this process: always safe to retry.
_NEVER_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
_MAX_BACKOFF = 10.0


class _Policy(Enum):
    READ = "read"
    CANCEL = "cancel"
    PURCHASE = "purchase"


class _Retry(Exception):
    """Internal: this attempt failed in a way the policy retries."""

    def __init__(self, error: BaseException, *, immediate: bool = False) -> None:
        super().__init__(repr(error))
        self.error = error
        self.immediate = immediate


def _reject_constant(name: str) -> Any:
    raise ValueError(f"not a JSON number: {name}")


def _decode(response: httpx.Response) -> dict[str, Any]:
    """The JSON envelope of an answer, or MalformedResponse naming the HTTP status."""
    status = response.status_code
    try:
        # Decimal keeps 1.0830 exactly what the server wrote, so money never touches a float.
        body = json.loads(response.content, parse_float=Decimal, parse_constant=_reject_constant)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MalformedResponse(
            f"HTTP {status}: body is not JSON ({exc})", http_status=status
        ) from exc
    if not isinstance(body, dict) or not isinstance(body.get("success"), bool):
        raise MalformedResponse(
            f"HTTP {status}: JSON without a boolean 'success' envelope", http_status=status
        )
    return body


def _raise_for_envelope(response: httpx.Response, body: dict[str, Any]) -> Any:
    """The envelope's `data` on success; the typed APIError otherwise."""
    status = response.status_code
    if body["success"]:
        if not 200 <= status < 300:
            raise MalformedResponse(
                f"HTTP {status}: success envelope on an error status", http_status=status
            )
        if "data" not in body:
            raise MalformedResponse(f"HTTP {status}: success without data", http_status=status)
        return body["data"]
    code = body.get("code")
    message = body.get("error")
    data = body.get("data")
    raise error_from_envelope(
        status,
        code if isinstance(code, str) else "",
        message if isinstance(message, str) and message else f"HTTP {status} error",
        data if isinstance(data, dict) else None,
    )


class DaisySimClient:
    """Async client for one DaisySim account; create one per process and share it."""

    def __init__(
        self,
        base_url: str,
        api_key: str | SecretStr,
        *,
        timeout: float = 15.0,
        transport: httpx.AsyncBaseTransport | None = None,
        limits: RateLimits | None = None,
        max_retries: int = 3,
        retry_base_delay: float = 0.25,
        late_count: float | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        """`late_count`: how long after our `timeout` the server may still count a request we
        gave up on (default: one more `timeout`)."""
        if max_retries < 0:
            raise ValueError("max_retries must not be negative")
        key = api_key if isinstance(api_key, SecretStr) else SecretStr(api_key)
        if not key.get_secret_value():
            raise ValueError("api_key must not be empty")
        self.base_url = base_url.rstrip("/")
        self.limits = limits or RateLimits()
        self.limiter = RateLimiter(
            self.limits, late_count=timeout if late_count is None else late_count
        )
        self.max_retries = max_retries
        self.retry_base_delay = retry_base_delay
        self.metrics = metrics or Metrics()
        # Monotonic times of the last answer from the API itself (any status below 500: the
        # server is there and speaking) and of the last attempt that got none (a transport
        # error, a 5xx, a gateway's page): readiness judges the upstream by these first.
        self.last_answer_at: float | None = None
        self.last_failure_at: float | None = None
        self._random = random.Random()
        self._http = httpx.AsyncClient(
            base_url=self.base_url + "/",
            headers={
                "Authorization": f"Bearer {key.get_secret_value()}",
                "Accept": "application/json",
            },
            timeout=httpx.Timeout(timeout),
            transport=transport,
            # Redirects would resend a purchase POST elsewhere; the API never redirects.
            follow_redirects=False,
        )

    def __repr__(self) -> str:
        return f"DaisySimClient(base_url={self.base_url!r})"

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    # --- endpoints ------------------------------------------------------------------------

    async def balance(self) -> Balance:
        balance = await self._call("GET", "balance", parse_balance)
        self.metrics.upstream_balance.set(balance.balance_units / 10_000)
        return balance

    async def ping(self) -> Balance:
        """One `GET /balance`, never retried: is the upstream there? /balance is the cheapest
        call the API has and counts against no rate limit, so a health probe spends nothing
        that purchases, checks or cancels need."""
        balance = await self._attempt(
            "GET", "balance", parse_balance, None, None, None, _Policy.READ, retry=False
        )
        self.metrics.upstream_balance.set(balance.balance_units / 10_000)
        return balance

    async def countries(self) -> list[Country]:
        return await self._call("GET", "countries", parse_countries)

    async def apps(self, country: str) -> list[App]:
        return await self._call("GET", f"apps/{_segment(country)}", parse_apps)

    async def purchase(
        self,
        country: str,
        app: str,
        provider_id: str | None = None,
        *,
        app_name: str | None = None,
        country_name: str | None = None,
    ) -> Purchase:
        """Buy a number; `provider_id` pins a pool of an sb_* service (None: the cheapest).

        Raises the APIError of a definite rejection (OutOfStock, InsufficientBalance, ...),
        TransportError when no connection could ever be made, and PurchaseOutcomeUnknown when
        the number may or may not have been bought; nothing of the last kind is retried. A
        task cancelled while the request is in flight is in the same unknown state.
        """
        body: dict[str, str] = {"country": country, "app": app}
        if provider_id is not None:
            body["provider_id"] = provider_id
        if app_name is not None:
            body["app_name"] = app_name
        if country_name is not None:
            body["country_name"] = country_name
        return await self._call(
            "POST",
            "purchase",
            parse_purchase,
            json_body=body,
            group="purchase",
            policy=_Policy.PURCHASE,
        )

    async def check(self, activation_id: str) -> CheckResult:
        return await self._call(
            "GET", f"check/{_segment(activation_id)}", parse_check, group="check"
        )

    async def check_all(self, ids: Sequence[str]) -> list[CheckResult]:
        """Poll 1..20 activations in one request (one slot of the check budget)."""
        # A bare string is a Sequence[str] of characters; sending its letters is never meant.
        if isinstance(ids, str):
            raise ValueError("check_all takes a sequence of ids, not one string")
        id_list = list(ids)
        if not 1 <= len(id_list) <= MAX_CHECK_ALL_IDS:
            raise ValueError(f"check_all takes 1..{MAX_CHECK_ALL_IDS} ids, got {len(id_list)}")
        return await self._call(
            "POST", "check-all", parse_check_all, json_body={"ids": id_list}, group="check"
        )

    async def cancel(self, activation_id: str) -> CancelResult:
        """Cancel and refund; TooEarly inside the lock, CodeReceived (with the code) if late."""
        return await self._call(
            "POST",
            f"cancel/{_segment(activation_id)}",
            parse_cancel,
            group="cancel",
            policy=_Policy.CANCEL,
        )

    async def history(
        self, *, status: str | None = None, page: int = 1, per_page: int = 20
    ) -> HistoryPage:
        if page < 1 or per_page < 1:
            raise ValueError("page and per_page start at 1")
        params: dict[str, str | int] = {"page": page, "per_page": per_page}
        if status is not None:
            params["status"] = status
        return await self._call("GET", "history", parse_history, params=params)

    async def iter_history(
        self, *, status: str | None = None, per_page: int = 50, max_pages: int | None = None
    ) -> AsyncIterator[Order]:
        """Every order, newest first, each activation once: new purchases push older orders
        onto the next page while we read, which would otherwise yield them twice."""
        seen: set[str] = set()
        page = 1
        while max_pages is None or page <= max_pages:
            result = await self.history(status=status, page=page, per_page=per_page)
            for order in result.orders:
                if order.activation_id not in seen:
                    seen.add(order.activation_id)
                    yield order
            if not result.orders or result.current_page >= result.last_page:
                return
            page += 1

    # --- machinery ------------------------------------------------------------------------

    async def _call(
        self,
        method: str,
        path: str,
        parse: Callable[[Any], T],
        *,
        json_body: Any = None,
        params: dict[str, str | int] | None = None,
        group: Group | None = None,
        policy: _Policy = _Policy.READ,
    ) -> T:
        attempt = 0
        while True:
            try:
                return await self._attempt(method, path, parse, json_body, params, group, policy)
            except _Retry as retry:
                attempt += 1
                if attempt > self.max_retries:
                    raise self._exhausted(method, path, attempt, retry.error) from retry.error
                delay = self._backoff(attempt, immediate=retry.immediate)
                logger.warning(
                    "DaisySim %s /%s: %s; retry %d/%d in %.2fs",
                    method,
                    path,
                    _describe(retry.error),
                    attempt,
                    self.max_retries,
                    delay,
                )
                await asyncio.sleep(delay)

    async def _attempt(
        self,
        method: str,
        path: str,
        parse: Callable[[Any], T],
        json_body: Any,
        params: dict[str, str | int] | None,
        group: Group | None,
        policy: _Policy,
        *,
        retry: bool = True,
    ) -> T:
        endpoint = path.split("/", 1)[0]
        started = time.monotonic()
        try:
            try:
                return await self._attempt_once(
                    method, path, parse, json_body, params, group, policy
                )
            finally:
                self.metrics.upstream_seconds.labels(endpoint).observe(time.monotonic() - started)
        except _Retry as exc:
            self._count_error(endpoint, exc.error)
            if not retry:
                raise self._exhausted(method, path, 1, exc.error) from exc.error
            raise
        except Exception as exc:
            self._count_error(endpoint, exc)
            raise

    def _count_error(self, endpoint: str, exc: BaseException) -> None:
        cause = exc.__cause__ if isinstance(exc, PurchaseOutcomeUnknown | TransportError) else None
        error = cause if cause is not None else exc
        if isinstance(error, RateLimited):
            self.metrics.upstream_rate_limited.labels(endpoint).inc()
        name = "Transport" if isinstance(error, httpx.RequestError) else type(error).__name__
        self.metrics.upstream_errors.labels(endpoint, name).inc()

    async def _attempt_once(
        self,
        method: str,
        path: str,
        parse: Callable[[Any], T],
        json_body: Any,
        params: dict[str, str | int] | None,
        group: Group | None,
        policy: _Policy,
    ) -> T:
        try:
            if group is None:
                response = await self._send(method, path, json_body, params)
            else:
                response = await self._send_limited(group, method, path, json_body, params)
            data = _raise_for_envelope(response, _decode(response))
            try:
                return parse(data)
            except WireFormatError as exc:
                raise MalformedResponse(
                    f"HTTP {response.status_code}: {exc}", http_status=response.status_code
                ) from exc
        except httpx.RequestError as exc:
            raise self._classify_transport(exc, policy) from exc
        except RateLimited as exc:
            if group is not None:
                self.limiter[group].pause(exc.retry_after)
            raise
        except DaisySimError as exc:
            outcome = self._classify_answer(exc, policy)
            if outcome is exc:
                raise
            raise outcome from exc

    @staticmethod
    def _classify_transport(exc: httpx.RequestError, policy: _Policy) -> Exception:
        if isinstance(exc, _NEVER_SENT) or policy is _Policy.READ:
            return _Retry(exc)
        if policy is _Policy.PURCHASE:
            return _outcome_unknown(exc)
        return TransportError(f"cancel failed: {_describe(exc)}")

    @staticmethod
    def _classify_answer(exc: DaisySimError, policy: _Policy) -> Exception:
        if isinstance(exc, ConcurrentError):
            return _Retry(exc, immediate=True)
        status = exc.http_status or 0
        if policy is _Policy.READ:
            return _Retry(exc) if status >= 500 else exc
        if policy is _Policy.PURCHASE and not isinstance(exc, OutOfStock):
            # An error envelope below 500 is the server saying "not bought". Anything else,
            # including an unreadable answer of any status, may hide a completed purchase.
            ambiguous = (
                isinstance(exc, MalformedResponse | ServerError | ProviderError)
                or not isinstance(exc, APIError)
                or status >= 500
            )
            if ambiguous:
                return _outcome_unknown(exc)
        return exc

    def _exhausted(
        self, method: str, path: str, attempts: int, error: BaseException
    ) -> DaisySimError:
        if isinstance(error, DaisySimError):
            return error
        return TransportError(
            f"DaisySim {method} /{path} failed after {attempts} attempts: {_describe(error)}"
        )

    def _backoff(self, attempt: int, *, immediate: bool) -> float:
        if immediate:
            # CONCURRENT_ERROR says "retry immediately"; a little jitter keeps two of our own
            # callers from colliding again in lockstep.
            return self._random.uniform(0, self.retry_base_delay)
        ceiling = min(_MAX_BACKOFF, self.retry_base_delay * 2 ** (attempt - 1))
        return self._random.uniform(ceiling / 2, ceiling)

    async def _send_limited(
        self,
        group: Group,
        method: str,
        path: str,
        json_body: Any,
        params: dict[str, str | int] | None,
    ) -> httpx.Response:
        limiter = self.limiter[group]
        await limiter.acquire()
        # Anything but an answer or a connection never made (a timeout, a dropped connection,
        # a cancelled task, a gateway's page) leaves the server free to count it later.
        outcome: Outcome = "unknown"
        try:
            response = await self._send(method, path, json_body, params)
            if not _from_a_gateway(response):
                outcome = "answered"
            return response
        except _NEVER_SENT:
            outcome = "never_sent"
            raise
        finally:
            limiter.release(outcome)

    async def _send(
        self, method: str, path: str, json_body: Any, params: dict[str, str | int] | None
    ) -> httpx.Response:
        started = time.monotonic()
        try:
            response = await self._http.request(method, path, json=json_body, params=params)
        except httpx.RequestError as exc:
            self.last_failure_at = time.monotonic()
            logger.debug(
                "DaisySim %s /%s failed after %.3fs: %s",
                method,
                path,
                time.monotonic() - started,
                _describe(exc),
            )
            raise
        if response.status_code < 500:
            self.last_answer_at = time.monotonic()
        else:
            self.last_failure_at = time.monotonic()
        logger.debug(
            "DaisySim %s /%s -> %d in %.3fs",
            method,
            path,
            response.status_code,
            time.monotonic() - started,
        )
        return response


def _from_a_gateway(response: httpx.Response) -> bool:
    """A proxy's 502/504 page: it gave up waiting for the server, which may still be working
    on the request. The API itself answers its errors in a JSON envelope."""
    if response.status_code not in (502, 504):
        return False
    try:
        _decode(response)
    except MalformedResponse:
        return True
    return False


def _outcome_unknown(cause: BaseException) -> PurchaseOutcomeUnknown:
    # Worth a warning even though the caller handles it: it costs a reconciliation.
    logger.warning("DaisySim purchase outcome unknown (not retried): %s", _describe(cause))
    return PurchaseOutcomeUnknown(f"purchase outcome unknown: {_describe(cause)}", cause=cause)


def _segment(value: str) -> str:
    """One URL path segment: an id like "../x" must not walk to another endpoint."""
    if not value:
        raise ValueError("an empty id or country")
    return quote(value, safe="")


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
