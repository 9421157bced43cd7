"""User-facing text from Fluent files: ``bot/locales/<lang>/*.ftl``.

Every string a user reads comes from here. Messages are sent with ``parse_mode=HTML``, so
``Translator.__call__`` escapes string arguments (a service called ``A&B`` must not break the
message); button labels and callback answers are not HTML, so ``Translator.plain`` leaves them
as they are.
"""

from __future__ import annotations

import html
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

from babel import Locale
from babel.dates import format_date
from babel.numbers import format_currency
from fluent.runtime import FluentBundle, FluentResource
from fluent.syntax import ast as ftl

from bot.money import to_decimal

logger = logging.getLogger(__name__)

DEFAULT_LANGUAGE = "en"
LANGUAGES: tuple[str, ...] = ("en", "ru")
LOCALES_DIR = Path(__file__).resolve().parent / "locales"

Arg = str | int


def language_for(telegram_code: str | None) -> str:
    """The bot's language for a Telegram ``language_code``: Russian for ru*, else English."""
    if telegram_code and telegram_code.lower().split("-")[0] == "ru":
        return "ru"
    return DEFAULT_LANGUAGE


@dataclass(frozen=True, slots=True)
class Translator:
    """Text in one language. Cheap to create; handlers receive one per update."""

    lang: str
    _bundle: FluentBundle

    def __call__(self, key: str, /, **args: Arg) -> str:
        """HTML-safe text: string arguments are escaped, the pattern itself may hold markup."""
        escaped = {
            k: html.escape(v, quote=False) if isinstance(v, str) else v for k, v in args.items()
        }
        return self._format(key, escaped)

    def plain(self, key: str, /, **args: Arg) -> str:
        """Text for button labels and callback answers, which Telegram does not parse as HTML."""
        return self._format(key, dict(args))

    def usd(self, units: int) -> str:
        """An amount in the user's language: "$1,234.50" / "1 234,50 $"; two decimals, up to
        four when the amount has them (an upstream cost of $1.083 is never shown rounded)."""
        return format_currency(
            to_decimal(units),
            "USD",
            format=_currency_pattern(self.lang),
            locale=self.lang,
            currency_digits=False,
        )

    def when(self, timestamp: float) -> str:
        """A UTC time in the user's language: "Dec 4, 2026 13:05" / "4 дек. 2026 г. 13:05"."""
        moment = datetime.fromtimestamp(timestamp, UTC)
        return f"{format_date(moment, 'medium', locale=self.lang)} {moment:%H:%M}"

    def _format(self, key: str, args: Mapping[str, Arg]) -> str:
        if not self._bundle.has_message(key):
            # A missing key is a bug, but showing the key beats crashing the user's update.
            logger.error("missing translation %s for %s", key, self.lang)
            return key
        message = self._bundle.get_message(key)
        if message.value is None:
            logger.error("translation %s for %s has no value", key, self.lang)
            return key
        text, errors = self._bundle.format_pattern(message.value, dict(args))
        for error in errors:
            logger.error("translation %s for %s: %s", key, self.lang, error)
        return str(text)


@cache
def _currency_pattern(lang: str) -> str:
    # The locale's own currency pattern (sign, symbol side, grouping), with the two fixed
    # decimals widened to "up to four".
    pattern = str(Locale.parse(lang).currency_formats["standard"].pattern)
    return pattern.split(";")[0].replace("0.00", "0.00##")


class I18n:
    """All languages' bundles, loaded once at start-up."""

    def __init__(
        self, locales_dir: Path = LOCALES_DIR, languages: Iterable[str] = LANGUAGES
    ) -> None:
        self.languages = tuple(languages)
        self._bundles: dict[str, FluentBundle] = {}
        self._resources: dict[str, list[ftl.Resource]] = {}
        for lang in self.languages:
            # use_isolating=False: the Unicode isolation marks Fluent adds around arguments would
            # end up inside numbers a user copies and prices a test compares.
            bundle = FluentBundle([lang], use_isolating=False)
            resources: list[ftl.Resource] = []
            files = sorted((locales_dir / lang).glob("*.ftl"))
            if not files:
                raise FileNotFoundError(f"no .ftl files for language {lang!r} in {locales_dir}")
            for path in files:
                resource = FluentResource(path.read_text(encoding="utf-8"))
                for entry in resource.body:
                    if isinstance(entry, ftl.Junk):
                        raise ValueError(f"{path}: cannot parse {(entry.content or '')[:60]!r}")
                bundle.add_resource(resource)
                resources.append(resource)
            self._bundles[lang] = bundle
            self._resources[lang] = resources

    def translator(self, lang: str | None) -> Translator:
        code = lang if lang is not None and lang in self._bundles else DEFAULT_LANGUAGE
        return Translator(code, self._bundles[code])

    def message_variables(self, lang: str) -> dict[str, frozenset[str]]:
        """Every message key of a language with the variables it uses (for the parity test)."""
        result: dict[str, frozenset[str]] = {}
        for resource in self._resources[lang]:
            for entry in resource.body:
                if isinstance(entry, ftl.Message):
                    result[entry.id.name] = frozenset(_variables(entry))
        return result


def _variables(node: Any) -> set[str]:
    """Names of ``{ $var }`` references anywhere under an AST node."""
    found: set[str] = set()
    if isinstance(node, ftl.VariableReference):
        found.add(node.id.name)
    if isinstance(node, ftl.BaseNode):
        for value in vars(node).values():
            if isinstance(value, list):
                for item in value:
                    found |= _variables(item)
            else:
                found |= _variables(value)
    return found
