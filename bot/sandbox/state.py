"""The sandbox's world: accounts, stock, orders, rate limits, the check cache, faults, the clock.

Everything here is synchronous and runs on the event loop thread, so each operation is atomic
with respect to other requests; the HTTP layer (`server.py`) only parses, calls and renders.

Time: every duration the upstream defines (rate-limit windows, the 15 s cache, the 180 s cancel
lock, the activation lifetime) is kept in *upstream* seconds on a clock that runs `time_scale`
times faster than real time. Every number of seconds the server *prints* is the real seconds a
client must wait, so a client that obeys the messages behaves correctly under any scale.

Orders change on their own (a code arrives, the lifetime runs out). Those changes are events on
a heap and are applied lazily, in time order, by `tick()` at the start of every request; the
observable result is the same as a background task's, and it stays exact when the clock is
advanced through the control API.
"""

from __future__ import annotations

import hashlib
import heapq
import itertools
import math
import random
import re
import time
from collections import Counter, deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Literal, cast

from bot.sandbox.catalogue import Pool, Service, default_catalogue
from bot.sandbox.wire import Usd

WAITING: Final = "Waiting"
COMPLETED: Final = "Completed"
CANCELLED: Final = "Cancelled"
EXPIRED: Final = "Expired"
ORDER_STATUSES: Final = (WAITING, COMPLETED, CANCELLED, EXPIRED)

ENDPOINTS: Final = (
    "balance",
    "countries",
    "apps",
    "purchase",
    "check",
    "check-all",
    "cancel",
    "history",
)
# Which rate-limit bucket an endpoint draws from; check-all shares the check budget (PRODUCT §10).
LIMIT_BUCKET: Final[Mapping[str, str]] = {
    "purchase": "purchase",
    "check": "check",
    "check-all": "check",
    "cancel": "cancel",
}
DEFAULT_RATE_LIMITS: Final[Mapping[str, tuple[int, float]]] = {
    "purchase": (10, 60.0),
    "check": (60, 60.0),
    "cancel": (10, 60.0),
}

AccountStatus = Literal["active", "suspended", "locked"]
ACCOUNT_STATUSES: Final = ("active", "suspended", "locked")
FaultKind = Literal[
    "error", "drop_before", "drop_after", "delay_before", "delay_after", "malformed"
]
FAULT_KINDS: Final = (
    "error",
    "drop_before",
    "drop_after",
    "delay_before",
    "delay_after",
    "malformed",
)
MALFORMED_VARIANTS: Final = ("not_json", "truncated", "wrong_shape")

# The HTTP status of every code in the reference's error table, plus the validation error.
ERROR_STATUS: Final[Mapping[str, int]] = {
    "UNAUTHENTICATED": 401,
    "ACCOUNT_SUSPENDED": 403,
    "ACCOUNT_LOCKED": 403,
    "NOT_FOUND": 404,
    "CONCURRENT_ERROR": 409,
    "PRICE_VERIFICATION_FAILED": 422,
    "CODE_RECEIVED": 422,
    "TOO_EARLY": 422,
    "INVALID_COUNTRY": 422,
    "VALIDATION_ERROR": 422,
    "INSUFFICIENT_BALANCE": 400,
    "RATE_LIMITED": 429,
    "OUT_OF_STOCK": 503,
    "PROVIDER_ERROR": 502,
    "SERVER_ERROR": 500,
}
_MESSAGES: Final[Mapping[str, str]] = {
    "UNAUTHENTICATED": "Unauthenticated.",
    "ACCOUNT_SUSPENDED": "Your account has been suspended.",
    "ACCOUNT_LOCKED": "Your account is temporarily locked. Please try again later.",
    "NOT_FOUND": "Activation not found.",
    "CONCURRENT_ERROR": "Concurrent transaction detected. Please retry.",
    "PRICE_VERIFICATION_FAILED": (
        "Service price could not be verified. Please refresh the service list and try again."
    ),
    "CODE_RECEIVED": "Code already received. Cannot cancel.",
    "INVALID_COUNTRY": "Country not supported. Use a country id from /countries.",
    "VALIDATION_ERROR": "The given data was invalid.",
    "INSUFFICIENT_BALANCE": "Insufficient wallet balance.",
    "OUT_OF_STOCK": "No numbers available right now. Please try again shortly.",
    "PROVIDER_ERROR": "Upstream provider error. Please try again in a few seconds.",
    "SERVER_ERROR": "Internal server error.",
}
_LIMIT_NOUN: Final[Mapping[str, str]] = {
    "purchase": "purchase",
    "check": "check",
    "cancel": "cancel",
}
_NUMERIC_ID = re.compile(r"[0-9]+")
FIRST_ACTIVATION_ID: Final = 32886
MAX_TEXT_FIELD: Final = 255
MAX_CHECK_ALL_IDS: Final = 20


