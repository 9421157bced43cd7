"""Build aiogram's pydantic models when they are first used, not all 400 of them at import.

`aiogram.types` ends with a loop that calls `model_rebuild()` on every Bot API type, passing a
namespace that holds all of them (most type modules import their neighbours only under
TYPE_CHECKING). Many of those types reference each other in cycles (Message -> Chat ->
Message), so each one built on its own carries its own copy of the whole cycle's validators:
about 110 MB of the bot's memory and 4 s of its start-up, for types a shop bot never receives.
The types themselves are declared with `defer_build=True`, which pydantic honours everywhere
except in that explicit loop.

`install()` puts a one-shot import hook in front of `aiogram.types`. While that one module
executes, the loop's rebuilds are skipped; afterwards the names of its namespace are added to
each type module's globals, so that pydantic's own deferred build (on first validation, or when
a model that nests the type is built) resolves every forward reference exactly as the loop
would have. Nothing of aiogram's code is changed, and when aiogram has already been imported,
or its types module no longer passes that namespace, the import happens as before.
"""

from __future__ import annotations

import contextlib
import importlib.abc
import importlib.machinery
import sys
from collections.abc import Iterator, Mapping, Sequence
from types import ModuleType
from typing import Any

TYPES_MODULE = "aiogram.types"


def install() -> None:
    """Defer aiogram's type builds, if aiogram has not been imported yet. Idempotent."""
    if TYPES_MODULE in sys.modules:
        return
    if any(isinstance(finder, _TypesFinder) for finder in sys.meta_path):
        return
    sys.meta_path.insert(0, _TypesFinder())


def warm_up() -> None:
    """Build, before the first update, the two types every update and every reply goes through
    (`Update`, and `Message`, which the answers of sendMessage and editMessageText are), so the
    first user does not wait for them. Anything nesting them later reuses their validators."""
    from aiogram.types import Message, Update

    for model in (Message, Update):
        model.model_rebuild()


class _TypesFinder(importlib.abc.MetaPathFinder):
    """Finds `aiogram.types` with the standard path finder and wraps its loader; one use."""

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname != TYPES_MODULE:
            return None
        sys.meta_path.remove(self)
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or spec.loader is None:
            return spec
        spec.loader = _DeferringLoader(spec.loader)
        return spec


class _DeferringLoader(importlib.abc.Loader):
    def __init__(self, inner: importlib.abc.Loader) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        # get_source, get_filename, is_package...: whatever else asks the loader.
        return getattr(self._inner, name)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self._inner.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        with _skipping_type_rebuilds() as namespaces:
            self._inner.exec_module(module)
        if namespaces:
            _publish(namespaces[-1])


@contextlib.contextmanager
def _skipping_type_rebuilds() -> Iterator[list[Mapping[str, Any]]]:
    """While the types module runs, `model_rebuild(_types_namespace=...)` on one of its classes
    only records the namespace. Every other rebuild goes through untouched."""
    from pydantic import BaseModel

    seen: list[Mapping[str, Any]] = []
    original = BaseModel.__dict__["model_rebuild"]
    rebuild = original.__func__

    def model_rebuild(cls: type[BaseModel], *args: Any, **kwargs: Any) -> bool | None:
        namespace = kwargs.get("_types_namespace")
        if namespace is not None and cls.__module__.startswith(TYPES_MODULE + "."):
            if not seen or seen[-1] is not namespace:
                seen.append(namespace)
            return None
        result: bool | None = rebuild(cls, *args, **kwargs)
        return result

    setattr(BaseModel, "model_rebuild", classmethod(model_rebuild))  # noqa: B010
    try:
        yield seen
    finally:
        setattr(BaseModel, "model_rebuild", original)  # noqa: B010


def _publish(namespace: Mapping[str, Any]) -> None:
    """Give every type module the names its annotations use: what the skipped loop would have
    passed to each build. Names a module defines itself are left alone."""
    prefix = TYPES_MODULE + "."
    for name, module in list(sys.modules.items()):
        if module is not None and name.startswith(prefix):
            module_globals = vars(module)
            for key, value in namespace.items():
                module_globals.setdefault(key, value)
