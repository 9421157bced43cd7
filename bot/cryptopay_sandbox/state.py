"""The counterpart's world: one app (its token), its invoices, the clock, the webhook log.

Statuses follow the reference: an invoice is `active` until it is paid (`paid`) or its
`expires_in` runs out (`expired`). Expiry is read off a clock that runs `time_scale` times
faster than real time (the DaisySim sandbox's `Clock`), so "expires in an hour" takes a minute
at scale 60, and it is exact: an invoice is expired the moment its time is up, whether or not
anyone looked.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Final

from bot.sandbox.state import Clock

ASSETS: Final[tuple[str, ...]] = (
    "USDT",
    "TON",
    "BTC",
    "ETH",
    "LTC",
    "BNB",
    "TRX",
    "USDC",
)
FIATS: Final[tuple[str, ...]] = ("USD", "EUR", "RUB", "BYN", "UAH", "GBP", "CNY", "KZT")
# Play exchange rates, USD per unit of the asset: what a fiat invoice costs in each asset.
USD_RATES: Final[dict[str, Decimal]] = {
    "USDT": Decimal(1),
    "USDC": Decimal(1),
    "TON": Decimal("5.2"),
    "BTC": Decimal(60000),
    "ETH": Decimal(3000),
    "LTC": Decimal(80),
    "BNB": Decimal(550),
    "TRX": Decimal("0.12"),
}
PAID_BUTTON_NAMES: Final = frozenset({"viewItem", "openChannel", "openBot", "callback"})
MAX_DESCRIPTION: Final = 1024
MAX_HIDDEN_MESSAGE: Final = 2048
MAX_PAYLOAD: Final = 4096
MAX_EXPIRES_IN: Final = 2_678_400
MAX_COUNT: Final = 1000
DEFAULT_COUNT: Final = 100


class CryptoPayFault(Exception):
    """An API error as the reference shapes it: `{"ok": false, "error": {code, name}}`."""

    def __init__(self, code: int, name: str) -> None:
        super().__init__(f"{code} {name}")
        self.code = code
        self.name = name


def bad_request(name: str) -> CryptoPayFault:
    return CryptoPayFault(400, name)


def iso(moment: float) -> str:
    """The reference's dates: ISO 8601 in UTC with milliseconds and a Z."""
    stamp = datetime.fromtimestamp(moment, tz=UTC)
    return stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{stamp.microsecond // 1000:03d}Z"


@dataclass(slots=True, eq=False)
class SandboxInvoice:
    invoice_id: int
    hash: str
    currency_type: str
    amount: Decimal
    asset: str | None
    fiat: str | None
    accepted_assets: tuple[str, ...]
    description: str | None
    hidden_message: str | None
    payload: str | None
    paid_btn_name: str | None
    paid_btn_url: str | None
    allow_comments: bool
    allow_anonymous: bool
    created_at: float  # upstream clock seconds
    created_wall: float  # for the dates shown
    expires_at: float | None  # upstream clock seconds
    status: str = "active"
    paid_asset: str | None = None
    paid_amount: Decimal | None = None
    paid_fiat_rate: Decimal | None = None
    paid_wall: float | None = None
    ended_wall: float | None = None


@dataclass(slots=True)
class WebhookAttempt:
    update_id: int
    invoice_id: int
    attempt: int
    status: int | None  # the HTTP status our POST got; None: no answer
    error: str | None
    at: float


@dataclass(slots=True)
class CryptoPayState:
    token: str
    app_id: int = 4242
    app_name: str = "DaisySim shop (sandbox)"
    time_scale: float = 1.0
    public_url: str = ""  # where the pay page is served, for bot_invoice_url
    webhook_url: str | None = None
    first_invoice_id: int = 1
    invoices: dict[int, SandboxInvoice] = field(default_factory=dict)
    webhook_log: list[WebhookAttempt] = field(default_factory=list)
    clock: Clock = field(init=False)
    _next_id: int = field(init=False)
    _next_update: int = field(init=False, default=1)

    def __post_init__(self) -> None:
        self.clock = Clock(self.time_scale)
        self._next_id = self.first_invoice_id

    def reset(self) -> None:
        self.invoices.clear()
        self.webhook_log.clear()
        self.webhook_url = None
        self.clock.restart()
        self._next_id = self.first_invoice_id
        self._next_update = 1

    def next_update_id(self) -> int:
        value = self._next_update
        self._next_update += 1
        return value

    # --- the clock ------------------------------------------------------------------------

    def refresh(self, invoice: SandboxInvoice) -> SandboxInvoice:
        """An active invoice whose time is up is expired, from the moment it ran out."""
        if (
            invoice.status == "active"
            and invoice.expires_at is not None
            and self.clock.now() >= invoice.expires_at
        ):
            invoice.status = "expired"
            late = self.clock.now() - invoice.expires_at
            invoice.ended_wall = time.time() - late / self.clock.scale
        return invoice

    def get(self, invoice_id: int) -> SandboxInvoice:
        invoice = self.invoices.get(invoice_id)
        if invoice is None:
            raise CryptoPayFault(400, "INVOICE_NOT_FOUND")
        return self.refresh(invoice)

    # --- the API --------------------------------------------------------------------------

    def create_invoice(self, params: dict[str, Any]) -> SandboxInvoice:
        currency_type = str(params.get("currency_type") or "crypto")
        if currency_type not in ("crypto", "fiat"):
            raise bad_request("CURRENCY_TYPE_INVALID")
        asset = fiat = None
        accepted: tuple[str, ...] = ()
        if currency_type == "crypto":
            asset = _text(params.get("asset"))
            if asset not in ASSETS:
                raise bad_request("ASSET_INVALID")
        else:
            fiat = _text(params.get("fiat"))
            if fiat not in FIATS:
                raise bad_request("FIAT_INVALID")
            raw_accepted = _text(params.get("accepted_assets"))
            if raw_accepted:
                accepted = tuple(a.strip() for a in raw_accepted.split(","))
                if not all(a in ASSETS for a in accepted) or len(set(accepted)) != len(accepted):
                    raise bad_request("ACCEPTED_ASSETS_INVALID")
            else:
                accepted = ASSETS
        amount = _amount(params.get("amount"))
        description = _limited(params, "description", MAX_DESCRIPTION, "DESCRIPTION_TOO_LONG")
        hidden = _limited(params, "hidden_message", MAX_HIDDEN_MESSAGE, "HIDDEN_MESSAGE_TOO_LONG")
        payload = _limited(params, "payload", MAX_PAYLOAD, "PAYLOAD_TOO_LONG")
        btn_name = _text(params.get("paid_btn_name"))
        btn_url = _text(params.get("paid_btn_url"))
        if btn_name is not None:
            if btn_name not in PAID_BUTTON_NAMES:
                raise bad_request("PAID_BTN_NAME_INVALID")
            if not btn_url or not btn_url.startswith(("http://", "https://")):
                raise bad_request("PAID_BTN_URL_INVALID")
        expires_in = params.get("expires_in")
        expires_at: float | None = None
        if expires_in is not None:
            try:
                seconds = int(str(expires_in))
            except ValueError:
                raise bad_request("EXPIRES_IN_INVALID") from None
            if not 1 <= seconds <= MAX_EXPIRES_IN:
                raise bad_request("EXPIRES_IN_INVALID")
            expires_at = self.clock.now() + seconds
        invoice_id = self._next_id
        self._next_id += 1
        invoice = SandboxInvoice(
            invoice_id=invoice_id,
            hash=f"IV{secrets.token_hex(6).upper()}",
            currency_type=currency_type,
            amount=amount,
            asset=asset,
            fiat=fiat,
            accepted_assets=accepted,
            description=description,
            hidden_message=hidden,
            payload=payload,
            paid_btn_name=btn_name,
            paid_btn_url=btn_url,
            allow_comments=_flag(params.get("allow_comments"), default=True),
            allow_anonymous=_flag(params.get("allow_anonymous"), default=True),
            created_at=self.clock.now(),
            created_wall=time.time(),
            expires_at=expires_at,
        )
        self.invoices[invoice_id] = invoice
        return invoice

    def get_invoices(self, params: dict[str, Any]) -> list[SandboxInvoice]:
        asset = _text(params.get("asset"))
        fiat = _text(params.get("fiat"))
        status = _text(params.get("status"))
        if status is not None and status not in ("active", "paid"):
            raise bad_request("STATUS_INVALID")
        ids_text = _text(params.get("invoice_ids"))
        wanted: set[int] | None = None
        if ids_text:
            try:
                wanted = {int(part) for part in ids_text.split(",") if part.strip()}
            except ValueError:
                raise bad_request("INVOICE_IDS_INVALID") from None
        offset = _int(params.get("offset"), 0, "OFFSET_INVALID")
        count = _int(params.get("count"), DEFAULT_COUNT, "COUNT_INVALID")
        if offset < 0:
            raise bad_request("OFFSET_INVALID")
        if not 1 <= count <= MAX_COUNT:
            raise bad_request("COUNT_INVALID")
        found = []
        # Newest first, as the app's invoice list shows them.
        for invoice in sorted(self.invoices.values(), key=lambda i: -i.invoice_id):
            self.refresh(invoice)
            if wanted is not None and invoice.invoice_id not in wanted:
                continue
            if status is not None and invoice.status != status:
                continue
            if asset is not None and invoice.asset != asset:
                continue
            if fiat is not None and invoice.fiat != fiat:
                continue
            found.append(invoice)
        return found[offset : offset + count]

    # --- the payer ------------------------------------------------------------------------

    def pay(self, invoice_id: int, asset: str | None = None) -> SandboxInvoice:
        invoice = self.get(invoice_id)
        if invoice.status != "active":
            raise CryptoPayFault(400, f"INVOICE_{invoice.status.upper()}")
        chosen = asset or invoice.asset or (invoice.accepted_assets or ("USDT",))[0]
        if invoice.currency_type == "crypto":
            if chosen != invoice.asset:
                raise bad_request("ASSET_NOT_ACCEPTED")
            invoice.paid_amount = invoice.amount
        else:
            if chosen not in invoice.accepted_assets:
                raise bad_request("ASSET_NOT_ACCEPTED")
            rate = USD_RATES[chosen]
            invoice.paid_fiat_rate = rate
            invoice.paid_amount = (invoice.amount / rate).quantize(Decimal("0.00000001"))
        invoice.paid_asset = chosen
        invoice.status = "paid"
        invoice.paid_wall = time.time()
        return invoice

    def expire(self, invoice_id: int) -> SandboxInvoice:
        invoice = self.get(invoice_id)
        if invoice.status != "active":
            raise CryptoPayFault(400, f"INVOICE_{invoice.status.upper()}")
        invoice.status = "expired"
        invoice.ended_wall = time.time()
        return invoice

    # --- the wire -------------------------------------------------------------------------

    def invoice_json(self, invoice: SandboxInvoice) -> dict[str, Any]:
        """The reference's Invoice object; fields that do not apply are left out."""
        self.refresh(invoice)
        url = f"{self.public_url}/pay/{invoice.hash}"
        out: dict[str, Any] = {
            "invoice_id": invoice.invoice_id,
            "hash": invoice.hash,
            "currency_type": invoice.currency_type,
            "amount": _wire(invoice.amount),
            "status": invoice.status,
            "bot_invoice_url": url,
            "mini_app_invoice_url": f"{url}?mode=mini_app",
            "web_app_invoice_url": f"{url}?mode=web_app",
            "created_at": iso(invoice.created_wall),
            "allow_comments": invoice.allow_comments,
            "allow_anonymous": invoice.allow_anonymous,
        }
        if invoice.currency_type == "crypto":
            out["asset"] = invoice.asset
        else:
            out["fiat"] = invoice.fiat
            out["accepted_assets"] = list(invoice.accepted_assets)
        for name in ("description", "hidden_message", "payload", "paid_btn_name", "paid_btn_url"):
            value = getattr(invoice, name)
            if value is not None:
                out[name] = value
        if invoice.expires_at is not None:
            left = (invoice.expires_at - invoice.created_at) / self.clock.scale
            out["expiration_date"] = iso(invoice.created_wall + left)
        if invoice.status == "paid":
            assert invoice.paid_amount is not None
            assert invoice.paid_wall is not None
            out["paid_asset"] = invoice.paid_asset
            out["paid_amount"] = _wire(invoice.paid_amount)
            out["paid_at"] = iso(invoice.paid_wall)
            out["paid_anonymously"] = False
            out["fee_asset"] = invoice.paid_asset
            out["fee_amount"] = "0"
            if invoice.paid_fiat_rate is not None:
                out["paid_fiat_rate"] = _wire(invoice.paid_fiat_rate)
            out["paid_usd_rate"] = _wire(USD_RATES[invoice.paid_asset or "USDT"])
        return out


def _wire(value: Decimal) -> str:
    text = format(value.normalize(), "f")
    return text


def _text(value: object) -> str | None:
    if value is None:
        return None
    return str(value)


def _flag(value: object, *, default: bool) -> bool:
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    return str(value).lower() in ("1", "true", "yes")


def _int(value: object, default: int, error: str) -> int:
    if value is None or value == "":
        return default
    try:
        return int(str(value))
    except ValueError:
        raise bad_request(error) from None


def _limited(params: dict[str, Any], name: str, limit: int, error: str) -> str | None:
    value = _text(params.get(name))
    if value is not None and len(value) > limit:
        raise bad_request(error)
    return value


def _amount(value: object) -> Decimal:
    if value is None or isinstance(value, bool):
        raise bad_request("AMOUNT_INVALID")
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        raise bad_request("AMOUNT_INVALID") from None
    if not amount.is_finite() or amount <= 0:
        raise bad_request("AMOUNT_INVALID")
    if amount > 1_000_000:
        raise bad_request("AMOUNT_TOO_BIG")
    return amount
