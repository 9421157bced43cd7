"""A typed async client for the sandbox's control API (`/_control`), for tests and benchmarks.

Money here is integer ledger units (1/10 000 USD), never floats. Every method raises
`SandboxControlError` when the control API refuses (a bad argument, an unknown activation).
"""

from __future__ import annotations

import functools
import ssl
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Literal, Self

import httpx

Endpoint = Literal[
    "balance", "countries", "apps", "purchase", "check", "check-all", "cancel", "history"
]
FaultKind = Literal[
    "error", "drop_before", "drop_after", "delay_before", "delay_after", "malformed"
]
MalformedVariant = Literal["not_json", "truncated", "wrong_shape"]
AccountStatus = Literal["active", "suspended", "locked"]


class SandboxControlError(Exception):
    def __init__(self, http_status: int, code: str, message: str) -> None:
        super().__init__(f"{http_status} {code}: {message}")
        self.http_status = http_status
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class OrderInfo:
    activation_id: str
    key: str
    phone_number: str
    service: str
    app: str
    provider_id: str | None
    country: str
    status: str
    code: str | None
    amount_units: int
    refund_units: int
    created_at: str
    completed_at: str | None
    age_seconds: float  # upstream seconds since purchase

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> OrderInfo:
        return cls(
            activation_id=raw["activation_id"],
            key=raw["key"],
            phone_number=raw["phone_number"],
            service=raw["service"],
            app=raw["app"],
            provider_id=raw["provider_id"],
            country=raw["country"],
            status=raw["status"],
            code=raw["code"],
            amount_units=raw["amount_units"],
            refund_units=raw["refund_units"],
            created_at=raw["created_at"],
            completed_at=raw["completed_at"],
            age_seconds=raw["age_seconds"],
        )


@dataclass(frozen=True, slots=True)
class AccountInfo:
    key: str
    email: str
    status: AccountStatus
    balance_units: int
    debits_units: int
    refunds_units: int
    orders: list[OrderInfo]  # oldest first

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> AccountInfo:
        return cls(
            key=raw["key"],
            email=raw["email"],
            status=raw["status"],
            balance_units=raw["balance_units"],
            debits_units=raw["debits_units"],
            refunds_units=raw["refunds_units"],
            orders=[OrderInfo.from_json(o) for o in raw["orders"]],
        )


@dataclass(frozen=True, slots=True)
class LogEntry:
    seq: int
    time: float  # Unix time the request arrived
    clock: float  # the sandbox's upstream clock then
    key: str | None
    method: str
    path: str
    endpoint: str | None
    status: int | None  # None: the connection was dropped without an answer
    code: str | None
    fault: str | None

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> LogEntry:
        return cls(
            seq=raw["seq"],
            time=raw["time"],
            clock=raw["clock"],
            key=raw["key"],
            method=raw["method"],
            path=raw["path"],
            endpoint=raw["endpoint"],
            status=raw["status"],
            code=raw["code"],
            fault=raw["fault"],
        )


@dataclass(frozen=True, slots=True)
class Stats:
    requests: dict[str, int]  # per endpoint, every request received
    rate_limited_total: int  # 429 answers served (the limiter's and injected ones)
    rate_limited: dict[str, int]
    clock: float
    time_scale: float


@dataclass(frozen=True, slots=True)
class PoolStock:
    provider_id: str | None
    price_units: int
    count: int


@functools.cache
def _tls_context() -> ssl.SSLContext:
    # Loading the CA bundle costs ~50 ms, paid by every new httpx client; tests start a sandbox
    # (and so a control client) per test, so the context is built once and shared.
    return httpx.create_ssl_context()


