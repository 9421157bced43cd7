"""What tests (and the demo web chat) do as Telegram users: write, tap, copy, pay, block.

Handles are cheap views over the emulator's state; ``emu.user(1001)`` twice gives two
handles on the same user.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from bot.emulator.models import CallbackAnswer, ChatMessage, EmulatorError
from bot.emulator.state import ChatState, UserState

if TYPE_CHECKING:
    from bot.emulator.server import BotAPIEmulator

__all__ = ["EmulatedGroup", "EmulatedUser"]

Predicate = Callable[[ChatMessage], bool]


class _ChatView:
    """One chat as its members see it."""

    def __init__(self, emulator: BotAPIEmulator, chat: ChatState) -> None:
        self._emu = emulator
        self._chat = chat

    @property
    def chat_id(self) -> int:
        return self._chat.id

    @property
    def chat_instance(self) -> str:
        """The chat_instance callback queries from this chat carry."""
        return self._chat.instance

    @property
    def messages(self) -> list[ChatMessage]:
        """The messages on screen now, oldest first (deleted ones are gone)."""
        return self._chat.visible()

    @property
    def history(self) -> list[ChatMessage]:
        """Every message ever in the chat, deleted ones included (``deleted=True``)."""
        return list(self._chat.messages.values())

    @property
    def bot_messages(self) -> list[ChatMessage]:
        return [m for m in self._chat.visible() if m.from_bot]

    @property
    def last_message(self) -> ChatMessage | None:
        """The newest message on screen, whoever sent it."""
        visible = self._chat.visible()
        return visible[-1] if visible else None

    @property
    def last_bot_message(self) -> ChatMessage | None:
        bot = self.bot_messages
        return bot[-1] if bot else None

    @property
    def keyboard(self) -> tuple[tuple[str, ...], ...] | None:
        """The reply keyboard under the input field, if the bot set one."""
        return self._chat.reply_keyboard

    def transcript(self, last: int = 8) -> str:
        return self._emu.transcript(self._chat.id, last)

    async def wait_for(
        self,
        predicate: Predicate | None = None,
        *,
        timeout: float = 5.0,
        after: ChatMessage | int | None = None,
        from_bot: bool = True,
    ) -> ChatMessage:
        """The newest message (from the bot, unless ``from_bot=False``) that satisfies
        ``predicate``, now or as soon as one does, including by being edited.

        ``after`` (a message or a message id) only considers later messages, e.g. the answer
        to what a user just sent: ``await alice.wait_for(after=await alice.send("/start"))``.
        """
        after_id = after.message_id if isinstance(after, ChatMessage) else (after or 0)

        def check() -> ChatMessage | None:
            for message in reversed(self._chat.visible()):
                if message.message_id <= after_id:
                    break
                if from_bot and not message.from_bot:
                    continue
                if predicate is None or predicate(message):
                    return message
            return None

        return await self._chat.signal.wait_until(
            check, timeout, lambda: self._describe("a matching message", timeout)
        )

    async def wait_for_edit(
        self,
        message: ChatMessage,
        predicate: Predicate | None = None,
        *,
        timeout: float = 5.0,
    ) -> ChatMessage:
        """A version of ``message`` newer than the one given (and matching ``predicate``)."""
        seen = message.edited

        def check() -> ChatMessage | None:
            current = self._chat.messages.get(message.message_id)
            if current is None:
                raise EmulatorError(f"no message {message.message_id} in chat {self._chat.id}")
            if current.deleted:
                raise EmulatorError(f"message {message.message_id} was deleted")
            if current.edited > seen and (predicate is None or predicate(current)):
                return current
            return None

        return await self._chat.signal.wait_until(
            check,
            timeout,
            lambda: self._describe(f"an edit of message {message.message_id}", timeout),
        )

    async def wait_for_delete(self, message: ChatMessage, *, timeout: float = 5.0) -> ChatMessage:
        def check() -> ChatMessage | None:
            current = self._chat.messages.get(message.message_id)
            return current if current is not None and current.deleted else None

        return await self._chat.signal.wait_until(
            check,
            timeout,
            lambda: self._describe(f"deletion of message {message.message_id}", timeout),
        )

    def current(self, message: ChatMessage | int) -> ChatMessage:
        """The newest version of a message (deleted or not)."""
        message_id = message.message_id if isinstance(message, ChatMessage) else message
        found = self._chat.messages.get(message_id)
        if found is None:
            raise EmulatorError(f"no message {message_id} in chat {self._chat.id}")
        return found

    def _describe(self, what: str, timeout: float) -> str:
        return f"no {what} within {timeout}s\n{self.transcript()}"


class EmulatedUser(_ChatView):
    """A Telegram user; the chat views are their private chat with the bot."""

    def __init__(self, emulator: BotAPIEmulator, user: UserState) -> None:
        super().__init__(emulator, emulator._chats[user.id])
        self._user = user

    def __repr__(self) -> str:
        return f"EmulatedUser(id={self._user.id}, first_name={self._user.first_name!r})"

    @property
    def id(self) -> int:
        return self._user.id

    @property
    def first_name(self) -> str:
        return self._user.first_name

    @property
    def username(self) -> str | None:
        return self._user.username

    @property
    def language_code(self) -> str | None:
        return self._user.language_code

    @property
    def api_user(self) -> dict[str, Any]:
        """The User object updates carry for this user."""
        return self._user.api()

    @property
    def chat(self) -> list[ChatMessage]:
        """The private chat with the bot as it looks now."""
        return self.messages

    @property
    def started(self) -> bool:
        return self._user.started

    @property
    def blocked(self) -> bool:
        return self._user.blocked

    async def send(
        self,
        text: str,
        *,
        chat: EmulatedGroup | int | None = None,
        reply_to: ChatMessage | None = None,
    ) -> ChatMessage:
        """Write a text message, in the private chat or in a group; returns it as stored.

        Commands get their bot_command entity like in Telegram; in a group with privacy
        mode on the bot only receives what Telegram would deliver to it.
        """
        chat_id = self.id if chat is None else chat if isinstance(chat, int) else chat.chat_id
        return self._emu._user_send(self._user, chat_id, text, reply_to)

    async def press(
        self,
        message: ChatMessage,
        text: str | None = None,
        *,
        data: str | None = None,
        timeout: float = 5.0,
    ) -> CallbackAnswer:
        """Tap the callback button whose text is (or contains) ``text`` on the message as it
        is now, and return the bot's answerCallbackQuery once it comes.

        ``data=`` sends that callback data whatever the buttons are: a forged or stale
        callback, as a modified client could send.
        """
        return await self._emu._user_press(self._user, message, text, data, timeout)

    def copy(self, message: ChatMessage, text: str) -> str:
        """Tap a copy_text button: returns what lands on the clipboard (the bot sees nothing)."""
        _, current = self._emu._current(self._user, message)
        button = current.button(text)
        if button.copy_text is None:
            raise EmulatorError(f"button {button.text!r} is not a copy_text button")
        return button.copy_text

    async def pay(self, message: ChatMessage, *, timeout: float = 5.0) -> dict[str, Any]:
        """Pay an invoice: a pre_checkout_query, then, once the bot said ok, the
        successful_payment message. Returns that message's update (give it to
        ``emu.push_update`` to deliver it again); raises PaymentDeclined on ok=False."""
        return await self._emu._user_pay(self._user, message, timeout)

    def block(self) -> dict[str, Any] | None:
        """Block the bot: it gets a my_chat_member update (kicked) and 403 on writing."""
        return self._emu._user_set_blocked(self._user, True)

    def unblock(self) -> dict[str, Any] | None:
        return self._emu._user_set_blocked(self._user, False)


class EmulatedGroup(_ChatView):
    """A group or supergroup chat."""

    def __repr__(self) -> str:
        return f"EmulatedGroup(id={self._chat.id}, title={self._chat.title!r})"

    @property
    def id(self) -> int:
        return self._chat.id

    @property
    def title(self) -> str:
        return self._chat.title or ""

    @property
    def bot_status(self) -> str:
        return self._chat.bot_status

    @property
    def members(self) -> dict[int, str]:
        """User id -> status (creator, administrator, member, restricted, left, kicked)."""
        return dict(self._chat.members)

    def add_member(self, user: EmulatedUser, status: str = "member") -> None:
        """Put a user in the group with a status (or change it), silently: the setup of a
        group as it was before the test."""
        self._emu._group_set_member(self._chat, user._user, status)

    async def add_bot(self, *, by: EmulatedUser, status: str = "member") -> dict[str, Any]:
        """``by`` adds the bot: a my_chat_member update and a new_chat_members message.
        Returns the my_chat_member update."""
        return self._emu._group_set_bot_status(self._chat, by._user, status)

    async def set_bot_status(self, status: str, *, by: EmulatedUser) -> dict[str, Any]:
        """Promote, restrict or remove the bot ("member", "administrator", "left",
        "kicked"...); the bot gets a my_chat_member update."""
        return self._emu._group_set_bot_status(self._chat, by._user, status)

    async def remove_bot(self, *, by: EmulatedUser) -> dict[str, Any]:
        return self._emu._group_set_bot_status(self._chat, by._user, "kicked")
