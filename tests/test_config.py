"""Settings: one clear line for each bad value, secrets never shown."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bot.config import SettingsError, load_settings

ROOT = Path(__file__).resolve().parents[1]
VARS = (
    "BOT_TOKEN",
    "ADMIN_IDS",
    "MARKUP_PERCENT",
    "MARKUP_FIXED",
    "DAISYSIM_API_KEY",
    "LOG_LEVEL",
    "CRYPTOPAY_TOKEN",
    "CRYPTOPAY_NETWORK",
    "CRYPTOPAY_ASSETS",
    "CRYPTOPAY_WEBHOOK_PATH",
)


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
        ("CRYPTOPAY_NETWORK", "moon", "CRYPTOPAY_NETWORK: Input should be 'mainnet' or"),
        ("CRYPTOPAY_ASSETS", "USDT,,$$", "CRYPTOPAY_ASSETS: must be comma-separated asset codes"),
        ("CRYPTOPAY_ASSETS", "TON,ton", "CRYPTOPAY_ASSETS: names an asset twice"),
        ("CRYPTOPAY_WEBHOOK_PATH", "hook", "CRYPTOPAY_WEBHOOK_PATH: must be a URL path"),
        ("CRYPTOPAY_POLL_SECONDS", "0", "CRYPTOPAY_POLL_SECONDS: Input should be greater than 0"),
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


def test_crypto_pay_settings(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("BOT_TOKEN", "123:abc")
    clean_env.setenv("DAISYSIM_API_KEY", "live")
    settings = load_settings(env_file=None)
    assert settings.cryptopay_token is None
    assert not settings.cryptopay_enabled  # live upstream, no token: off
    assert settings.cryptopay_network == "mainnet"
    assert settings.cryptopay_assets == ("USDT", "TON", "BTC")
    assert settings.cryptopay_webhook_path is None
    clean_env.setenv("CRYPTOPAY_TOKEN", "777:crypto-very-secret")
    clean_env.setenv("CRYPTOPAY_NETWORK", "Testnet")
    clean_env.setenv("CRYPTOPAY_ASSETS", " usdt, TON ")
    clean_env.setenv("CRYPTOPAY_WEBHOOK_PATH", "/cryptopay/webhook")
    settings = load_settings(env_file=None)
    assert settings.cryptopay_enabled
    assert settings.cryptopay_network == "testnet"
    assert settings.cryptopay_assets == ("USDT", "TON")
    assert settings.cryptopay_webhook_path == "/cryptopay/webhook"
    assert "very-secret" not in repr(settings) + str(settings)
    clean_env.setenv("CRYPTOPAY_TOKEN", "")
    clean_env.delenv("DAISYSIM_API_KEY")
    settings = load_settings(env_file=None)
    assert settings.cryptopay_token is None
    assert settings.cryptopay_enabled  # sandbox mode: the local Crypto Pay


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


def test_the_crypto_pay_token_never_reaches_a_log_line(clean_env: pytest.MonkeyPatch) -> None:
    import io
    import logging

    from bot.app import log_formatter

    clean_env.setenv("BOT_TOKEN", "123:abc")
    clean_env.setenv("CRYPTOPAY_TOKEN", "777:crypto-very-secret")
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(log_formatter(load_settings(env_file=None)))
    logger = logging.getLogger("tests.redaction")
    logger.addHandler(handler)
    try:
        logger.warning("POST with 777:crypto-very-secret")
    finally:
        logger.removeHandler(handler)
    assert "very-secret" not in stream.getvalue()
    assert "POST with ***" in stream.getvalue()
