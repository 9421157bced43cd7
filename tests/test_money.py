"""Ledger units: exact parsing, formatting and markup rounding."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.money import MoneyError, apply_markup, round_up, to_units
from bot.telegram.i18n import I18n


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
    ("units", "en", "ru"),
    [
        (18500, "$1.85", "1,85\xa0$"),
        (10830, "$1.083", "1,083\xa0$"),
        (1, "$0.0001", "0,0001\xa0$"),
        (0, "$0.00", "0,00\xa0$"),
        (-5000, "-$0.50", "-0,50\xa0$"),
        (100_000_000, "$10,000.00", "10\xa0000,00\xa0$"),
    ],
)
def test_amounts_per_locale(units: int, en: str, ru: str) -> None:
    """Grouped thousands in each language's way; never rounded (an upstream cost of $1.083
    shows as it is, to an admin)."""
    i18n = I18n()
    assert i18n.translator("en").usd(units) == en
    assert i18n.translator("ru").usd(units) == ru


def test_markup_rounds_up() -> None:
    assert apply_markup(10830, Decimal("10"), 0) == 11913
    assert apply_markup(10001, Decimal("0.5"), 0) == 10052  # 10051.005 rounds up
    assert apply_markup(18500, Decimal(0), 500) == 19000


def test_markup_rounds_up_to_the_price_step() -> None:
    cent = 100
    assert apply_markup(18500, Decimal(15), 500, cent) == 21_800  # $2.1775 → $2.18
    assert apply_markup(10830, Decimal(0), 0, cent) == 10_900  # $1.083 → $1.09
    assert apply_markup(18500, Decimal(0), 0, cent) == 18_500  # already whole cents
    assert apply_markup(18500, Decimal(0), 0, 10_000) == 20_000  # whole dollars
    with pytest.raises(MoneyError):
        round_up(100, 0)


@given(
    st.integers(min_value=0, max_value=10**9),
    st.decimals(min_value=0, max_value=500, places=2),
    st.integers(min_value=0, max_value=10**6),
    st.sampled_from([1, 10, 100, 1_000, 10_000]),
)
def test_stepped_price_is_the_least_step_multiple_at_or_above_the_markup(
    units: int, percent: Decimal, fixed: int, step: int
) -> None:
    exact = apply_markup(units, percent, fixed)
    price = apply_markup(units, percent, fixed, step)
    assert price % step == 0
    assert exact <= price < exact + step


@given(st.integers(min_value=0, max_value=10**9), st.decimals(min_value=0, max_value=500, places=2))
def test_markup_never_below_upstream(units: int, percent: Decimal) -> None:
    price = apply_markup(units, percent, 0)
    assert price >= units
    assert Decimal(price) >= Decimal(units) * (100 + percent) / 100
