"""Every text exists in English and Russian with the same variables, and renders."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from bot.telegram.i18n import LANGUAGES, I18n, language_for

ROOT = Path(__file__).resolve().parents[2]


def test_every_key_exists_in_every_language_with_the_same_variables() -> None:
    i18n = I18n()
    english = i18n.message_variables("en")
    assert len(english) > 50
    for lang in LANGUAGES:
        other = i18n.message_variables(lang)
        assert set(other) == set(english), (lang, set(other) ^ set(english))
        for key, variables in english.items():
            assert other[key] == variables, (lang, key)


def _keys_used_in_code() -> set[str]:
    """Literal keys passed to a translator (`t("...")` / `t.plain("...")`) in the bot layer."""
    used: set[str] = set()
    files = [*ROOT.joinpath("handlers").rglob("*.py"), *ROOT.joinpath("bot").rglob("*.py")]
    for path in files:
        for node in ast.walk(ast.parse(path.read_text("utf-8"))):
            if not isinstance(node, ast.Call) or not node.args:
                continue
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            first = node.args[0]
            literal = isinstance(first, ast.Constant) and isinstance(first.value, str)
            if name in {"t", "plain"} and literal:
                used.add(first.value)  # type: ignore[attr-defined]
    return used


def test_every_literal_key_in_the_code_exists() -> None:
    keys = set(I18n().message_variables("en"))
    used = _keys_used_in_code()
    assert len(used) > 40
    assert used - keys == set()


def test_composed_keys_exist() -> None:
    keys = set(I18n().message_variables("en"))
    states = ["purchasing", "unknown", "waiting", "completed", "cancelled", "expired", "failed"]
    kinds = [
        "topup",
        "stars",
        "purchase",
        "refund",
        "transfer_in",
        "transfer_out",
        "adjustment",
        "sandbox_bonus",
        "other",
    ]
    for state in states:
        assert f"card-status-{state}" in keys
        assert f"numbers-status-{state}" in keys
    for kind in kinds:
        assert f"ledger-kind-{kind}" in keys
    for name in ("start", "buy", "numbers", "balance", "help"):
        assert f"cmd-{name}" in keys
    for lang in LANGUAGES:
        assert f"language-{lang}" in keys


@pytest.mark.parametrize("lang", LANGUAGES)
def test_every_message_renders_without_errors(lang: str) -> None:
    i18n = I18n()
    t = i18n.translator(lang)
    for key, variables in i18n.message_variables(lang).items():
        text = t(key, **{v: "x" for v in variables})
        assert text, (lang, key)
        assert "{" not in text, (lang, key, text)
        assert key not in text, (lang, key, text)


def test_arguments_are_escaped_in_html_but_not_in_button_labels() -> None:
    t = I18n().translator("en")
    assert t("service-button", name="A&B <x>", price="$1") == "A&amp;B &lt;x&gt; — $1"
    assert t.plain("service-button", name="A&B <x>", price="$1") == "A&B <x> — $1"


def test_russian_texts_have_no_english_words() -> None:
    i18n = I18n()
    allowed = {"English"}  # the language picker names each language in itself
    # A payment service's name, its bot and asset tickers are written so in every language.
    allowed |= {"Crypto", "Pay", "CryptoBot", "USDT", "TON", "BTC"}
    for key in i18n.message_variables("ru"):
        text = i18n.translator("ru").plain(
            key, **{v: "1" for v in i18n.message_variables("ru")[key]}
        )
        # Literal input shown in <code> (a command with its arguments, a CSV column) and
        # /commands are typed as they are in every language.
        text = re.sub(r"<code>.*?</code>", "", text, flags=re.S)
        text = re.sub(r"<[^>]+>", "", text)
        text = re.sub(r"(?<![\w/])/[a-z_]+", "", text)
        words = set(re.findall(r"[A-Za-z]{2,}", text)) - allowed
        assert words == set(), (key, words)


@pytest.mark.parametrize(
    ("code", "lang"),
    [("ru", "ru"), ("ru-RU", "ru"), ("en", "en"), ("de", "en"), (None, "en"), ("", "en")],
)
def test_language_from_telegram(code: str | None, lang: str) -> None:
    assert language_for(code) == lang
