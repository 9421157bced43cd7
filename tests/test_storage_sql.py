"""SQL lives in storage/ only, and travels with `?` parameters: no statement of ours is
built from values.

Reads the source of the storage layer and checks that every `execute`/`fetch_*` call gets a
literal SQL string. The one allowed exception is a PRAGMA, which takes no parameters, formatted
from an `int(...)` of our own. Then reads the rest of the bot and finds no SQL at all.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FILES = sorted((ROOT / "storage").rglob("*.py"))
# The local counterparts of Telegram and DaisySim keep no database of the bot's.
OUTSIDE = sorted(
    path
    for path in [*(ROOT / "bot").rglob("*.py"), *(ROOT / "handlers").rglob("*.py")]
    if not path.is_relative_to(ROOT / "bot" / "sandbox")
    and not path.is_relative_to(ROOT / "bot" / "emulator")
)
SQL_TEXT = re.compile(r"\b(SELECT|INSERT INTO|DELETE FROM|UPDATE \w+ SET|PRAGMA)\b")
SQL_METHODS = {"execute", "executemany", "executescript", "fetch_one", "fetch_all", "fetch_value"}


def _sql_calls(tree: ast.AST) -> list[ast.Call]:
    return [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr in SQL_METHODS
        and node.args
    ]


def _allowed_pragma(arg: ast.expr) -> bool:
    if not isinstance(arg, ast.JoinedStr):
        return False
    head = arg.values[0]
    if not (isinstance(head, ast.Constant) and str(head.value).startswith("PRAGMA ")):
        return False
    return all(
        isinstance(part, ast.Constant)
        or (
            isinstance(part, ast.FormattedValue)
            and isinstance(part.value, ast.Call)
            and isinstance(part.value.func, ast.Name)
            and part.value.func.id == "int"
        )
        for part in arg.values
    )


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_sql_is_a_literal(path: Path) -> None:
    tree = ast.parse(path.read_text("utf-8"))
    for call in _sql_calls(tree):
        sql = call.args[0]
        literal = isinstance(sql, ast.Constant) and isinstance(sql.value, str)
        # A variable holding a statement is fine when it is a parameter name passed through
        # (the executor layer); a value glued into SQL never is.
        passthrough = isinstance(sql, ast.Name) and sql.id in {"sql", "statement"}
        assert literal or passthrough or _allowed_pragma(sql), (
            f"{path.name}:{call.lineno}: SQL built at run time: {ast.unparse(sql)[:80]}"
        )


def test_the_check_finds_a_built_statement() -> None:
    bad = ast.parse('db.execute(f"SELECT * FROM t WHERE id = {x}")\ndb.execute("A" + y)')
    good = ast.parse('db.execute("SELECT * FROM t WHERE id = ?", (x,))')
    pragma = ast.parse('db.execute(f"PRAGMA user_version = {int(n)}")')
    assert [c.args[0] for c in _sql_calls(bad) if isinstance(c.args[0], ast.Constant)] == []
    assert all(isinstance(c.args[0], ast.Constant) for c in _sql_calls(good))
    assert all(_allowed_pragma(c.args[0]) for c in _sql_calls(pragma))
    assert not any(_allowed_pragma(c.args[0]) for c in _sql_calls(bad))


@pytest.mark.parametrize("path", OUTSIDE, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_sql_outside_storage(path: Path) -> None:
    tree = ast.parse(path.read_text("utf-8"))
    for call in _sql_calls(tree):
        raise AssertionError(f"{path.name}:{call.lineno}: {ast.unparse(call)[:80]} (use a repo)")
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            assert not SQL_TEXT.search(node.value), (
                f"{path.name}:{node.lineno}: SQL outside storage/: {node.value[:60]!r}"
            )
