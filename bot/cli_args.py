"""Argument types shared by the `daisybot demo` and `daisybot sandbox` command lines."""

from __future__ import annotations

import argparse
from collections.abc import Callable

SecondsRange = tuple[float, float]


def probability(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError("must be within 0..1")
    return value


def seconds_range(
    example: str, off: tuple[str, ...] = ("off", "none", "no")
) -> Callable[[str], SecondsRange | None]:
    """An argparse type for `MIN-MAX` real seconds (or one number), None for any of `off`;
    `example` ends the error message, so each command shows its own usage."""

    def parse(text: str) -> SecondsRange | None:
        if text.strip().lower() in off:
            return None
        low, sep, high = text.partition("-")
        try:
            bounds = (float(low), float(high)) if sep else (float(low), float(low))
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected MIN-MAX real seconds, e.g. {example}: {text!r}"
            ) from None
        if not 0 <= bounds[0] <= bounds[1]:
            raise argparse.ArgumentTypeError("need 0 <= MIN <= MAX")
        return bounds

    return parse
