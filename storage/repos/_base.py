"""What every repository shares: the executor it runs a statement on, and two helpers.

Reads take an optional `tx=` so they can run inside a caller's transaction (the database lock
is not re-entrant); writes that must be atomic with others take the transaction handle as their
first argument. Values always travel as `?` parameters; a variable list of states travels as
ONE JSON parameter read by `json_each`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from typing import Any, Protocol

from storage.db import Database, ExecResult, Params, Row, Transaction


class Executor(Protocol):
    async def execute(self, sql: str, params: Params = ()) -> ExecResult: ...
    async def fetch_one(self, sql: str, params: Params = ()) -> Row | None: ...
    async def fetch_all(self, sql: str, params: Params = ()) -> list[Row]: ...
    async def fetch_value(self, sql: str, params: Params = ()) -> Any: ...


def timestamp(now: float | None) -> float:
    """`now` when the caller fixed the time (tests, one clock for a whole operation)."""
    return time.time() if now is None else now


def json_list(values: Iterable[object]) -> str:
    """A variable list as one parameter, for `IN (SELECT value FROM json_each(?))`."""
    return json.dumps(list(values))


class RepoBase:
    def __init__(self, db: Database) -> None:
        self._db = db

    def _q(self, tx: Transaction | None) -> Executor:
        return tx if tx is not None else self._db
