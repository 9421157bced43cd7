"""LOG_FORMAT, METRICS_LISTEN and the webhook settings: parsed, or refused with one line naming
the variable."""

from __future__ import annotations

import pytest

from bot.config import DEFAULT_WEBHOOK_LISTEN, SettingsError, load_settings
from bot.telegram.ops_web import parse_listen

OPS_VARIABLES = (
    "LOG_FORMAT",
    "METRICS_LISTEN",
    "BOT_TOKEN",
    "WEBHOOK_URL",
    "WEBHOOK_SECRET",
    "WEBHOOK_LISTEN",
)


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in OPS_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("BOT_TOKEN", "1:x")
    return monkeypatch


def test_defaults_are_text_logs_and_no_metrics_server(env: pytest.MonkeyPatch) -> None:
    settings = load_settings(env_file=None)
    assert settings.log_format == "text"
    assert settings.metrics_listen is None


def test_values_are_read(env: pytest.MonkeyPatch) -> None:
    env.setenv("LOG_FORMAT", "JSON")
    env.setenv("METRICS_LISTEN", "0.0.0.0:9100")
    settings = load_settings(env_file=None)
    assert settings.log_format == "json"
    assert settings.metrics_listen == "0.0.0.0:9100"
    assert parse_listen(settings.metrics_listen) == ("0.0.0.0", 9100)
    assert parse_listen("[::1]:9100") == ("::1", 9100)


def test_an_empty_metrics_listen_is_off(env: pytest.MonkeyPatch) -> None:
    env.setenv("METRICS_LISTEN", "")
    assert load_settings(env_file=None).metrics_listen is None


@pytest.mark.parametrize(
    ("name", "value"),
    [("METRICS_LISTEN", "9100"), ("METRICS_LISTEN", "host:port"), ("LOG_FORMAT", "xml")],
)
def test_bad_values_name_the_variable(env: pytest.MonkeyPatch, name: str, value: str) -> None:
    env.setenv(name, value)
    with pytest.raises(SettingsError, match=f"^{name}: "):
        load_settings(env_file=None)


def test_without_webhook_url_it_polls(env: pytest.MonkeyPatch) -> None:
    env.setenv("WEBHOOK_URL", "")
    settings = load_settings(env_file=None)
    assert not settings.webhook_mode
    assert settings.webhook_listen == DEFAULT_WEBHOOK_LISTEN


def test_webhook_settings_are_read(env: pytest.MonkeyPatch) -> None:
    env.setenv("WEBHOOK_URL", "https://bot.example.com/tg/hook")
    env.setenv("WEBHOOK_SECRET", "s3cret_-XYZ")
    env.setenv("WEBHOOK_LISTEN", "0.0.0.0:8080")
    settings = load_settings(env_file=None)
    assert settings.webhook_mode
    assert settings.webhook_path == "/tg/hook"
    assert settings.webhook_listen == "0.0.0.0:8080"
    assert settings.webhook_secret is not None
    assert settings.webhook_secret.get_secret_value() == "s3cret_-XYZ"


@pytest.mark.parametrize("url", ["http://127.0.0.1:8443/hook", "http://localhost/hook"])
def test_plain_http_is_accepted_for_loopback_only(env: pytest.MonkeyPatch, url: str) -> None:
    env.setenv("WEBHOOK_URL", url)
    env.setenv("WEBHOOK_SECRET", "x")
    assert load_settings(env_file=None).webhook_url == url


@pytest.mark.parametrize(
    ("url", "secret", "line"),
    [
        ("https://bot.example.com/hook", None, "^WEBHOOK_SECRET: required when WEBHOOK_URL"),
        ("https://bot.example.com/hook", "", "^WEBHOOK_SECRET: required when WEBHOOK_URL"),
        ("https://bot.example.com/hook", "with space", "^WEBHOOK_SECRET: must be 1-256"),
        ("https://bot.example.com/hook", "x" * 257, "^WEBHOOK_SECRET: must be 1-256"),
        ("http://bot.example.com/hook", "S3cr3t", "^WEBHOOK_URL: must be an https:// URL"),
        ("ftp://bot.example.com/hook", "S3cr3t", "^WEBHOOK_URL: must be an https:// URL"),
        ("bot.example.com/hook", "S3cr3t", "^WEBHOOK_URL: must be an https:// URL"),
    ],
)
def test_bad_webhook_settings_are_one_line(
    env: pytest.MonkeyPatch, url: str, secret: str | None, line: str
) -> None:
    env.setenv("WEBHOOK_URL", url)
    if secret is not None:
        env.setenv("WEBHOOK_SECRET", secret)
    with pytest.raises(SettingsError, match=line) as caught:
        load_settings(env_file=None)
    assert "\n" not in str(caught.value)
    if secret:
        assert secret not in str(caught.value)


def test_a_bad_webhook_listen_names_the_variable(env: pytest.MonkeyPatch) -> None:
    env.setenv("WEBHOOK_LISTEN", "8080")
    with pytest.raises(SettingsError, match=r"^WEBHOOK_LISTEN: "):
        load_settings(env_file=None)
