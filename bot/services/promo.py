"""Promo codes: what admins create (one code, or a batch of one-use codes as CSV), and what a
user redeems by typing a code or through a start link (`/start promo_<code>`).

The money moves in `money.redeem_promo`: one transaction takes a use, records the redemption
and credits the 'promo' entry, so a double tap, two concurrent redemptions by one user or two
users racing for the last use credit exactly as often as the code allows.
"""

from __future__ import annotations

import csv
import io
import logging
import re
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

from bot.money import UNITS_PER_USD, to_decimal
from bot.services import money
from bot.services.errors import AppError
from bot.services.money import Movement, NoticeHook
from bot.services.topup import BadAmount, parse_amount
from storage.models import PromoCode
from storage.repo import Repo

log = logging.getLogger(__name__)

# A code is what fits a start link's payload after "promo_" (letters, digits, _ and -).
CODE_PATTERN: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{2,31}$")
PROMO_PREFIX: Final = "promo_"
MAX_PROMO_UNITS: Final = 1_000 * UNITS_PER_USD
MAX_USES: Final = 1_000_000
MAX_DAYS: Final = 3650
MAX_BATCH: Final = 1000
# Batch codes: no 0/O or 1/I/L, so a code read off a screen or paper is typed right.
_ALPHABET: Final = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
_BATCH_BLOCKS: Final = 3  # XXXX-XXXX-XXXX: 31^12 ≈ 2^59, not guessable
_DAY: Final = 86_400.0
CSV_COLUMNS: Final[tuple[str, ...]] = ("code", "amount_usd", "expires_at_utc", "link")


class BadPromoSpec(AppError):
    """What an admin typed is not a promo code to create; `reason` says which part:
    usage, code, amount, uses, days, count, exists."""

    code = "BAD_PROMO_SPEC"

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"bad promo spec: {reason} {detail}".rstrip())
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True, slots=True)
class PromoSpec:
    """A code to create: `uses` in total, each user once unless `repeat`."""

    code: str
    amount_units: int
    uses: int = 1
    days: int | None = None  # None: never expires
    repeat: bool = False


def looks_like_code(text: str) -> bool:
    return CODE_PATTERN.fullmatch(text.strip()) is not None


def start_payload(code: str) -> str:
    return f"{PROMO_PREFIX}{code}"


def code_from_payload(payload: str) -> str | None:
    """The code of a `promo_<code>` start payload, else None."""
    if not payload.startswith(PROMO_PREFIX):
        return None
    code = payload.removeprefix(PROMO_PREFIX)
    return code if looks_like_code(code) else None


def _amount(text: str) -> int:
    try:
        return parse_amount(text, max_units=MAX_PROMO_UNITS)
    except BadAmount as exc:
        raise BadPromoSpec("amount", text) from exc


def _option(token: str, name: str, limit: int) -> int | None:
    prefix = f"{name}="
    if not token.lower().startswith(prefix):
        return None
    value = token[len(prefix) :]
    if not value.isdigit() or not 1 <= int(value) <= limit:
        raise BadPromoSpec(name, value)
    return int(value)


def parse_spec(text: str) -> PromoSpec:
    """`CODE AMOUNT [uses=N] [days=N] [repeat]`: e.g. `SPRING 2 uses=100 days=30`.

    One use in all by default, each user once (`repeat`: a user may redeem it again while
    uses remain), no expiry unless `days`."""
    parts = text.split()
    if len(parts) < 2:
        raise BadPromoSpec("usage")
    code, amount_text, *options = parts
    if not looks_like_code(code):
        raise BadPromoSpec("code", code[:40])
    uses, days, repeat = 1, None, False
    for token in options:
        if token.lower() == "repeat":
            repeat = True
        elif (n := _option(token, "uses", MAX_USES)) is not None:
            uses = n
        elif (n := _option(token, "days", MAX_DAYS)) is not None:
            days = n
        else:
            raise BadPromoSpec("usage", token[:40])
    return PromoSpec(code.upper(), _amount(amount_text), uses, days, repeat)


