"""Ledger units: exact parsing, formatting and markup rounding."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.money import MoneyError, apply_markup, format_usd, to_units


@pytest.mark.parametrize(
    ("value", "units"),
    [(1.083, 10830), (1.85, 18500), ("0.0001", 1), (14.25, 142500), (0, 0), ("3.6000", 36000)],
)
def test_to_units_is_exact(value: float | str, units: int) -> None:
    assert to_units(value) == units


@pytest.mark.parametrize("value", ["abc", "1.23456", "nan", "inf", "", True])
def test_to_units_rejects(value: object) -> None:
    with pytest.raises(MoneyError):
        to_units(value)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("units", "text"),
    [(18500, "$1.85"), (10830, "$1.083"), (1, "$0.0001"), (0, "$0.00"), (-5000, "-$0.50")],
)
def test_format(units: int, text: str) -> None:
    assert format_usd(units) == text


def test_markup_rounds_up() -> None:
    assert apply_markup(10830, Decimal("10"), 0) == 11913
    assert apply_markup(10001, Decimal("0.5"), 0) == 10052  # 10051.005 rounds up
    assert apply_markup(18500, Decimal(0), 500) == 19000


@given(st.integers(min_value=0, max_value=10**9), st.decimals(min_value=0, max_value=500, places=2))
def test_markup_never_below_upstream(units: int, percent: Decimal) -> None:
    price = apply_markup(units, percent, 0)
    assert price >= units
    assert Decimal(price) >= Decimal(units) * (100 + percent) / 100