class SandboxControl:
    """One httpx client on the sandbox root URL (`Sandbox.root_url`, not the API base)."""

    def __init__(
        self,
        root_url: str,
        *,
        timeout: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._http = httpx.AsyncClient(
            base_url=root_url.rstrip("/") + "/_control",
            timeout=timeout,
            transport=transport,
            verify=_tls_context(),
        )

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

    async def _call(
        self,
        method: str,
        path: str,
        *,
        json: dict[str, Any] | None = None,
        params: dict[str, str] | None = None,
    ) -> Any:
        response = await self._http.request(method, path, json=json, params=params)
        payload = response.json()
        if not payload.get("success"):
            raise SandboxControlError(
                response.status_code, str(payload.get("code")), str(payload.get("error"))
            )
        return payload["data"]

    async def reset(self) -> None:
        """Forget every account, order, fault and log entry; stock back to the catalogue's."""
        await self._call("POST", "/reset")

    async def set_account(
        self,
        key: str,
        *,
        balance_units: int | None = None,
        status: AccountStatus | None = None,
    ) -> AccountInfo:
        """Create (with the start balance unless given) or update an account."""
        body: dict[str, Any] = {"key": key}
        if balance_units is not None:
            body["balance_units"] = balance_units
        if status is not None:
            body["status"] = status
        return AccountInfo.from_json(await self._call("POST", "/accounts", json=body))

    async def account(self, key: str) -> AccountInfo:
        """Balance, total debits and refunds, and the orders of an account."""
        return AccountInfo.from_json(await self._call("GET", "/accounts", params={"key": key}))

    async def set_stock(
        self,
        app: str,
        provider_id: str | None,
        count: int,
        *,
        price_units: int | None = None,
    ) -> PoolStock:
        """Stock (and optionally price) of a pool; provider_id None for a single-pool service."""
        body: dict[str, Any] = {"app": app, "provider_id": provider_id, "count": count}
        if price_units is not None:
            body["price_units"] = price_units
        raw = await self._call("POST", "/stock", json=body)
        return PoolStock(raw["provider_id"], raw["price_units"], raw["count"])

    async def stock(self) -> dict[str, list[PoolStock]]:
        """Pools per service code, cheapest first."""
        raw = await self._call("GET", "/stock")
        return {
            s["app"]: [
                PoolStock(p["provider_id"], p["price_units"], p["count"]) for p in s["pools"]
            ]
            for s in raw
        }

    async def deliver_code(self, activation_id: str, code: str | None = None) -> str:
        """Make an SMS code arrive now (random 6 digits unless given); returns the code."""
        body: dict[str, Any] = {"activation_id": activation_id}
        if code is not None:
            body["code"] = code
        raw = await self._call("POST", "/codes", json=body)
        return str(raw["code"])

    async def add_fault(
        self,
        endpoint: Endpoint,
        kind: FaultKind,
        *,
        times: int = 1,
        key: str | None = None,
        code: str | None = None,
        http_status: int | None = None,
        message: str | None = None,
        seconds: int | None = None,
        delay: float | None = None,
        variant: MalformedVariant | None = None,
    ) -> int:
        """Make the next `times` calls of `endpoint` (by `key`, or by anyone) misbehave.

        error: answer the envelope for `code` (its documented HTTP status unless
        `http_status`; RATE_LIMITED and TOO_EARLY print `seconds`), nothing applied.
        drop_before / drop_after: close the connection without an answer, before or after
        the operation is applied. delay_before / delay_after: wait `delay` real seconds
        before applying, or after applying and before answering. malformed: apply, then
        answer 200 with `variant` (not_json, truncated, wrong_shape). Returns the fault id.
        """
        body: dict[str, Any] = {"endpoint": endpoint, "kind": kind, "times": times, "key": key}
        optional = {
            "code": code,
            "http_status": http_status,
            "message": message,
            "seconds": seconds,
            "delay": delay,
            "variant": variant,
        }
        body.update({name: value for name, value in optional.items() if value is not None})
        raw = await self._call("POST", "/faults", json=body)
        return int(raw["fault_id"])

    async def faults(self) -> list[dict[str, Any]]:
        """Armed faults with their remaining uses."""
        return list(await self._call("GET", "/faults"))

    async def clear_faults(self) -> None:
        await self._call("DELETE", "/faults")

    async def request_log(self, after: int = 0) -> list[LogEntry]:
        """API requests in arrival order (the newest 10 000), those with seq > `after`."""
        raw = await self._call("GET", "/log", params={"after": str(after)})
        return [LogEntry.from_json(e) for e in raw]

    async def stats(self) -> Stats:
        raw = await self._call("GET", "/stats")
        return Stats(
            requests=dict(raw["requests"]),
            rate_limited_total=raw["rate_limited"]["total"],
            rate_limited=dict(raw["rate_limited"]["by_endpoint"]),
            clock=raw["clock"],
            time_scale=raw["time_scale"],
        )

    async def now(self) -> float:
        """The sandbox clock, in upstream seconds since start (or the last reset)."""
        return float((await self._call("GET", "/clock"))["now"])

    async def advance_clock(self, upstream_seconds: float) -> float:
        """Jump the sandbox clock forward (expiries and due codes apply); returns the new time."""
        raw = await self._call("POST", "/clock", json={"advance": upstream_seconds})
        return float(raw["now"])
