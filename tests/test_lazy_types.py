"""bot/lazy_types.py: aiogram's Bot API types are built on first use, and built the same.

Each check runs in a fresh interpreter: whether aiogram builds its types at import depends on
what was imported before it, and this test process has long imported both.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

# Every model of aiogram.types and aiogram.methods, built, and described by its fields as
# resolved (the forward references are what a deferred build could resolve differently); a
# digest of the lot is printed. (Their JSON schemas say the same at three times the cost.)
FIELDS = """
import hashlib, json, re, sys
import aiogram.methods as methods
import aiogram.types as types
from pydantic import BaseModel

found = {}
for prefix, module in (("types.", types), ("methods.", methods)):
    for name in module.__all__:
        model = getattr(module, name)
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            continue
        model.model_rebuild()
        fields = {key: repr(info) for key, info in model.model_fields.items()}
        found[prefix + name] = [model.__pydantic_complete__, fields]
blob = re.sub(r" at 0x[0-9a-f]+", "", json.dumps(found, sort_keys=True))
hooks = sum(type(finder).__module__ == "bot.lazy_types" for finder in sys.meta_path)
print(json.dumps({
    "models": len(found),
    "digest": hashlib.sha256(blob.encode()).hexdigest(),
    "hooks_left": hooks,
}))
"""


def _start(code: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _result(process: subprocess.Popen[str]) -> dict[str, Any]:
    out, err = process.communicate(timeout=120)
    assert process.returncode == 0, err
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


def _run(code: str) -> dict[str, Any]:
    return _result(_start(code))


def test_importing_the_bot_first_leaves_aiogram_types_unbuilt_until_used() -> None:
    result = _run(
        """
        import json
        import bot  # noqa: F401
        import aiogram.types as types
        from aiogram import Bot, Dispatcher  # noqa: F401
        from pydantic import BaseModel

        models = [getattr(types, n) for n in types.__all__]
        models = [m for m in models if isinstance(m, type) and issubclass(m, BaseModel)]
        built_at_import = sum(m.__pydantic_complete__ for m in models)
        update = types.Update.model_validate(
            {"update_id": 1, "message": {"message_id": 5, "date": 0, "text": "hi",
             "chat": {"id": 7, "type": "private"}, "from": {"id": 7, "is_bot": False,
             "first_name": "Ann"}}}
        )
        print(json.dumps({
            "models": len(models),
            "built_at_import": built_at_import,
            "text": update.message.text,
            "chat": type(update.message.chat).__name__,
            "built_after_one_update": sum(m.__pydantic_complete__ for m in models),
        }))
        """
    )
    assert result["models"] > 300
    assert result["built_at_import"] == 0
    assert (result["text"], result["chat"]) == ("hi", "Chat")
    # The update's validator carries the nested types it needs; they are not built apart.
    assert result["built_after_one_update"] < 10


def test_every_type_and_method_is_built_exactly_as_aiogram_builds_it() -> None:
    # Side by side: each takes a few seconds of one core. In the first, aiogram is imported
    # before the bot, so it builds everything itself and the bot's hook must stay out.
    eager_run = _start("import aiogram.types\nimport bot  # noqa: F401\n" + FIELDS)
    lazy_run = _start("import bot  # noqa: F401\n" + FIELDS)
    eager, lazy = _result(eager_run), _result(lazy_run)
    assert eager["models"] > 500
    # The hook is used once and removed; installed after aiogram, it is never added.
    assert eager["hooks_left"] == 0
    assert lazy == eager