class SandboxError(Exception):
    """An answer in the error envelope: HTTP status, machine code, human message, maybe data."""

    def __init__(
        self, http_status: int, code: str, message: str, data: dict[str, object] | None = None
    ) -> None:
        super().__init__(message)
        self.http_status = http_status
        self.code = code
        self.message = message
        self.data = data


def api_error(
    code: str, message: str | None = None, data: dict[str, object] | None = None
) -> SandboxError:
    return SandboxError(ERROR_STATUS[code], code, message or _MESSAGES[code], data)


def validation_error(message: str) -> SandboxError:
    return SandboxError(422, "VALIDATION_ERROR", message)


def too_early_message(seconds: int) -> str:
    return f"Cancellation not yet allowed. Please wait {seconds} more second(s)."


def rate_limited_message(endpoint: str | None, seconds: int) -> str:
    noun = _LIMIT_NOUN.get(LIMIT_BUCKET.get(endpoint or "", ""))
    if noun is None:
        return f"Too many requests. Please wait {seconds}s."
    return f"Too many {noun} attempts. Please wait {seconds}s."


@dataclass(frozen=True, slots=True)
class SandboxConfig:
    """Everything that shapes the sandbox; durations are upstream seconds unless named real."""

    time_scale: float = 1.0
    keys: frozenset[str] | None = None
    start_balance_units: int = 500_000
    # Real seconds (min, max) after purchase at which a code arrives by itself; None: never.
    auto_code_after: tuple[float, float] | None = None
    auto_code_probability: float = 1.0
    activation_lifetime: float = 1200.0
    cancel_lock: float = 180.0
    check_cache_ttl: float = 15.0
    single_pool_stock: int = 1000
    rate_limits: Mapping[str, tuple[int, float]] = field(
        default_factory=lambda: dict(DEFAULT_RATE_LIMITS)
    )
    seed: int | None = None
    log_limit: int = 10_000

    def __post_init__(self) -> None:
        if not self.time_scale > 0:
            raise ValueError("time_scale must be positive")
        if self.start_balance_units < 0:
            raise ValueError("start_balance_units must not be negative")
        if self.auto_code_after is not None:
            low, high = self.auto_code_after
            if low < 0 or high < low:
                raise ValueError("auto_code_after must be (min, max) with 0 <= min <= max")
        if not 0.0 <= self.auto_code_probability <= 1.0:
            raise ValueError("auto_code_probability must be within [0, 1]")
        if self.activation_lifetime <= 0 or self.cancel_lock < 0 or self.check_cache_ttl < 0:
            raise ValueError("durations must not be negative (and the lifetime must be positive)")
        if self.single_pool_stock < 0:
            raise ValueError("single_pool_stock must not be negative")
        for bucket, (limit, window) in self.rate_limits.items():
            if bucket not in DEFAULT_RATE_LIMITS or limit < 1 or window <= 0:
                raise ValueError(f"bad rate limit for {bucket!r}")


class Clock:
    """Upstream seconds since start: real elapsed time × scale, plus any control-API advance."""

    def __init__(self, scale: float) -> None:
        self.scale = scale
        self._t0 = time.monotonic()
        self._offset = 0.0

    def now(self) -> float:
        return (time.monotonic() - self._t0) * self.scale + self._offset

    def advance(self, upstream_seconds: float) -> None:
        self._offset += upstream_seconds

    def restart(self) -> None:
        self._t0 = time.monotonic()
        self._offset = 0.0

    def real_seconds(self, upstream_seconds: float) -> int:
        """Whole real seconds a client must wait for `upstream_seconds` to pass; at least 1."""
        # The epsilon keeps 43.000000001 (float noise) from becoming 44.
        return max(1, math.ceil(upstream_seconds / self.scale - 1e-9))


