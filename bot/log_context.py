"""Which update, user and activation a log line is about, for `LOG_FORMAT=json`.

Context variables, so they follow the work across awaits and into the tasks it starts: the
update middleware binds the update and user, the poller and the purchase queue bind the
activation they are settling or sending. `JsonFormatter` writes them into each line; the text
format leaves them out (its lines already name what they are about).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

_FIELDS: dict[str, ContextVar[int | None]] = {
    name: ContextVar(f"daisybot_log_{name}", default=None)
    for name in ("update_id", "user_id", "activation_id")
}


@contextmanager
def bound(
    *,
    update_id: int | None = None,
    user_id: int | None = None,
    activation_id: int | None = None,
) -> Iterator[None]:
    """Lines logged inside the block carry the ids given (None leaves one as it was)."""
    given = {"update_id": update_id, "user_id": user_id, "activation_id": activation_id}
    tokens = [
        (_FIELDS[name], _FIELDS[name].set(value))
        for name, value in given.items()
        if value is not None
    ]
    try:
        yield
    finally:
        for var, token in reversed(tokens):
            var.reset(token)


def current() -> dict[str, int]:
    """The ids bound here, by name."""
    return {name: value for name, var in _FIELDS.items() if (value := var.get()) is not None}


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time (UTC, ISO 8601), level, logger, message, the bound ids,
    and the traceback as `exc` when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update(current())
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exc"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, ensure_ascii=False, default=str)
