"""Settings: one clear line for each bad value, secrets never shown."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bot.config import SettingsError, load_settings

ROOT = Path(__file__).resolve().parents[1]
VARS = ("BOT_TOKEN", "ADMIN_IDS", "MARKUP_PERCENT", "MARKUP_FIXED", "DAISYSIM_API_KEY", "LOG_LEVEL")


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in VARS:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_defaults_and_sandbox_mode(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("BOT_TOKEN", "123:abc")
    settings = load_settings(env_file=None)
    assert settings.sandbox_mode
    assert settings.stars_per_usd == 80
    assert settings.admin_ids == frozenset()
    assert settings.markup_fixed_units == 0


def test_admin_ids_are_parsed(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("BOT_TOKEN", "123:abc")
    clean_env.setenv("ADMIN_IDS", " 1, 22 ,333")
    assert load_settings(env_file=None).admin_ids == frozenset({1, 22, 333})


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("ADMIN_IDS", "abc", "ADMIN_IDS: must be comma-separated numeric Telegram user ids"),
        ("MARKUP_PERCENT", "-5", "MARKUP_PERCENT: Input should be greater than or equal to 0"),
        ("MARKUP_FIXED", "0.12345", "MARKUP_FIXED: must be a USD amount with at most 4 decimals"),
        ("LOG_LEVEL", "loud", "LOG_LEVEL:"),
        ("SUPPORT_CONTACT", "bob", "SUPPORT_CONTACT: must be a Telegram @username or an https://"),
        ("SUPPORT_CONTACT", "@bob", "SUPPORT_CONTACT: must be a Telegram @username"),
    ],
)
def test_bad_values_name_the_variable(
    clean_env: pytest.MonkeyPatch, name: str, value: str, expected: str
) -> None:
    clean_env.setenv("BOT_TOKEN", "123:abc")
    clean_env.setenv(name, value)
    with pytest.raises(SettingsError) as info:
        load_settings(env_file=None)
    assert str(info.value).startswith(expected)
    assert "\n" not in str(info.value)


def test_missing_token_is_one_line(clean_env: pytest.MonkeyPatch) -> None:
    with pytest.raises(SettingsError, match=r"^BOT_TOKEN: missing"):
        load_settings(env_file=None)


def test_secret_never_printed(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("BOT_TOKEN", "123:very-secret-token")
    clean_env.setenv("DAISYSIM_API_KEY", "key-very-secret")
    settings = load_settings(env_file=None)
    assert not settings.sandbox_mode
    text = repr(settings) + str(settings)
    assert "very-secret" not in text


def _run_cli(env_extra: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in VARS}
    env.update(env_extra)
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        cwd=ROOT / "tests",  # no .env there, whatever the developer keeps at the top
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_python_m_bot_without_token_prints_one_line_and_fails() -> None:
    result = _run_cli({})
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("daisybot: BOT_TOKEN: missing")
    assert "Traceback" not in result.stderr


def test_python_m_bot_bad_value_names_it() -> None:
    result = _run_cli({"BOT_TOKEN": "1:x", "MARKUP_PERCENT": "-5"})
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "daisybot: MARKUP_PERCENT: Input should be greater than or equal to 0 (got '-5')"
    )