@dataclass(slots=True)
class Account:
    key: str
    email: str
    balance_units: int
    status: AccountStatus = "active"
    debits_units: int = 0
    refunds_units: int = 0
    order_ids: list[str] = field(default_factory=list)
    # Upstream times of the requests that counted, per rate-limit bucket (sliding windows).
    windows: dict[str, deque[float]] = field(default_factory=dict)


@dataclass(slots=True, eq=False)
class Order:
    activation_id: str
    key: str
    phone_number: str
    service: str
    app: str
    pool: Pool
    country: str
    amount_units: int
    created_at: float
    created_wall: datetime
    expires_at: float
    code_due: float | None = None
    status: str = WAITING
    code: str | None = None
    completed_wall: datetime | None = None
    refund_units: int = 0
    ended_at: float | None = None


@dataclass(slots=True)
class Fault:
    fault_id: int
    endpoint: str
    kind: FaultKind
    remaining: int
    key: str | None = None
    code: str | None = None
    http_status: int | None = None
    message: str | None = None
    seconds: int | None = None
    delay: float = 0.0
    variant: str = "not_json"

    def error(self) -> SandboxError:
        """The envelope an `error` fault answers with."""
        code = self.code or "SERVER_ERROR"
        status = self.http_status or ERROR_STATUS.get(code, 500)
        message = self.message
        if message is None:
            if code == "RATE_LIMITED":
                message = rate_limited_message(self.endpoint, self.seconds or 1)
            elif code == "TOO_EARLY":
                message = too_early_message(self.seconds or 1)
            else:
                message = _MESSAGES.get(code, "Error.")
        return SandboxError(status, code, message)

    def view(self) -> dict[str, object]:
        return {
            "fault_id": self.fault_id,
            "endpoint": self.endpoint,
            "kind": self.kind,
            "remaining": self.remaining,
            "key": self.key,
            "code": self.code,
            "http_status": self.http_status,
            "message": self.message,
            "seconds": self.seconds,
            "delay": self.delay,
            "variant": self.variant,
        }


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).replace(microsecond=0).isoformat()


def _email_for(key: str) -> str:
    # Derived, not the key itself: the email is printed in the bot's admin panel and logs.
    return f"sandbox-{hashlib.sha256(key.encode()).hexdigest()[:10]}@sandbox.local"


