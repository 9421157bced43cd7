"""Crypto Pay top-ups: a fiat invoice in USD for a preset or typed amount, paid in any
accepted asset, and the wallet credited exactly once per invoice.

A payment is seen two ways, whichever comes first: the webhook (`handle_webhook`, its
signature checked against the token before anything is read) and polling getInvoices for our
active invoices (`poll`, the default, so it works in long-polling mode with no public URL).
Both end in `settle`, which credits through `money.credit_crypto`: the invoice's own amount as
we stored it at creation, once per invoice id, however often and however concurrently the
payment is reported. A report that does not match what we created (another hash, currency or
amount) and one for an invoice we never created credit nothing and are logged.

An invoice that expires ends politely: its pay message is edited and nothing is credited.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Final, Literal, Protocol

from bot.cryptopay import (
    CryptoPayClient,
    CryptoPayError,
    CryptoPayMalformed,
    Invoice,
    parse_update,
    verify_signature,
)
from bot.money import UNITS_PER_USD, MoneyError, to_units
from bot.services import money
from bot.services.errors import AppError, WalletNotFound
from bot.services.notify import UncreditedCryptoPayment
from bot.services.topup import BadAmount, parse_amount
from storage.db import Transaction
from storage.models import CryptoInvoice, CryptoNetwork, Wallet
from storage.repo import Repo

log = logging.getLogger(__name__)

FIAT: Final = "USD"
# What the Crypto screen offers, in USD.
CRYPTO_PRESETS_USD: Final[tuple[int, ...]] = (1, 5, 10, 25)
# A typed amount: whole cents (a fiat invoice in USD), from $1 to $1000.
CRYPTO_MIN_UNITS: Final = UNITS_PER_USD
CRYPTO_MAX_UNITS: Final = 1000 * UNITS_PER_USD
_CENT: Final = UNITS_PER_USD // 100
# getInvoices by id, this many a call (the API allows up to 1000).
_POLL_BATCH: Final = 100
# Our own clock gives up on an invoice this long after its expiry when Crypto Pay never said
# "expired" (an invoice it no longer knows, e.g. a sandbox that restarted).
_EXPIRY_GRACE_SECONDS: Final = 300.0
_PAYLOAD_PREFIX: Final = "v1c"


class CryptoUnavailable(AppError):
    """Crypto Pay did not create the invoice (down, refused, or not configured right);
    nothing was recorded and nobody was charged."""

    code = "CRYPTO_UNAVAILABLE"


class CryptoNotices(Protocol):
    """How the owner hears of an invoice's end; both run inside the transaction that
    recorded it, so the message commits with the credit (or the expiry) or not at all."""

    async def crypto_paid(self, tx: Transaction, wallet: Wallet, invoice: CryptoInvoice) -> None:
        """Credited: a receipt naming the source and the amount."""

    async def crypto_expired(self, tx: Transaction, invoice: CryptoInvoice) -> None:
        """Expired unpaid: the pay message says so; nothing was credited."""

    def wake(self) -> None:
        """What was queued in a transaction that has committed may go now."""


Outcome = Literal["credited", "duplicate", "expired", "active", "unknown", "mismatch", "ignored"]
WebhookOutcome = Literal[
    "bad_signature",
    "malformed",
    "credited",
    "duplicate",
    "expired",
    "active",
    "unknown",
    "mismatch",
    "ignored",
]


@dataclass
class PollReport:
    asked: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)
    error: str | None = None


def parse_crypto_amount(text: str) -> int:
    """A typed USD amount for a Crypto Pay invoice: BadAmount unless whole cents in range
    (reasons as `parse_amount`'s, plus `too_small`)."""
    units = parse_amount(text, max_units=CRYPTO_MAX_UNITS)
    check_crypto_units(units, text)
    return units


def check_crypto_units(units: int, text: str | None = None) -> int:
    shown = text if text is not None else str(units)
    if units > CRYPTO_MAX_UNITS:
        raise BadAmount(shown, "too_large", max_units=CRYPTO_MAX_UNITS)
    if units < CRYPTO_MIN_UNITS:
        raise BadAmount(shown, "too_small", max_units=CRYPTO_MAX_UNITS)
    if units % _CENT:
        raise BadAmount(shown, "decimals", max_units=CRYPTO_MAX_UNITS)
    return units


def usd_text(units: int) -> str:
    """The invoice amount as Crypto Pay takes it: "5", "12.5", never an exponent."""
    return format((Decimal(units) / UNITS_PER_USD).normalize(), "f")


def preset_units() -> list[int]:
    return [usd * UNITS_PER_USD for usd in CRYPTO_PRESETS_USD]


@dataclass(eq=False)
class CryptoTopups:
    repo: Repo
    client: CryptoPayClient
    network: CryptoNetwork
    assets: tuple[str, ...]
    expires_in: int = 3600
    notices: CryptoNotices | None = None
    # Tells the admins of a paid invoice that could not be credited, once per `dedupe` key.
    alert: Callable[[UncreditedCryptoPayment, str], Awaitable[object]] | None = None
    clock: Callable[[], float] = time.time
    _polls: set[asyncio.Task[object]] = field(default_factory=set, init=False)
    _stopping: bool = field(default=False, init=False)

    # --- creating -------------------------------------------------------------------------

    async def create_invoice(
        self,
        *,
        wallet_id: int,
        user_id: int,
        chat_id: int,
        units: int,
        description: str,
        paid_btn_url: str | None = None,
    ) -> CryptoInvoice:
        """Ask Crypto Pay for an invoice of `units` USD on `wallet_id` and record it.

        BadAmount for an amount out of range; CryptoUnavailable when Crypto Pay did not make
        it (nothing recorded). An invoice made whose answer was lost is simply never shown:
        nobody has its link, so it expires unpaid."""
        check_crypto_units(money.check_amount(units))
        if await self.repo.wallets.get(wallet_id) is None:
            raise WalletNotFound(wallet_id)
        try:
            remote = await self.client.create_invoice(
                amount=Decimal(units) / UNITS_PER_USD,
                fiat=FIAT,
                accepted_assets=self.assets,
                description=description[:1024],
                # Ids only: Crypto Pay echoes it back; we never trust it for the wallet.
                payload=f"{_PAYLOAD_PREFIX}:{wallet_id}:{units}",
                expires_in=self.expires_in,
                paid_btn_name="openBot" if paid_btn_url else None,
                paid_btn_url=paid_btn_url,
            )
        except CryptoPayError as exc:
            log.warning("Crypto Pay createInvoice failed: %s", exc)
            raise CryptoUnavailable(str(exc)) from exc
        now = self.clock()
        async with self.repo.transaction() as tx:
            invoice = await self.repo.crypto.create(
                tx,
                network=self.network,
                invoice_id=remote.invoice_id,
                invoice_hash=remote.hash,
                wallet_id=wallet_id,
                user_id=user_id,
                chat_id=chat_id,
                amount_units=units,
                fiat=FIAT,
                pay_url=remote.bot_invoice_url,
                expires_at=now + self.expires_in,
                now=now,
            )
        log.info(
            "crypto invoice %d for %d units on wallet %d created",
            invoice.invoice_id,
            units,
            wallet_id,
        )
        return invoice

    async def attach_message(self, invoice: CryptoInvoice, message_id: int) -> None:
        """Where the pay button is, so the end of the invoice can edit it."""
        await self.repo.crypto.set_message(invoice.id, message_id)

    # --- settling -------------------------------------------------------------------------

    def _matches(self, ours: CryptoInvoice, remote: Invoice) -> str | None:
        """None if the report is about the invoice we created, else what differs."""
        if remote.hash != ours.invoice_hash:
            return "hash"
        if remote.currency_type != "fiat" or remote.fiat != ours.fiat:
            return f"currency {remote.currency_type}/{remote.fiat}"
        try:
            units = to_units(remote.amount)
        except MoneyError:
            return f"amount {remote.amount}"
        if units != ours.amount_units:
            return f"amount {remote.amount}"
        return None

    async def settle(self, remote: Invoice, *, source: str) -> Outcome:
        """Act on what Crypto Pay says of one invoice (`source`: "webhook" or "poll")."""
        ours = await self.repo.crypto.get_by_invoice_id(self.network, remote.invoice_id)
        if ours is None:
            log.warning(
                "crypto invoice %d (%s, %s) is not one of ours: nothing credited",
                remote.invoice_id,
                remote.status,
                source,
            )
            await self._uncredited(remote, "not an invoice of this bot")
            return "unknown"
        problem = self._matches(ours, remote)
        if problem is not None:
            log.error(
                "crypto invoice %d (%s): %s differs from what we created, nothing credited",
                remote.invoice_id,
                source,
                problem,
            )
            await self._uncredited(remote, f"{problem} differs from the invoice the bot made")
            return "mismatch"
        if remote.status == "paid":
            paid_amount = None if remote.paid_amount is None else str(remote.paid_amount)
            notices = self.notices
            credit = await money.credit_crypto(
                self.repo,
                ours.id,
                paid_asset=remote.paid_asset,
                paid_amount=paid_amount,
                notice=None if notices is None else notices.crypto_paid,
                now=self.clock(),
            )
            if not credit.credited:
                return "duplicate"
            log.info(
                "crypto invoice %d paid in %s (%s): %d units credited to wallet %d",
                ours.invoice_id,
                remote.paid_asset,
                source,
                ours.amount_units,
                ours.wallet_id,
            )
            if notices is not None:
                notices.wake()
            return "credited"
        if remote.status == "expired":
            return "expired" if await self._expire(ours) else "duplicate"
        return "active"

    async def _uncredited(self, remote: Invoice, reason: str) -> None:
        """A report that credits nothing reaches the admins when it says "paid" (someone may
        have paid); only signed webhooks and our own polls get here."""
        if remote.status != "paid" or self.alert is None:
            return
        alert = UncreditedCryptoPayment(invoice_id=remote.invoice_id, reason=reason)
        await self.alert(alert, f"crypto:{self.network}:{remote.invoice_id}:{reason}")

    async def _expire(self, ours: CryptoInvoice) -> bool:
        async with self.repo.transaction() as tx:
            if not await self.repo.crypto.mark_expired(tx, ours.id, now=self.clock()):
                return False
            after = await self.repo.crypto.get(ours.id, tx=tx)
            assert after is not None
            if self.notices is not None:
                await self.notices.crypto_expired(tx, after)
        log.info("crypto invoice %d expired unpaid", ours.invoice_id)
        if self.notices is not None:
            self.notices.wake()
        return True

    async def handle_webhook(self, body: bytes, signature: str | None) -> WebhookOutcome:
        """One webhook request as it arrived. The signature is checked on the raw bytes
        first: without the right one nothing else is even parsed."""
        token = self.client.token.get_secret_value()
        if not verify_signature(token, body, signature):
            log.warning(
                "Crypto Pay webhook refused: %s signature",
                "no" if not signature else "a wrong",
            )
            return "bad_signature"
        try:
            update = parse_update(json.loads(body))
        except (ValueError, CryptoPayMalformed) as exc:
            log.warning("Crypto Pay webhook with a signed but unreadable body: %s", exc)
            return "malformed"
        if update.update_type != "invoice_paid" or update.payload is None:
            log.info("Crypto Pay webhook %s ignored", update.update_type)
            return "ignored"
        return await self.settle(update.payload, source="webhook")

    async def poll_job(self) -> None:
        """The scheduler's job: one `poll`, unless stopping; `stop` waits for it."""
        task = asyncio.current_task()
        if self._stopping or task is None:
            return
        self._polls.add(task)
        try:
            await self.poll()
        finally:
            self._polls.discard(task)

    async def stop(self, timeout: float) -> None:
        """No new poll; the one running finishes (its credits and notices commit whole, each
        in its own transaction) or is cancelled after `timeout` seconds."""
        self._stopping = True
        running = set(self._polls)
        if not running:
            return
        _, late = await asyncio.wait(running, timeout=timeout)
        for task in late:
            task.cancel()
        if late:
            await asyncio.wait(late)

    async def poll(self) -> PollReport:
        """Ask Crypto Pay about every active invoice of ours and settle what changed (the
        scheduler's job)."""
        report = PollReport()
        active = await self.repo.crypto.list_active(self.network)
        seen: set[int] = set()
        for batch in _batches([i.invoice_id for i in active], _POLL_BATCH):
            report.asked += len(batch)
            try:
                remotes = await self.client.get_invoices(invoice_ids=batch, count=len(batch))
            except CryptoPayError as exc:
                log.warning("Crypto Pay getInvoices failed: %s", exc)
                report.error = str(exc)
                return report  # the next tick asks again
            for remote in remotes:
                if remote.invoice_id not in batch:
                    continue
                seen.add(remote.invoice_id)
                outcome = await self.settle(remote, source="poll")
                report.outcomes[outcome] = report.outcomes.get(outcome, 0) + 1
        now = self.clock()
        for ours in active:
            current = await self.repo.crypto.get(ours.id)
            if (
                current is not None
                and current.status == "active"
                and now > current.expires_at + _EXPIRY_GRACE_SECONDS
            ):
                # Long past its expiry and Crypto Pay says nothing that credits it.
                log.info(
                    "crypto invoice %d past its expiry (%s by Crypto Pay): ending it",
                    current.invoice_id,
                    "listed" if current.invoice_id in seen else "not listed",
                )
                if await self._expire(current):
                    report.outcomes["expired"] = report.outcomes.get("expired", 0) + 1
        return report


def _batches(values: Sequence[int], size: int) -> list[list[int]]:
    return [list(values[i : i + size]) for i in range(0, len(values), size)]


__all__ = [
    "CRYPTO_MAX_UNITS",
    "CRYPTO_MIN_UNITS",
    "CRYPTO_PRESETS_USD",
    "CryptoNotices",
    "CryptoTopups",
    "CryptoUnavailable",
    "Outcome",
    "PollReport",
    "WebhookOutcome",
    "check_crypto_units",
    "parse_crypto_amount",
    "preset_units",
    "usd_text",
]
