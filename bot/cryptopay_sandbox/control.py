"""A typed client of the Crypto Pay sandbox's control API (`/_control`), for tests and the
demo: pay (in a chosen asset) or expire an invoice, read invoices, re-send a webhook."""

from __future__ import annotations

from types import TracebackType
from typing import Any, Self

import httpx


class CryptoPayControlError(Exception):
    def __init__(self, code: int, name: str) -> None:
        super().__init__(f"{code} {name}")
        self.code = code
        self.name = name


class CryptoPayControl:
    def __init__(self, root_url: str) -> None:
        self._http = httpx.AsyncClient(base_url=f"{root_url}/_control", timeout=10.0)

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

    async def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        response = await self._http.request(method, path, json=body)
        data = response.json()
        if not data.get("ok"):
            error = data.get("error") or {}
            raise CryptoPayControlError(int(error.get("code", 0)), str(error.get("name", "?")))
        return data["result"]

    async def reset(self) -> None:
        await self._call("POST", "/reset")

    async def set_webhook(self, url: str | None) -> None:
        await self._call("POST", "/webhook", {"url": url})

    async def invoices(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = await self._call("GET", "/invoices")
        return result

    async def invoice(self, invoice_id: int) -> dict[str, Any]:
        result: dict[str, Any] = await self._call("GET", f"/invoices/{invoice_id}")
        return result

    async def pay(self, invoice_id: int, asset: str | None = None) -> dict[str, Any]:
        body = {} if asset is None else {"asset": asset}
        result: dict[str, Any] = await self._call("POST", f"/invoices/{invoice_id}/pay", body)
        return result

    async def expire(self, invoice_id: int) -> dict[str, Any]:
        result: dict[str, Any] = await self._call("POST", f"/invoices/{invoice_id}/expire")
        return result

    async def resend_webhook(self, invoice_id: int, times: int = 1) -> list[int | None]:
        result = await self._call("POST", f"/invoices/{invoice_id}/webhook", {"times": times})
        statuses: list[int | None] = result["statuses"]
        return statuses

    async def webhook_log(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = await self._call("GET", "/webhooks")
        return result

    async def advance_clock(self, seconds: float) -> float:
        result = await self._call("POST", "/clock", {"advance": seconds})
        return float(result["now"])
