"""`CryptoPayClient`: one `httpx.AsyncClient` for the Crypto Pay API, closed with `aclose()`.

Every method is `POST {base}/api/{method}` with a JSON body and the token in the
`Crypto-Pay-API-Token` header (the reference accepts GET or POST, query or body). Answers are
the envelope `{"ok": true, "result": ...}` or `{"ok": false, "error": {"code", "name"}}`.
Nothing is retried here: createInvoice twice would make two invoices, and the poller asks
getInvoices again on its next tick anyway.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from decimal import Decimal
from types import TracebackType
from typing import Any, Final, Literal, Self

import httpx
from pydantic import SecretStr

from bot.cryptopay.errors import (
    CryptoPayApiError,
    CryptoPayMalformed,
    CryptoPayUnauthorized,
    CryptoPayUnavailable,
)
from bot.cryptopay.models import CryptoPayApp, Invoice, parse_app, parse_invoice

logger = logging.getLogger(__name__)

MAINNET_URL: Final = "https://pay.crypt.bot"
TESTNET_URL: Final = "https://testnet-pay.crypt.bot"
TOKEN_HEADER: Final = "Crypto-Pay-API-Token"
# getInvoices returns at most this many invoices a call (the reference's `count` 1-1000).
MAX_COUNT: Final = 1000

Network = Literal["mainnet", "testnet"]


def network_url(network: Network) -> str:
    return MAINNET_URL if network == "mainnet" else TESTNET_URL


def format_amount(amount: Decimal) -> str:
    """The API takes amounts as strings; never an exponent ("1E+1") nor a float."""
    if not amount.is_finite() or amount <= 0:
        raise ValueError(f"not a positive amount: {amount}")
    text = format(amount.normalize(), "f")
    return text


class CryptoPayClient:
    def __init__(
        self,
        base_url: str,
        token: str | SecretStr,
        *,
        timeout: float = 15.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._token = token if isinstance(token, SecretStr) else SecretStr(token)
        self.base_url = base_url.rstrip("/")
        self._http = httpx.AsyncClient(
            base_url=f"{self.base_url}/api/",
            timeout=httpx.Timeout(timeout),
            transport=transport,
            headers={"Accept": "application/json"},
        )

    @property
    def token(self) -> SecretStr:
        return self._token

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

    async def _call(self, method: str, params: Mapping[str, Any] | None = None) -> Any:
        try:
            response = await self._http.post(
                method,
                json=dict(params or {}),
                headers={TOKEN_HEADER: self._token.get_secret_value()},
            )
        except httpx.HTTPError as exc:
            # The URL is in the message, never the token (it travels in a header).
            raise CryptoPayUnavailable(f"Crypto Pay {method}: {type(exc).__name__}") from exc
        try:
            body = json.loads(response.content, parse_float=Decimal)
        except (ValueError, UnicodeDecodeError):
            if response.status_code >= 500:
                raise CryptoPayUnavailable(
                    f"Crypto Pay {method}: HTTP {response.status_code}"
                ) from None
            raise CryptoPayMalformed(
                f"Crypto Pay {method}: HTTP {response.status_code}, body is not JSON"
            ) from None
        if not isinstance(body, dict) or not isinstance(body.get("ok"), bool):
            raise CryptoPayMalformed(f"Crypto Pay {method}: no ok envelope")
        if body["ok"]:
            if "result" not in body:
                raise CryptoPayMalformed(f"Crypto Pay {method}: ok without result")
            return body["result"]
        error = body.get("error")
        code = error.get("code") if isinstance(error, dict) else None
        name = error.get("name") if isinstance(error, dict) else None
        if not isinstance(code, int):
            code = response.status_code
        if not isinstance(name, str):
            name = "UNKNOWN"
        if code >= 500:
            raise CryptoPayUnavailable(f"Crypto Pay {method}: {code} {name}")
        if code == 401:
            raise CryptoPayUnauthorized(code, name, method)
        raise CryptoPayApiError(code, name, method)

    async def get_me(self) -> CryptoPayApp:
        return parse_app(await self._call("getMe"))

    async def create_invoice(
        self,
        *,
        amount: Decimal,
        fiat: str | None = None,
        asset: str | None = None,
        accepted_assets: Sequence[str] = (),
        description: str | None = None,
        payload: str | None = None,
        expires_in: int | None = None,
        paid_btn_name: str | None = None,
        paid_btn_url: str | None = None,
        allow_comments: bool | None = None,
        allow_anonymous: bool | None = None,
    ) -> Invoice:
        """A fiat invoice when `fiat` is given (paid in any of `accepted_assets`), else a
        crypto one in `asset`."""
        params: dict[str, Any] = {"amount": format_amount(amount)}
        if fiat is not None:
            params["currency_type"] = "fiat"
            params["fiat"] = fiat
            if accepted_assets:
                params["accepted_assets"] = ",".join(accepted_assets)
        else:
            if asset is None:
                raise ValueError("a crypto invoice needs an asset")
            params["currency_type"] = "crypto"
            params["asset"] = asset
        optional: dict[str, Any] = {
            "description": description,
            "payload": payload,
            "expires_in": expires_in,
            "paid_btn_name": paid_btn_name,
            "paid_btn_url": paid_btn_url,
            "allow_comments": allow_comments,
            "allow_anonymous": allow_anonymous,
        }
        params.update({k: v for k, v in optional.items() if v is not None})
        return parse_invoice(await self._call("createInvoice", params))

    async def get_invoices(
        self,
        *,
        invoice_ids: Sequence[int] = (),
        status: Literal["active", "paid"] | None = None,
        asset: str | None = None,
        fiat: str | None = None,
        offset: int = 0,
        count: int = 100,
    ) -> list[Invoice]:
        if not 1 <= count <= MAX_COUNT:
            raise ValueError(f"count must be 1..{MAX_COUNT}")
        params: dict[str, Any] = {"offset": offset, "count": count}
        if invoice_ids:
            params["invoice_ids"] = ",".join(str(i) for i in invoice_ids)
        for name, value in (("status", status), ("asset", asset), ("fiat", fiat)):
            if value is not None:
                params[name] = value
        result = await self._call("getInvoices", params)
        # The answer is {"items": [...]} (older servers: the bare list).
        items = result.get("items") if isinstance(result, dict) else result
        if not isinstance(items, list):
            raise CryptoPayMalformed("getInvoices without items")
        return [parse_invoice(item) for item in items]


__all__ = [
    "MAINNET_URL",
    "MAX_COUNT",
    "TESTNET_URL",
    "TOKEN_HEADER",
    "CryptoPayApiError",
    "CryptoPayClient",
    "Network",
    "format_amount",
    "network_url",
]
