"""Typed answers of the DaisySim API, and their strict parsing from the wire.

Every money field is an integer count of ledger units (1/10 000 USD). The parsers accept
only the documented shape: anything else raises `WireFormatError`, which the client turns
into `MalformedResponse` (or, for a purchase, `PurchaseOutcomeUnknown`), so a KeyError or a
TypeError never escapes to a caller.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Final

from bot.money import MoneyError, to_units

WAITING: Final = "Waiting"
COMPLETED: Final = "Completed"
NOT_FOUND: Final = "Not Found"
INVALID: Final = "Invalid"
# Check-all answers with these for ids that will never change; the poller drops them.
FINAL_CHECK_STATUSES: Final = frozenset({COMPLETED, NOT_FOUND, INVALID})


class WireFormatError(ValueError):
    """A JSON answer that does not have the documented shape; `path` names the bad field."""

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = path
        self.problem = problem


@dataclass(frozen=True, slots=True)
class Balance:
    balance_units: int
    currency: str
    email: str


@dataclass(frozen=True, slots=True)
class Country:
    id: str
    name: str


@dataclass(frozen=True, slots=True)
class Provider:
    provider_id: str
    price_units: int
    count: int


@dataclass(frozen=True, slots=True)
class App:
    code: str
    name: str
    price_units: int
    providers: list[Provider]

    @property
    def is_multi_pool(self) -> bool:
        # The `sb_` prefix is what makes the upstream honour provider_id; an sb_ service whose
        # pools are all momentarily absent is still multi-pool (only "cheapest" is offered).
        return self.code.startswith("sb_") or bool(self.providers)

    def provider(self, provider_id: str) -> Provider | None:
        return next((p for p in self.providers if p.provider_id == provider_id), None)


@dataclass(frozen=True, slots=True)
class Purchase:
    activation_id: str
    phone_number: str
    service: str
    country: str
    amount_charged_units: int
    balance_after_units: int


@dataclass(frozen=True, slots=True)
class CheckResult:
    activation_id: str
    status: str
    code: str | None
    phone_number: str | None

    @property
    def is_waiting(self) -> bool:
        return self.status == WAITING

    @property
    def is_completed(self) -> bool:
        return self.status == COMPLETED

    @property
    def is_final(self) -> bool:
        """True when polling this id again can never change the answer."""
        return self.status in FINAL_CHECK_STATUSES


@dataclass(frozen=True, slots=True)
class CancelResult:
    activation_id: str
    refund_units: int
    balance_after_units: int


@dataclass(frozen=True, slots=True)
class Order:
    activation_id: str
    phone_number: str
    service: str
    country: str
    status: str
    code: str | None
    amount_charged_units: int
    created_at: datetime
    completed_at: datetime | None


@dataclass(frozen=True, slots=True)
class HistoryPage:
    orders: list[Order]
    current_page: int
    per_page: int
    total: int
    last_page: int

    @property
    def has_next(self) -> bool:
        return self.current_page < self.last_page


# --- parsing -------------------------------------------------------------------------------


class _Obj:
    """Typed access to one JSON object, naming the field path in every error."""

    __slots__ = ("_path", "_raw")

    def __init__(self, raw: object, path: str) -> None:
        if not isinstance(raw, Mapping):
            raise WireFormatError(path, f"expected an object, got {_kind(raw)}")
        self._raw: Mapping[str, Any] = raw
        self._path = path

    def _get(self, key: str) -> object:
        if key not in self._raw:
            raise WireFormatError(f"{self._path}.{key}", "missing")
        return self._raw[key]

    def id_str(self, key: str) -> str:
        """An identifier: a non-empty string; a JSON integer is accepted and stringified,
        because an id that changes JSON type between backend versions is still the same id."""
        value = self._get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)
        if isinstance(value, str) and value:
            return value
        raise WireFormatError(f"{self._path}.{key}", f"expected an id, got {_kind(value)}")

    def opt_id_str(self, key: str) -> str | None:
        # Absent, null and "" all mean "not there yet" (a code before the SMS arrives).
        if self._raw.get(key) in (None, ""):
            return None
        return self.id_str(key)

    def text(self, key: str) -> str:
        value = self._get(key)
        if not isinstance(value, str):
            raise WireFormatError(f"{self._path}.{key}", f"expected a string, got {_kind(value)}")
        return value

    def integer(self, key: str) -> int:
        value = self._get(key)
        if isinstance(value, bool):
            raise WireFormatError(f"{self._path}.{key}", "expected an integer, got a boolean")
        if isinstance(value, int):
            return value
        # JSON floats arrive as Decimal (the client parses with parse_float=Decimal).
        if isinstance(value, Decimal | float):
            try:
                if value == int(value):
                    return int(value)
            except (ValueError, OverflowError):
                pass
        raise WireFormatError(f"{self._path}.{key}", f"expected an integer, got {_kind(value)}")

    def money(self, key: str) -> int:
        value = self._get(key)
        # A string amount is a different contract, not a number to be guessed at.
        if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
            raise WireFormatError(f"{self._path}.{key}", f"expected a number, got {_kind(value)}")
        try:
            return to_units(value)
        except MoneyError as exc:
            raise WireFormatError(f"{self._path}.{key}", str(exc)) from exc

    def opt_text(self, key: str) -> str | None:
        if self._raw.get(key) is None:
            return None
        return self.text(key)

    def timestamp(self, key: str) -> datetime:
        value = self.text(key)
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError as exc:
            raise WireFormatError(f"{self._path}.{key}", f"not ISO 8601: {value!r}") from exc
        # A naive timestamp would not compare with aware ones; the upstream speaks UTC.
        return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)

    def opt_timestamp(self, key: str) -> datetime | None:
        if self._raw.get(key) is None:
            return None
        return self.timestamp(key)

    def obj(self, key: str) -> _Obj:
        return _Obj(self._get(key), f"{self._path}.{key}")

    def objects(self, key: str) -> list[_Obj]:
        return _objects(self._get(key), f"{self._path}.{key}")


def _objects(raw: object, path: str) -> list[_Obj]:
    if not isinstance(raw, list):
        raise WireFormatError(path, f"expected an array, got {_kind(raw)}")
    return [_Obj(item, f"{path}[{i}]") for i, item in enumerate(raw)]


def _kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float | Decimal):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, Mapping):
        return "an object"
    return type(value).__name__


def parse_balance(data: object) -> Balance:
    obj = _Obj(data, "data")
    return Balance(
        balance_units=obj.money("balance"), currency=obj.text("currency"), email=obj.text("email")
    )


def parse_countries(data: object) -> list[Country]:
    return [
        Country(id=item.id_str("id"), name=item.text("name"))
        for item in _Obj(data, "data").objects("countries")
    ]


def _parse_provider(obj: _Obj) -> Provider:
    return Provider(
        provider_id=obj.id_str("provider_id"),
        price_units=obj.money("price"),
        count=obj.integer("count"),
    )


def parse_apps(data: object) -> list[App]:
    return [
        App(
            code=item.id_str("code"),
            name=item.text("name"),
            price_units=item.money("price"),
            providers=[_parse_provider(p) for p in item.objects("providers")],
        )
        for item in _objects(data, "data")
    ]


def parse_purchase(data: object) -> Purchase:
    obj = _Obj(data, "data")
    return Purchase(
        activation_id=obj.id_str("activation_id"),
        phone_number=obj.text("phone_number"),
        service=obj.text("service"),
        country=obj.text("country"),
        amount_charged_units=obj.money("amount_charged"),
        balance_after_units=obj.money("balance_after"),
    )


def _parse_check(obj: _Obj) -> CheckResult:
    # phone_number is left out for Not Found / Invalid items of check-all.
    return CheckResult(
        activation_id=obj.id_str("activation_id"),
        status=obj.text("status"),
        code=obj.opt_id_str("code"),
        phone_number=obj.opt_text("phone_number"),
    )


def parse_check(data: object) -> CheckResult:
    return _parse_check(_Obj(data, "data"))


def parse_check_all(data: object) -> list[CheckResult]:
    return [_parse_check(item) for item in _objects(data, "data")]


def parse_cancel(data: object) -> CancelResult:
    obj = _Obj(data, "data")
    return CancelResult(
        activation_id=obj.id_str("activation_id"),
        refund_units=obj.money("refund"),
        balance_after_units=obj.money("balance_after"),
    )


def _parse_order(obj: _Obj) -> Order:
    return Order(
        activation_id=obj.id_str("activation_id"),
        phone_number=obj.text("phone_number"),
        service=obj.text("service"),
        country=obj.text("country"),
        status=obj.text("status"),
        code=obj.opt_id_str("code"),
        amount_charged_units=obj.money("amount_charged"),
        created_at=obj.timestamp("created_at"),
        completed_at=obj.opt_timestamp("completed_at"),
    )


def parse_history(data: object) -> HistoryPage:
    obj = _Obj(data, "data")
    pagination = obj.obj("pagination")
    return HistoryPage(
        orders=[_parse_order(item) for item in obj.objects("orders")],
        current_page=pagination.integer("current_page"),
        per_page=pagination.integer("per_page"),
        total=pagination.integer("total"),
        last_page=pagination.integer("last_page"),
    )
