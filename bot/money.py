"""Money is an integer count of 1/10 000 USD everywhere it is stored, compared or summed.

The upstream speaks floats with 4 decimals; they are parsed through ``Decimal(str(x))`` so
that 1.083 becomes exactly 10 830 units and never 10 829.999...
"""

from __future__ import annotations

from decimal import ROUND_CEILING, Decimal, InvalidOperation

UNITS_PER_USD = 10_000
_UNIT = Decimal(1) / UNITS_PER_USD


class MoneyError(ValueError):
    """A value that cannot be an amount of money in ledger units."""


def to_units(value: float | int | str | Decimal) -> int:
    """Exact conversion of a USD amount with at most 4 decimals into ledger units.

    Raises MoneyError for anything else (more decimals, NaN, infinity, garbage), because a
    silently rounded amount is a wrong amount.
    """
    if isinstance(value, bool):
        raise MoneyError(f"not an amount: {value!r}")
    try:
        dec = Decimal(str(value).strip())
    except (InvalidOperation, ValueError) as exc:
        raise MoneyError(f"not an amount: {value!r}") from exc
    if not dec.is_finite():
        raise MoneyError(f"not an amount: {value!r}")
    units = dec * UNITS_PER_USD
    if units != units.to_integral_value():
        raise MoneyError(f"more than 4 decimals: {value!r}")
    return int(units)


def to_decimal(units: int) -> Decimal:
    """Ledger units as an exact USD Decimal (for JSON answers and CSV exports)."""
    return (Decimal(units) * _UNIT).quantize(_UNIT)


def round_up(units: int, step_units: int) -> int:
    """`units` rounded up to a whole number of `step_units` (1 leaves every amount as it is)."""
    if step_units < 1:
        raise MoneyError(f"the price step must be at least one unit, not {step_units}")
    return -(-units // step_units) * step_units


def apply_markup(
    upstream_units: int, percent: Decimal, fixed_units: int, step_units: int = 1
) -> int:
    """User price = upstream × (1 + percent/100) + fixed, rounded up to `step_units`.

    With the default PRICE_STEP_USD of $0.01 (100 units) every price a user sees is in cents
    and exactly that is charged: 15 % + $0.05 on $1.85 is $2.1775, shown and charged $2.18.
    """
    if upstream_units < 0 or fixed_units < 0 or percent < 0:
        raise MoneyError("markup inputs must not be negative")
    scaled = (Decimal(upstream_units) * (Decimal(100) + percent) / Decimal(100)).to_integral_value(
        rounding=ROUND_CEILING
    )
    return round_up(int(scaled) + fixed_units, step_units)
