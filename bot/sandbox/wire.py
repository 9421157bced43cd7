"""JSON as DaisySim writes it: money as a number with exactly 4 decimals (`1.0830`).

`json.dumps` would print 1.083 for 10 830 units; the upstream prints `1.0830`, so money is
carried as `Usd` and written by hand. Clients must read both the same, but a faithful sandbox
also catches a client that parses the text rather than the number.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from bot.money import to_decimal


@dataclass(frozen=True, slots=True)
class Usd:
    """An amount in ledger units that is written to JSON as USD with 4 decimals."""

    units: int


def dumps(value: object) -> str:
    """Serialise plain JSON values plus `Usd`; anything else is a bug, so it raises TypeError."""
    parts: list[str] = []
    _write(value, parts)
    return "".join(parts)


def _write(value: object, out: list[str]) -> None:
    if isinstance(value, Usd):
        out.append(str(to_decimal(value.units)))
    elif value is None or isinstance(value, bool | int | float | str):
        out.append(json.dumps(value, ensure_ascii=False, allow_nan=False))
    elif isinstance(value, Mapping):
        out.append("{")
        for index, (key, item) in enumerate(value.items()):
            if not isinstance(key, str):
                raise TypeError(f"JSON object keys must be strings, not {type(key).__name__}")
            if index:
                out.append(",")
            out.append(json.dumps(key, ensure_ascii=False))
            out.append(":")
            _write(item, out)
        out.append("}")
    elif isinstance(value, Sequence):
        out.append("[")
        for index, item in enumerate(value):
            if index:
                out.append(",")
            _write(item, out)
        out.append("]")
    else:
        raise TypeError(f"not serialisable to JSON: {type(value).__name__}")
