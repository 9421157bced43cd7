"""What a buyer waiting in line reads: place, estimate steps, and the way out, in both
languages (pure functions, no Telegram)."""

from __future__ import annotations

import time

import pytest

from bot.telegram.callbacks import QueueAction, QueueCb
from bot.telegram.i18n import I18n
from bot.telegram.queue_notify import estimate_bucket, ordinal_category, render_place, wait_text
from storage.models import Activation


def activation(**changes: object) -> Activation:
    values: dict[str, object] = {
        "id": 42,
        "user_id": 1,
        "wallet_id": 1,
        "chat_id": 1,
        "state": "purchasing",
        "service_code": "WhatsApp",
        "service_name": "WhatsApp",
        "provider_id": None,
        "country": "USA",
        "user_price": 18_500,
        "upstream_price": 18_500,
        "upstream_amount": None,
        "idempotency_key": "1:k",
        "recon_token": "a000000001",
        "upstream_id": None,
        "phone_number": None,
        "code": None,
        "error_code": None,
        "created_at": time.time(),
        "purchased_at": None,
        "cancel_after": None,
        "completed_at": None,
        "finished_at": None,
        "card_chat_id": None,
        "card_message_id": None,
        "next_poll_at": None,
        "poll_attempts": 0,
    }
    values.update(changes)
    return Activation(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("seconds", "bucket"),
    [
        (0, 0),
        (4.9, 0),
        (5, 0),
        (5.1, 10),
        (19, 20),
        (20, 20),
        (119, 120),
        (120, 120),
        (121, 180),
        (600, 600),
        (601, 660),
    ],
)
def test_estimates_move_in_steps_that_grow_with_them(seconds: float, bucket: int) -> None:
    assert estimate_bucket(seconds) == bucket


def test_wait_texts() -> None:
    t = I18n().translator("en")
    assert wait_text(t, 1) == "any moment now"
    assert wait_text(t, 17) == "about 20 s"
    assert wait_text(t, 200) == "about 4 min"
    ru = I18n().translator("ru")
    assert wait_text(ru, 17) == "примерно 20 с"


@pytest.mark.parametrize(
    ("place", "shown"),
    [
        (1, "1st"),
        (2, "2nd"),
        (3, "3rd"),
        (4, "4th"),
        (11, "11th"),
        (12, "12th"),
        (13, "13th"),
        (21, "21st"),
        (22, "22nd"),
        (103, "103rd"),
    ],
)
def test_english_places_read_as_ordinals(place: int, shown: str) -> None:
    t = I18n().translator("en")
    text, _ = render_place(activation(), place, 20, t)
    assert f"You are <b>{shown} in line</b>, about 20 s." in text


def test_the_place_message_says_what_is_held_and_offers_the_way_out() -> None:
    t = I18n().translator("en")
    text, markup = render_place(activation(), 3, 25, t)
    assert text.startswith("⏳ <b>WhatsApp</b> — $1.85 is held for you.")
    assert "3rd in line" in text
    [[button]] = markup.inline_keyboard
    assert button.text == "✖️ Leave the line"
    assert QueueCb.unpack(button.callback_data or "") == QueueCb(action=QueueAction.LEAVE, id=42)


def test_russian_place_message() -> None:
    t = I18n().translator("ru")
    text, markup = render_place(activation(), 3, 25, t)
    assert "Вы <b>3-й в очереди</b>, примерно 30 с." in text
    assert markup.inline_keyboard[0][0].text == "✖️ Выйти из очереди"


def test_ordinal_categories() -> None:
    assert [ordinal_category("en", n) for n in (1, 2, 3, 4)] == ["one", "two", "few", "other"]
    assert ordinal_category("ru", 3) == "other"
    assert ordinal_category("xx-not-a-language", 1) == "other"
