"""LOG_FORMAT and METRICS_LISTEN: parsed, or refused with one line naming the variable."""

from __future__ import annotations

import pytest

from bot.config import SettingsError, load_settings
from bot.telegram.ops_web import parse_listen

OPS_VARIABLES = ("LOG_FORMAT", "METRICS_LISTEN", "BOT_TOKEN")


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
