"""What a person may type as a Crypto Pay top-up, and how an amount travels to the API."""

from __future__ import annotations

from decimal import Decimal

import pytest

from bot.cryptopay.client import format_amount
from bot.services.cryptopay import parse_crypto_amount, usd_text
from bot.services.topup import BadAmount


@pytest.mark.parametrize(
    ("text", "units"),
    [("5", 50_000), ("$7.50", 75_000), ("7,5", 75_000), ("1", 10_000), ("1000", 10_000_000)],
)
def test_typed_amounts(text: str, units: int) -> None:
    assert parse_crypto_amount(text) == units


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("five", "format"),
        ("1e3", "format"),
        ("0", "not_positive"),
        ("-5", "not_positive"),
        ("7.505", "decimals"),  # a fiat invoice is in whole cents
        ("0.99", "too_small"),
        ("1000.01", "too_large"),
        ("99999999999", "too_large"),
    ],
)
def test_refused_amounts(text: str, reason: str) -> None:
    with pytest.raises(BadAmount) as refused:
        parse_crypto_amount(text)
    assert refused.value.reason == reason


@pytest.mark.parametrize(
    ("units", "text"), [(50_000, "5"), (75_000, "7.5"), (10_000_000, "1000"), (12_345, "1.2345")]
)
def test_amounts_on_the_wire_are_plain_decimal_strings(units: int, text: str) -> None:
    assert usd_text(units) == text
    assert format_amount(Decimal(units) / 10_000) == text


@pytest.mark.parametrize("bad", [Decimal(0), Decimal(-1), Decimal("NaN"), Decimal("Infinity")])
def test_format_amount_refuses_what_is_no_amount(bad: Decimal) -> None:
    with pytest.raises(ValueError, match="not a positive amount"):
        format_amount(bad)