class SandboxState:
    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        self.clock = Clock(config.time_scale)
        self._rng = random.Random(config.seed)
        self.reset()

    # ----------------------------------------------------------------------------- lifecycle

    def reset(self) -> None:
        """Back to a freshly started server (the configuration stays)."""
        self.clock.restart()
        if self.config.seed is not None:
            self._rng.seed(self.config.seed)
        self.catalogue: dict[str, Service] = default_catalogue(self.config.single_pool_stock)
        self.accounts: dict[str, Account] = {}
        self.allowed_keys: set[str] | None = (
            set(self.config.keys) if self.config.keys is not None else None
        )
        self.orders: dict[str, Order] = {}
        self._next_id = FIRST_ACTIVATION_ID
        self._phones: set[str] = set()
        self._events: list[tuple[float, int, str]] = []
        self._event_seq = itertools.count()
        self._check_cache: dict[str, float] = {}
        self.faults: list[Fault] = []
        self._fault_ids = itertools.count(1)
        self.request_log: deque[dict[str, object]] = deque(maxlen=self.config.log_limit)
        self._log_seq = itertools.count(1)
        self.request_counts: Counter[str] = Counter()
        self.rate_limited_counts: Counter[str] = Counter()

    def tick(self) -> None:
        """Apply every code arrival and expiry that is due, in the order they happened."""
        now = self.clock.now()
        while self._events and self._events[0][0] <= now:
            moment, _, activation_id = heapq.heappop(self._events)
            order = self.orders.get(activation_id)
            if order is None or order.status != WAITING:
                continue
            if (
                order.code_due is not None
                and order.code_due <= moment
                and order.code_due < order.expires_at
            ):
                self._complete(order, self._random_code(), self._wall_at(order, order.code_due))
            elif order.expires_at <= moment:
                self._end(order, EXPIRED, order.expires_at)

    # ---------------------------------------------------------------------------------- auth

    def authenticate(self, key: str | None) -> Account:
        if not key or (self.allowed_keys is not None and key not in self.allowed_keys):
            raise api_error("UNAUTHENTICATED")
        account = self.accounts.get(key)
        if account is None:
            account = self._open_account(key, self.config.start_balance_units)
        if account.status == "suspended":
            raise api_error("ACCOUNT_SUSPENDED")
        if account.status == "locked":
            raise api_error("ACCOUNT_LOCKED")
        return account

    def _open_account(self, key: str, balance_units: int) -> Account:
        account = Account(key=key, email=_email_for(key), balance_units=balance_units)
        self.accounts[key] = account
        return account

    def consume_rate_limit(self, account: Account, endpoint: str) -> None:
        """Count one request against its bucket, or refuse it (refused requests do not count)."""
        bucket = LIMIT_BUCKET.get(endpoint)
        if bucket is None:
            return
        limit, window = self.config.rate_limits.get(bucket, DEFAULT_RATE_LIMITS[bucket])
        now = self.clock.now()
        hits = account.windows.setdefault(bucket, deque())
        while hits and hits[0] <= now - window:
            hits.popleft()
        if len(hits) >= limit:
            # The slot frees when the oldest counted request leaves the window.
            wait = self.clock.real_seconds(hits[0] + window - now)
            raise api_error("RATE_LIMITED", rate_limited_message(endpoint, wait))
        hits.append(now)

    # ---------------------------------------------------------------------------- endpoints

    def balance(self, account: Account) -> dict[str, object]:
        return {"balance": Usd(account.balance_units), "currency": "USD", "email": account.email}

    @staticmethod
    def countries() -> dict[str, object]:
        return {"countries": [{"id": "USA", "name": "USA"}]}

    def apps(self, country: str) -> list[dict[str, object]]:
        self._check_country(country)
        answer: list[dict[str, object]] = []
        for service in self.catalogue.values():
            providers: list[dict[str, object]] = []
            if service.multi_pool:
                providers = [
                    {"provider_id": p.provider_id, "price": Usd(p.price_units), "count": p.count}
                    for p in service.sorted_pools()
                ]
            answer.append(
                {
                    "code": service.code,
                    "name": service.name,
                    "price": Usd(service.listed_price_units()),
                    "providers": providers,
                }
            )
        return answer

    def purchase(self, account: Account, body: Mapping[str, object]) -> dict[str, object]:
        country = _required_str(body, "country")
        app = _required_str(body, "app")
        provider_id = _optional_str(body, "provider_id")
        app_name = _optional_str(body, "app_name")
        country_name = _optional_str(body, "country_name")
        self._check_country(country)
        service = self.catalogue.get(app)
        if service is None:
            raise api_error("PRICE_VERIFICATION_FAILED")
        pool = self._choose_pool(service, provider_id)
        if account.balance_units < pool.price_units:
            raise api_error("INSUFFICIENT_BALANCE")

        now = self.clock.now()
        account.balance_units -= pool.price_units
        account.debits_units += pool.price_units
        pool.count -= 1
        order = Order(
            activation_id=str(self._next_id),
            key=account.key,
            phone_number=self._new_phone(),
            service=app_name if app_name is not None else service.name,
            app=service.code,
            pool=pool,
            country=country_name if country_name is not None else "USA",
            amount_units=pool.price_units,
            created_at=now,
            created_wall=datetime.now(UTC),
            expires_at=now + self.config.activation_lifetime,
        )
        self._next_id += 1
        self.orders[order.activation_id] = order
        account.order_ids.append(order.activation_id)
        self._schedule(order.expires_at, order)
        auto = self.config.auto_code_after
        if auto is not None and self._rng.random() < self.config.auto_code_probability:
            order.code_due = now + self._rng.uniform(*auto) * self.clock.scale
            self._schedule(order.code_due, order)
        return {
            "activation_id": order.activation_id,
            "phone_number": order.phone_number,
            "service": order.service,
            "country": order.country,
            "amount_charged": Usd(order.amount_units),
            "balance_after": Usd(account.balance_units),
        }

    def check(self, account: Account, activation_id: str) -> dict[str, object]:
        return self._check_view(self._own_order(account, activation_id))

    def check_all(self, account: Account, body: Mapping[str, object]) -> list[dict[str, object]]:
        ids = body.get("ids")
        if not isinstance(ids, list) or not ids:
            raise validation_error("The ids field is required and must be a non-empty array.")
        if len(ids) > MAX_CHECK_ALL_IDS:
            raise validation_error(
                f"The ids field must not have more than {MAX_CHECK_ALL_IDS} items."
            )
        if not all(isinstance(item, str) for item in ids):
            raise validation_error("Each of the ids must be a string.")
        answer: list[dict[str, object]] = []
        for activation_id in cast(list[str], ids):
            if not _NUMERIC_ID.fullmatch(activation_id):
                answer.append({"activation_id": activation_id, "status": "Invalid", "code": None})
                continue
            order = self.orders.get(activation_id)
            if order is None or order.key != account.key:
                answer.append({"activation_id": activation_id, "status": "Not Found", "code": None})
                continue
            view = self._check_view(order)
            if view["status"] in (CANCELLED, EXPIRED):
                answer.append({"activation_id": activation_id, "status": "Invalid", "code": None})
            else:
                answer.append(view)
        return answer

    def cancel(self, account: Account, activation_id: str) -> dict[str, object]:
        order = self._own_order(account, activation_id)
        if order.status == COMPLETED:
            raise api_error(
                "CODE_RECEIVED",
                data={
                    "activation_id": order.activation_id,
                    "phone_number": order.phone_number,
                    "service": order.service,
                    "status": COMPLETED,
                    "code": order.code,
                },
            )
        if order.status == WAITING:
            elapsed = self.clock.now() - order.created_at
            if elapsed < self.config.cancel_lock:
                wait = self.clock.real_seconds(self.config.cancel_lock - elapsed)
                raise api_error("TOO_EARLY", too_early_message(wait))
            self._end(order, CANCELLED, self.clock.now())
        # Cancelled or expired before: answer the refund that was made, never a second one.
        return {
            "activation_id": order.activation_id,
            "refund": Usd(order.refund_units),
            "balance_after": Usd(account.balance_units),
        }

    def history(
        self, account: Account, status: str | None, page: int, per_page: int
    ) -> dict[str, object]:
        orders = [self.orders[i] for i in reversed(account.order_ids)]
        if status is not None:
            orders = [o for o in orders if o.status == status]
        total = len(orders)
        start = (page - 1) * per_page
        return {
            "orders": [self._history_view(o) for o in orders[start : start + per_page]],
            "pagination": {
                "current_page": page,
                "per_page": per_page,
                "total": total,
                "last_page": max(1, math.ceil(total / per_page)),
            },
        }

    # ------------------------------------------------------------------------- control side

    def set_account(
        self, key: str, balance_units: int | None, status: AccountStatus | None
    ) -> Account:
        account = self.accounts.get(key)
        if account is None:
            start = self.config.start_balance_units if balance_units is None else balance_units
            account = self._open_account(key, start)
        elif balance_units is not None:
            account.balance_units = balance_units
        if status is not None:
            account.status = status
        if self.allowed_keys is not None:
            # An account created on purpose must be usable even when keys are restricted.
            self.allowed_keys.add(key)
        return account

    def set_stock(
        self, app: str, provider_id: str | None, count: int | None, price_units: int | None
    ) -> Pool:
        service = self.catalogue.get(app)
        if service is None:
            raise SandboxError(404, "NOT_FOUND", f"No service {app!r}.")
        pool = service.pool(provider_id)
        if pool is None:
            raise SandboxError(404, "NOT_FOUND", f"No pool {provider_id!r} in {app!r}.")
        if count is not None:
            pool.count = count
        if price_units is not None:
            pool.price_units = price_units
        return pool

    def deliver_code(self, activation_id: str, code: str | None) -> Order:
        order = self.orders.get(activation_id)
        if order is None:
            raise SandboxError(404, "NOT_FOUND", f"No activation {activation_id!r}.")
        if order.status != WAITING:
            raise SandboxError(
                409, "NOT_WAITING", f"Activation {activation_id} is {order.status}, not Waiting."
            )
        self._complete(order, code or self._random_code(), datetime.now(UTC))
        return order

    def add_fault(self, fault: Fault) -> Fault:
        fault.fault_id = next(self._fault_ids)
        self.faults.append(fault)
        return fault

    def take_fault(self, endpoint: str, key: str | None) -> Fault | None:
        """The first armed fault for this call, with one use consumed."""
        for fault in self.faults:
            if fault.endpoint == endpoint and (fault.key is None or fault.key == key):
                fault.remaining -= 1
                if fault.remaining <= 0:
                    self.faults.remove(fault)
                return fault
        return None

    def record(self, entry: dict[str, object]) -> None:
        entry["seq"] = next(self._log_seq)
        self.request_log.append(entry)
        status = entry.get("status")
        endpoint = entry.get("endpoint")
        if status == 429 and isinstance(endpoint, str):
            self.rate_limited_counts[endpoint] += 1

    def account_view(self, account: Account) -> dict[str, object]:
        return {
            "key": account.key,
            "email": account.email,
            "status": account.status,
            "balance_units": account.balance_units,
            "debits_units": account.debits_units,
            "refunds_units": account.refunds_units,
            "orders": [self.order_view(self.orders[i]) for i in account.order_ids],
        }

    def order_view(self, order: Order) -> dict[str, object]:
        return {
            "activation_id": order.activation_id,
            "key": order.key,
            "phone_number": order.phone_number,
            "service": order.service,
            "app": order.app,
            "provider_id": order.pool.provider_id,
            "country": order.country,
            "status": order.status,
            "code": order.code,
            "amount_units": order.amount_units,
            "refund_units": order.refund_units,
            "created_at": _iso(order.created_wall),
            "completed_at": _iso(order.completed_wall) if order.completed_wall else None,
            "age_seconds": self.clock.now() - order.created_at,
        }

    def stock_view(self) -> list[dict[str, object]]:
        return [
            {
                "app": s.code,
                "name": s.name,
                "pools": [
                    {"provider_id": p.provider_id, "price_units": p.price_units, "count": p.count}
                    for p in s.sorted_pools()
                ],
            }
            for s in self.catalogue.values()
        ]

    # ---------------------------------------------------------------------------- internals

    def _check_country(self, country: str) -> None:
        if country.upper() != "USA":
            raise api_error("INVALID_COUNTRY")

    def _choose_pool(self, service: Service, provider_id: str | None) -> Pool:
        if service.multi_pool and provider_id is not None:
            pool = service.pool(provider_id)
            if pool is None:
                raise api_error("PRICE_VERIFICATION_FAILED")
        elif service.multi_pool:
            pool = service.cheapest_in_stock()
            if pool is None:
                raise api_error("OUT_OF_STOCK")
        else:
            pool = service.pool(None)
            if pool is None:
                raise api_error("PRICE_VERIFICATION_FAILED")
        # A pinned pool without stock is refused; the upstream never falls back to another.
        if pool.count <= 0:
            raise api_error("OUT_OF_STOCK")
        return pool

    def _own_order(self, account: Account, activation_id: str) -> Order:
        order = self.orders.get(activation_id)
        if order is None or order.key != account.key:
            raise api_error("NOT_FOUND")
        return order

    def _check_view(self, order: Order) -> dict[str, object]:
        view: dict[str, object] = {
            "activation_id": order.activation_id,
            "status": WAITING,
            "code": None,
            "phone_number": order.phone_number,
        }
        if order.status == COMPLETED:
            # A delivered code bypasses the cache.
            view["status"] = COMPLETED
            view["code"] = order.code
            return view
        now = self.clock.now()
        cached_until = self._check_cache.get(order.activation_id)
        if cached_until is not None and now < cached_until:
            return view
        if order.status == WAITING:
            self._check_cache[order.activation_id] = now + self.config.check_cache_ttl
            return view
        self._check_cache.pop(order.activation_id, None)
        view["status"] = order.status
        return view

    @staticmethod
    def _history_view(order: Order) -> dict[str, object]:
        return {
            "activation_id": order.activation_id,
            "phone_number": order.phone_number,
            "service": order.service,
            "country": order.country,
            "status": order.status,
            "code": order.code,
            "amount_charged": Usd(order.amount_units),
            "created_at": _iso(order.created_wall),
            "completed_at": _iso(order.completed_wall) if order.completed_wall else None,
        }

    def _complete(self, order: Order, code: str, wall: datetime) -> None:
        order.status = COMPLETED
        order.code = code
        order.completed_wall = wall
        order.ended_at = self.clock.now()
        self._check_cache.pop(order.activation_id, None)

    def _end(self, order: Order, status: str, moment: float) -> None:
        """Cancel or expire a waiting order: full refund, the number goes back into stock."""
        account = self.accounts[order.key]
        order.status = status
        order.ended_at = moment
        order.refund_units = order.amount_units
        account.balance_units += order.amount_units
        account.refunds_units += order.amount_units
        order.pool.count += 1
        if status == CANCELLED:
            # The server that cancelled it forgets its cached "Waiting"; an expiry does not.
            self._check_cache.pop(order.activation_id, None)

    def _schedule(self, moment: float, order: Order) -> None:
        heapq.heappush(self._events, (moment, next(self._event_seq), order.activation_id))

    def _wall_at(self, order: Order, moment: float) -> datetime:
        real = (moment - order.created_at) / self.clock.scale
        return min(order.created_wall + timedelta(seconds=max(0.0, real)), datetime.now(UTC))

    def _new_phone(self) -> str:
        while True:
            number = f"+1940{self._rng.randrange(10**7):07d}"
            if number not in self._phones:
                self._phones.add(number)
                return number

    def _random_code(self) -> str:
        return f"{self._rng.randrange(10**6):06d}"


