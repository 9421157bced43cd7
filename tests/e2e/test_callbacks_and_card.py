"""Callback data stays within Telegram's 64 bytes, and the card renders from stored state."""

from __future__ import annotations

import dataclasses

import pytest
from aiogram.filters.callback_data import CallbackData

from bot.services.catalogue import service_ref
from bot.telegram.callbacks import (
    MAX_CALLBACK_BYTES,
    ActAction,
    ActCb,
    BuyCb,
    HistoryCb,
    HistoryFilter,
    MenuAction,
    MenuCb,
    ServiceAction,
    ServiceCb,
    ServicesCb,
    new_nonce,
)
from bot.telegram.i18n import I18n
from bot.telegram.texts import format_countdown, format_duration, render_card, render_code_message
from storage.models import Activation

LONGEST_REF = service_ref("x" * 200)


@pytest.mark.parametrize(
    "data",
    [
        MenuCb(action=MenuAction.NUMBERS),
        ServicesCb(country="USA", page=999),
        ServiceCb(action=ServiceAction.STAR, country="USA", ref=LONGEST_REF, page=999),
        BuyCb(
            country="USA", ref=LONGEST_REF, pool="1234567890", price=99_999_999, nonce=new_nonce()
        ),
        ActCb(action=ActAction.CANCEL, id=2**53),
        HistoryCb(status=HistoryFilter.REFUNDED, page=9999),
    ],
)
def test_callback_data_fits_and_round_trips(data: CallbackData) -> None:
    packed = data.pack()
    assert len(packed.encode()) <= MAX_CALLBACK_BYTES
    assert packed.startswith("v1")
    assert type(data).unpack(packed) == data


def test_service_refs_are_safe_and_stable() -> None:
    assert service_ref("WhatsApp") == "WhatsApp"
    assert service_ref("whatsapp-(us)5") == "whatsapp-(us)5"
    assert service_ref("a:b") != "a:b"
    assert ":" not in service_ref("a:b")
    assert service_ref("y" * 100) == service_ref("y" * 100) != service_ref("z" * 100)
    assert len({new_nonce() for _ in range(1000)}) == 1000


def _activation(**changes: object) -> Activation:
    base = Activation(
        id=7,
        user_id=1,
        wallet_id=1,
        chat_id=1,
        state="waiting",
        service_code="sb_wa",
        service_name="WhatsApp 3",
        provider_id="3109",
        country="USA",
        user_price=10_830,
        upstream_price=10_830,
        upstream_amount=10_830,
        idempotency_key="1:abc",
        recon_token="0123456789",
        upstream_id="32886",
        phone_number="+19401234567",
        code=None,
        error_code=None,
        created_at=1000.0,
        purchased_at=1000.0,
        cancel_after=1180.0,
        completed_at=None,
        finished_at=None,
        card_chat_id=None,
        card_message_id=None,
        next_poll_at=None,
        poll_attempts=0,
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def _labels(markup) -> list[str]:
    return [b.text for row in markup.inline_keyboard for b in row]


def test_card_counts_down_then_offers_cancel_and_refund() -> None:
    t = I18n().translator("en")
    text, markup = render_card(_activation(), t, now=1019.2)
    assert "<code>+19401234567</code>" in text
    assert "Price: $1.083" in text
    assert "⏱ 0:19" in text
    assert _labels(markup) == ["📋 Copy number", "🔄 Refresh", "⏳ Cancel in 2:41"]
    assert markup.inline_keyboard[0][0].copy_text is not None
    assert markup.inline_keyboard[0][0].copy_text.text == "+19401234567"
    _, markup = render_card(_activation(), t, now=1180.0)
    assert _labels(markup)[-1] == "✖️ Cancel and refund"
    _, markup = render_card(_activation(), t, now=1019.0, cancel_in=94)
    assert _labels(markup)[-1] == "⏳ Cancel in 1:34"


def test_card_of_a_finished_activation() -> None:
    t = I18n().translator("en")
    done = _activation(state="completed", code="847261", finished_at=1104.0)
    text, markup = render_card(done, t, now=5000.0)
    assert "Code: <b><code>847261</code></b>" in text
    assert "⏱ 1:44" in text
    assert _labels(markup) == ["📋 Copy code", "📋 Copy number", "🔁 Buy again — $1.083"]
    again = BuyCb.unpack(markup.inline_keyboard[-1][0].callback_data or "")
    assert (again.ref, again.pool, again.price, again.nonce) == ("sb_wa", "3109", 10_830, "a7")

    refunded = _activation(state="cancelled", finished_at=1200.0)
    text, markup = render_card(refunded, t, now=5000.0)
    assert "cancelled — $1.083 refunded" in text
    assert _labels(markup) == ["🔁 Buy again — $1.083"]

    text, markup = render_code_message(done, t)
    assert "<code>847261</code>" in text
    assert markup.inline_keyboard[0][0].copy_text is not None


def test_durations() -> None:
    assert format_duration(0) == "0:00"
    assert format_duration(161.9) == "2:41"
    assert format_duration(3723) == "1:02:03"
    assert format_countdown(0.2) == "0:01"
    assert format_countdown(-5) == "0:00"
