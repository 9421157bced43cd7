"""FSM states of the conversations that wait for a typed line."""

from __future__ import annotations

from aiogram.fsm.state import State, StatesGroup


class AdminStates(StatesGroup):
    find_user = State()
    topup_amount = State()  # data: user_id
    broadcast_text = State()
    markup_value = State()
    promo_spec = State()
    promo_batch = State()


class UserStates(StatesGroup):
    promo_code = State()  # the Balance screen's "Promo code" asked for one


class TopupStates(StatesGroup):
    crypto_amount = State()  # a typed USD amount for a Crypto Pay invoice