def parse_batch(text: str) -> tuple[int, int, int | None]:
    """`N AMOUNT [days=N]`: N one-use codes of AMOUNT each."""
    parts = text.split()
    if not 2 <= len(parts) <= 3:
        raise BadPromoSpec("usage")
    count_text, amount_text, *rest = parts
    if not count_text.isdigit() or not 1 <= int(count_text) <= MAX_BATCH:
        raise BadPromoSpec("count", count_text[:12])
    days = None
    if rest:
        days = _option(rest[0], "days", MAX_DAYS)
        if days is None:
            raise BadPromoSpec("usage", rest[0][:40])
    return int(count_text), _amount(amount_text), days


def _expiry(days: int | None, now: float) -> float | None:
    return None if days is None else now + days * _DAY


async def create_code(
    repo: Repo, spec: PromoSpec, *, admin_id: int, now: float | None = None
) -> PromoCode:
    current = time.time() if now is None else now
    async with repo.db.transaction() as tx:
        created = await repo.promo.create(
            tx,
            code=spec.code,
            amount_units=spec.amount_units,
            max_uses=spec.uses,
            expires_at=_expiry(spec.days, current),
            once_per_user=not spec.repeat,
            created_by=admin_id,
            now=current,
        )
    if created is None:
        raise BadPromoSpec("exists", spec.code)
    log.info("admin %d created promo code %d (%d uses)", admin_id, created.id, created.max_uses)
    return created


def new_batch_code() -> str:
    blocks = ("".join(secrets.choice(_ALPHABET) for _ in range(4)) for _ in range(_BATCH_BLOCKS))
    return "-".join(blocks)


@dataclass(frozen=True, slots=True)
class PromoBatch:
    codes: list[PromoCode]
    data: bytes  # the CSV document
    filename: str


async def create_batch(
    repo: Repo,
    *,
    count: int,
    amount_units: int,
    days: int | None,
    admin_id: int,
    bot_username: str,
    now: float | None = None,
) -> PromoBatch:
    """`count` one-use codes in one transaction, with their start links as CSV."""
    current = time.time() if now is None else now
    expires = _expiry(days, current)
    codes: list[PromoCode] = []
    async with repo.db.transaction() as tx:
        while len(codes) < count:
            created = await repo.promo.create(
                tx,
                code=new_batch_code(),
                amount_units=amount_units,
                max_uses=1,
                expires_at=expires,
                once_per_user=True,
                created_by=admin_id,
                now=current,
            )
            if created is not None:  # a collision (never seen) just draws again
                codes.append(created)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for code in codes:
        expiry = (
            ""
            if code.expires_at is None
            else datetime.fromtimestamp(code.expires_at, UTC).isoformat(timespec="seconds")
        )
        writer.writerow(
            [
                code.code,
                str(to_decimal(code.amount_units)),
                expiry,
                start_link(bot_username, code.code),
            ]
        )
    stamp = datetime.fromtimestamp(current, UTC).strftime("%Y%m%d-%H%M%S")
    log.info("admin %d created %d one-use promo codes", admin_id, count)
    return PromoBatch(codes, buffer.getvalue().encode("utf-8"), f"promo-codes-{stamp}.csv")


def start_link(bot_username: str, code: str) -> str:
    return f"https://t.me/{bot_username}?start={start_payload(code)}"


async def redeem(
    repo: Repo,
    *,
    code: str,
    user_id: int,
    wallet_id: int,
    key: str | None = None,
    notice: NoticeHook | None = None,
) -> tuple[PromoCode, Movement]:
    """`money.redeem_promo`; PromoRefused says why nothing moved."""
    return await money.redeem_promo(
        repo, code=code, user_id=user_id, wallet_id=wallet_id, key=key, notice=notice
    )


async def exists(repo: Repo, text: str) -> bool:
    """Whether a typed line is one of our codes (a line that is not goes to the search)."""
    return looks_like_code(text) and await repo.promo.find(text.strip()) is not None


__all__ = [
    "CSV_COLUMNS",
    "BadPromoSpec",
    "PromoBatch",
    "PromoSpec",
    "code_from_payload",
    "create_batch",
    "create_code",
    "exists",
    "looks_like_code",
    "new_batch_code",
    "parse_batch",
    "parse_spec",
    "redeem",
    "start_link",
    "start_payload",
]
