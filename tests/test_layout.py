"""The house rules that import-linter cannot see, read from the source: money is appended to
the ledger by one module only, and the one repository holder is built by the composition roots
only (the app, and `daisybot ledger-check`, which opens a database of its own)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PRODUCTION = ("bot", "handlers", "storage")


def _hits(pattern: str) -> dict[str, int]:
    found: dict[str, int] = {}
    regex = re.compile(pattern)
    for package in PRODUCTION:
        for path in sorted((ROOT / package).rglob("*.py")):
            count = len(regex.findall(path.read_text(encoding="utf-8")))
            if count:
                found[path.relative_to(ROOT).as_posix()] = count
    return found


def test_only_the_money_module_appends_to_the_ledger() -> None:
    assert set(_hits(r"\bledger\.append\(")) == {"bot/services/money.py"}


def test_only_the_composition_roots_build_the_repository_holder() -> None:
    assert set(_hits(r"(?<![\w`])Repo\(")) == {"bot/app.py", "bot/ledger_check.py"}
