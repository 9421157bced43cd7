"""Settings from the environment and `.env` (PRODUCT.md section 9).

A bad or missing value stops start-up with one line naming the variable; see `load_settings`.
"""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import (
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from bot.money import MoneyError, to_units

DEFAULT_DAISYSIM_BASE_URL = "https://daisysim.com/api/v1/server7"
DEFAULT_WEBHOOK_LISTEN = "127.0.0.1:8080"
# The port the container image serves /metrics, /healthz and /readyz on (METRICS_LISTEN there).
CONTAINER_METRICS_PORT = 9100


class SettingsError(Exception):
    """One human line naming the variable and what is wrong with it."""


# Telegram usernames: 5-32 letters, digits and underscores.
_USERNAME = re.compile(r"@[A-Za-z][A-Za-z0-9_]{4,31}")
# setWebhook's secret_token: what Telegram accepts in the X-Telegram-Bot-Api-Secret-Token header.
_WEBHOOK_SECRET = re.compile(r"[A-Za-z0-9_-]{1,256}")
# Hosts a plain-http WEBHOOK_URL may name: only a test double on this machine delivers there
# (Telegram itself delivers to https:// only).
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
_ASSET = re.compile(r"[A-Z0-9]{2,10}")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        case_sensitive=False,
    )

    bot_token: SecretStr | None = None
    telegram_api_url: str = "https://api.telegram.org"
    daisysim_api_key: SecretStr | None = None
    daisysim_base_url: str = DEFAULT_DAISYSIM_BASE_URL
    database_path: Path = Path("data/bot.sqlite3")
    # NoDecode: "1,2,3" is not JSON; the validator below splits it.
    admin_ids: Annotated[frozenset[int], NoDecode] = frozenset()
    markup_percent: Decimal = Field(default=Decimal(0), ge=0, le=1000)
    markup_fixed: Decimal = Field(default=Decimal(0), ge=0, le=100)
    # User prices are rounded up to this after the markup: $0.01 means users see and pay cents.
    price_step_usd: Decimal = Field(default=Decimal("0.01"), ge=Decimal("0.0001"), le=100)
    stars_per_usd: int = Field(default=80, ge=1, le=100_000)
    poll_min_interval_seconds: float = Field(default=2.0, gt=0, le=3600)
    cancel_lock_seconds: float = Field(default=180.0, ge=0, le=86_400)
    auto_cancel_after_seconds: float = Field(default=600.0, gt=0, le=86_400)
    low_balance_alert_usd: Decimal = Field(default=Decimal(5), ge=0)
    sandbox_start_balance_usd: Decimal = Field(default=Decimal(10), ge=0, le=1_000_000)
    # The referrer's share of each purchase of a friend they invited (0: referrals earn
    # nothing), up to REFERRAL_CAP_USD per friend.
    referral_percent: Decimal = Field(default=Decimal(0), ge=0, le=100)
    referral_cap_usd: Decimal = Field(default=Decimal(5), ge=0, le=1_000_000)
    # The upstream's clock runs this many times faster. Only for the sandbox in tests and demos:
    # the client's rate-limit windows and the 15 s check cadence shrink by it.
    daisysim_time_scale: float = Field(default=1.0, gt=0, le=10_000)
    # Most places in the purchase queue one wallet (a user, or a group with all its members)
    # may hold at once, so one buyer cannot starve the rest of the upstream's 10 a minute.
    queue_max_places_per_wallet: int = Field(default=3, ge=1, le=100)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    # Operations (issue 16): "json" writes one JSON object a line for a log collector.
    log_format: Literal["text", "json"] = "text"
    # host:port of the /metrics, /healthz and /readyz server in polling mode; off when unset.
    metrics_listen: str | None = None
    # On SIGTERM: how long updates in hand may take to finish before they are cancelled.
    shutdown_grace_seconds: float = Field(default=10.0, gt=0, le=600)
    # On SIGTERM, after the updates and purchases: how long the outbox may keep sending what
    # is due; what it could not send stays in the outbox for the next start.
    outbox_flush_seconds: float = Field(default=5.0, ge=0, le=600)

    # Webhook mode (issue 16): Telegram POSTs updates to WEBHOOK_URL (an https:// URL; its path is
    # the route served) with WEBHOOK_SECRET in a header; the server listens on WEBHOOK_LISTEN
    # behind the operator's reverse proxy. Unset: long polling.
    webhook_url: str | None = None
    # validate_default: an unset secret is an error too when WEBHOOK_URL is set.
    webhook_secret: SecretStr | None = Field(default=None, validate_default=True)
    webhook_listen: str = DEFAULT_WEBHOOK_LISTEN

    @field_validator("webhook_url")
    @classmethod
    def _webhook_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        value = value.strip()
        parts = urlsplit(value)
        if not parts.hostname:
            raise ValueError("must be an https:// URL, e.g. https://bot.example.com/tg/webhook")
        if parts.scheme == "https" or (parts.scheme == "http" and parts.hostname in LOOPBACK_HOSTS):
            return value
        raise ValueError("must be an https:// URL (http:// only for 127.0.0.1 or localhost)")

    @field_validator("webhook_secret")
    @classmethod
    def _webhook_secret(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        if value is not None and not value.get_secret_value():
            value = None
        if info.data.get("webhook_url") is None:
            return value
        if value is None:
            raise ValueError(
                "required when WEBHOOK_URL is set: 1-256 characters of A-Z, a-z, 0-9, _ and -"
            )
        if not _WEBHOOK_SECRET.fullmatch(value.get_secret_value()):
            raise ValueError(
                "must be 1-256 characters of A-Z, a-z, 0-9, _ and - (Telegram's secret_token)"
            )
        return value

    @field_validator("webhook_listen", mode="before")
    @classmethod
    def _default_listen(cls, value: object) -> object:
        # `WEBHOOK_LISTEN=` in .env means the default, as when it is unset.
        return DEFAULT_WEBHOOK_LISTEN if isinstance(value, str) and not value.strip() else value

    # Who users write to about payments and problems: "@username" or an https:// link. Named
    # by /help, /paysupport and every "contact support" line; without it, "an admin".
    support_contact: str | None = None

    @field_validator("support_contact")
    @classmethod
    def _contact(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        value = value.strip()
        if _USERNAME.fullmatch(value) or value.startswith("https://"):
            return value
        raise ValueError("must be a Telegram @username or an https:// link")

    # Daily backups (issue 16): a timestamped copy in BACKUP_DIR at BACKUP_HOUR_UTC, the
    # newest BACKUP_KEEP kept. Off when BACKUP_DIR is unset.
    backup_dir: Path | None = None
    backup_hour_utc: int = Field(default=3, ge=0, le=23)
    backup_keep: int = Field(default=7, ge=1, le=1000)
    # Maintenance mode forced on: new purchases and top-ups paused whatever the admin panel says.
    maintenance: bool = False

    # Crypto Pay top-ups (issue 15): CRYPTOPAY_TOKEN (from @CryptoBot → Crypto Pay → Create
    # App) enables them; in sandbox mode without it a local Crypto Pay takes play money.
    cryptopay_token: SecretStr | None = None
    cryptopay_network: Literal["mainnet", "testnet"] = "mainnet"
    # The assets a payer may choose from; the invoice is in USD whichever they pick.
    cryptopay_assets: Annotated[tuple[str, ...], NoDecode] = ("USDT", "TON", "BTC")
    # Webhook mode: the path (on the METRICS_LISTEN server) Crypto Pay posts paid invoices to;
    # unset, payments are found by polling getInvoices every CRYPTOPAY_POLL_SECONDS.
    cryptopay_webhook_path: str | None = None
    cryptopay_poll_seconds: float = Field(default=5.0, gt=0, le=3600)
    cryptopay_invoice_minutes: int = Field(default=60, ge=1, le=44_640)

    @field_validator("cryptopay_network", mode="before")
    @classmethod
    def _lower_network(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("cryptopay_assets", mode="before")
    @classmethod
    def _split_assets(cls, value: object) -> object:
        if isinstance(value, str):
            value = [p.strip().upper() for p in value.replace(";", ",").split(",") if p.strip()]
        if isinstance(value, list | tuple):
            assets = tuple(str(a).strip().upper() for a in value)
            if not assets or not all(_ASSET.fullmatch(a) for a in assets):
                raise ValueError("must be comma-separated asset codes, e.g. USDT,TON,BTC")
            if len(set(assets)) != len(assets):
                raise ValueError("names an asset twice")
            return assets
        return value

    @field_validator("cryptopay_webhook_path")
    @classmethod
    def _path(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        value = value.strip()
        if not value.startswith("/") or any(c in value for c in " ?#"):
            raise ValueError("must be a URL path starting with /, e.g. /cryptopay/webhook")
        return value

    @field_validator("log_format", mode="before")
    @classmethod
    def _lower(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value

    @field_validator("backup_dir", mode="before")
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        # `BACKUP_DIR=` in .env means "no daily backups", not the current directory.
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("metrics_listen", "webhook_listen")
    @classmethod
    def _host_port(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        host, sep, port = value.strip().rpartition(":")
        if not sep or not host or not port.isdigit() or int(port) > 65535:
            raise ValueError("must be host:port, e.g. 127.0.0.1:9100")
        return value.strip()

    @field_validator("admin_ids", mode="before")
    @classmethod
    def _split_ids(cls, value: object) -> object:
        if isinstance(value, str):
            parts = [p.strip() for p in value.replace(";", ",").split(",") if p.strip()]
            try:
                return frozenset(int(p) for p in parts)
            except ValueError:
                raise ValueError("must be comma-separated numeric Telegram user ids") from None
        if isinstance(value, int):
            return frozenset({value})
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator(
        "markup_fixed",
        "price_step_usd",
        "low_balance_alert_usd",
        "sandbox_start_balance_usd",
        "referral_cap_usd",
    )
    @classmethod
    def _four_decimals(cls, value: Decimal) -> Decimal:
        try:
            to_units(value)
        except MoneyError:
            raise ValueError("must be a USD amount with at most 4 decimals") from None
        return value

    @field_validator("telegram_api_url", "daisysim_base_url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _empty_secrets_are_none(self) -> Settings:
        # `DAISYSIM_API_KEY=` in .env means "use the sandbox", not "a key that is empty".
        if self.daisysim_api_key is not None and not self.daisysim_api_key.get_secret_value():
            self.daisysim_api_key = None
        if self.bot_token is not None and not self.bot_token.get_secret_value():
            self.bot_token = None
        if self.cryptopay_token is not None and not self.cryptopay_token.get_secret_value():
            self.cryptopay_token = None
        return self

    @property
    def webhook_mode(self) -> bool:
        return self.webhook_url is not None

    @property
    def webhook_path(self) -> str:
        """The route Telegram POSTs to: the path of WEBHOOK_URL (`/` when it has none)."""
        return urlsplit(self.webhook_url or "").path or "/"

    @property
    def sandbox_mode(self) -> bool:
        return self.daisysim_api_key is None

    @property
    def cryptopay_enabled(self) -> bool:
        """A token, or sandbox mode (a local Crypto Pay with play money)."""
        return self.cryptopay_token is not None or self.sandbox_mode

    @property
    def markup_fixed_units(self) -> int:
        return to_units(self.markup_fixed)

    @property
    def price_step_units(self) -> int:
        return to_units(self.price_step_usd)

    @property
    def low_balance_alert_units(self) -> int:
        return to_units(self.low_balance_alert_usd)

    @property
    def sandbox_start_balance_units(self) -> int:
        return to_units(self.sandbox_start_balance_usd)

    @property
    def referral_cap_units(self) -> int:
        return to_units(self.referral_cap_usd)


def describe_validation_error(exc: ValidationError) -> str:
    """The first problem as one line: `MARKUP_PERCENT: must be ≥ 0 (got '-5')`."""
    err = exc.errors()[0]
    name = str(err["loc"][0]).upper() if err["loc"] else "settings"
    msg = str(err["msg"])
    msg = msg.removeprefix("Value error, ")
    value = err.get("input")
    secret = any(word in name for word in ("SECRET", "TOKEN", "KEY"))
    shown = "" if value is None or secret else f" (got {value!r})"
    return f"{name}: {msg}{shown}"


def load_settings(*, require_token: bool = True, env_file: str | None = ".env") -> Settings:
    """Read and validate settings; raise SettingsError with one line on any problem."""
    try:
        settings = Settings(_env_file=env_file)
    except ValidationError as exc:
        raise SettingsError(describe_validation_error(exc)) from None
    if require_token and settings.bot_token is None:
        raise SettingsError(
            "BOT_TOKEN: missing — get one from @BotFather and put it in .env or the environment "
            "(or run `daisybot demo` to try the bot without Telegram)"
        )
    return settings