def _required_str(body: Mapping[str, object], name: str) -> str:
    value = body.get(name)
    if value is None or value == "":
        raise validation_error(f"The {name} field is required.")
    if not isinstance(value, str):
        raise validation_error(f"The {name} field must be a string.")
    if len(value) > MAX_TEXT_FIELD:
        raise validation_error(
            f"The {name} field must not be greater than {MAX_TEXT_FIELD} characters."
        )
    return value


def _optional_str(body: Mapping[str, object], name: str) -> str | None:
    # Like the upstream (Laravel), an empty string counts as absent.
    value = body.get(name)
    if value is None or value == "":
        return None
    return _required_str(body, name)


def parse_fault(body: Mapping[str, Any]) -> Fault:
    """A fault from its control-API description; raises SandboxError(422) naming the bad field."""
    endpoint = body.get("endpoint")
    if endpoint not in ENDPOINTS:
        raise validation_error(f"endpoint must be one of {', '.join(ENDPOINTS)}")
    kind = body.get("kind")
    if kind not in FAULT_KINDS:
        raise validation_error(f"kind must be one of {', '.join(FAULT_KINDS)}")
    times = body.get("times", 1)
    if not isinstance(times, int) or isinstance(times, bool) or times < 1:
        raise validation_error("times must be a positive integer")
    key = body.get("key")
    if key is not None and not isinstance(key, str):
        raise validation_error("key must be a string or null")
    fault = Fault(
        fault_id=0, endpoint=endpoint, kind=cast(FaultKind, kind), remaining=times, key=key
    )
    if kind == "error":
        code = body.get("code")
        if not isinstance(code, str) or not code:
            raise validation_error("an error fault needs a code")
        http_status = body.get("http_status")
        if http_status is None and code not in ERROR_STATUS:
            raise validation_error(f"unknown code {code!r}: give http_status too")
        if http_status is not None and (
            not isinstance(http_status, int) or not 400 <= http_status <= 599
        ):
            raise validation_error("http_status must be an integer from 400 to 599")
        message = body.get("message")
        if message is not None and not isinstance(message, str):
            raise validation_error("message must be a string")
        seconds = body.get("seconds")
        if seconds is not None and (
            not isinstance(seconds, int) or isinstance(seconds, bool) or seconds < 0
        ):
            raise validation_error("seconds must be a non-negative integer")
        fault.code, fault.http_status, fault.message, fault.seconds = (
            code,
            http_status,
            message,
            seconds,
        )
    elif kind in ("delay_before", "delay_after"):
        delay = body.get("delay")
        if not isinstance(delay, int | float) or isinstance(delay, bool) or not 0 <= delay <= 3600:
            raise validation_error("a delay fault needs delay: real seconds from 0 to 3600")
        fault.delay = float(delay)
    elif kind == "malformed":
        variant = body.get("variant", "not_json")
        if variant not in MALFORMED_VARIANTS:
            raise validation_error(f"variant must be one of {', '.join(MALFORMED_VARIANTS)}")
        fault.variant = variant
    return fault
