"""The emulator's internal state: users, chats and a wake-up signal. Not public API."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from bot.emulator.models import ChatMessage, EmulatorTimeout

T = TypeVar("T")

MEMBER_STATUSES = ("creator", "administrator", "member", "restricted", "left", "kicked")
PRESENT_STATUSES = frozenset({"creator", "administrator", "member", "restricted"})
ADMIN_STATUSES = frozenset({"creator", "administrator"})


class Signal:
    """Wakes every waiter whenever something changed; waiters re-check their own condition.

    One fresh Event per change: setting it wakes the current waiters, and later waiters take
    the new one, so nobody misses a change that happens between a check and a wait.
    """

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def fire(self) -> None:
        event, self._event = self._event, asyncio.Event()
        event.set()

    async def wait(self, timeout: float) -> None:
        """Until the next change or ``timeout`` seconds, whichever comes first."""
        event = self._event
        try:
            async with asyncio.timeout(timeout):
                await event.wait()
        except TimeoutError:
            pass

    async def wait_until(
        self,
        check: Callable[[], T | None],
        timeout: float,
        describe: Callable[[], str],
    ) -> T:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            found = check()
            if found is not None:
                return found
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise EmulatorTimeout(describe())
            await self.wait(remaining)


@dataclass
class UserState:
    id: int
    first_name: str
    last_name: str | None = None
    username: str | None = None
    language_code: str | None = None
    is_premium: bool = False
    started: bool = False
    blocked: bool = False

    def api(self) -> dict[str, Any]:
        data: dict[str, Any] = {"id": self.id, "is_bot": False, "first_name": self.first_name}
        if self.last_name:
            data["last_name"] = self.last_name
        if self.username:
            data["username"] = self.username
        if self.language_code:
            data["language_code"] = self.language_code
        if self.is_premium:
            data["is_premium"] = True
        return data


@dataclass
class ChatState:
    id: int
    type: str  # private, group, supergroup
    bot_id: int
    title: str | None = None
    username: str | None = None
    user: UserState | None = None  # the other side of a private chat
    messages: dict[int, ChatMessage] = field(default_factory=dict)
    next_message_id: int = 1
    members: dict[int, str] = field(default_factory=dict)  # groups: user id -> status
    bot_status: str = "left"  # groups only
    reply_keyboard: tuple[tuple[str, ...], ...] | None = None
    menu_button: dict[str, Any] | None = None
    signal: Signal = field(default_factory=Signal)

    @property
    def is_group(self) -> bool:
        return self.type != "private"

    @property
    def instance(self) -> str:
        """Telegram's chat_instance: an opaque id stable for this chat and this bot."""
        digest = hashlib.sha256(f"{self.bot_id}:{self.id}".encode()).digest()
        return str(int.from_bytes(digest[:8], "big") >> 1)

    def take_message_id(self) -> int:
        message_id = self.next_message_id
        self.next_message_id += 1
        return message_id

    def api(self) -> dict[str, Any]:
        if self.user is not None:
            data: dict[str, Any] = {
                "id": self.id,
                "type": "private",
                "first_name": self.user.first_name,
            }
            if self.user.last_name:
                data["last_name"] = self.user.last_name
            if self.user.username:
                data["username"] = self.user.username
            return data
        data = {"id": self.id, "type": self.type, "title": self.title or ""}
        if self.username:
            data["username"] = self.username
        return data

    def visible(self) -> list[ChatMessage]:
        return [m for m in self.messages.values() if not m.deleted]


def member_api(user: dict[str, Any], status: str) -> dict[str, Any]:
    """A ChatMember object with the fields the Bot API always sends for its status."""
    data: dict[str, Any] = {"status": status, "user": user}
    if status == "creator":
        data["is_anonymous"] = False
    elif status == "administrator":
        data.update(
            can_be_edited=False,
            is_anonymous=False,
            can_manage_chat=True,
            can_delete_messages=True,
            can_manage_video_chats=True,
            can_restrict_members=True,
            can_promote_members=False,
            can_change_info=True,
            can_invite_users=True,
            can_post_stories=True,
            can_edit_stories=True,
            can_delete_stories=True,
            can_send_welcome_messages=True,
            can_pin_messages=True,
        )
    elif status == "restricted":
        data.update(
            is_member=True,
            can_send_messages=False,
            can_send_audios=False,
            can_send_documents=False,
            can_send_photos=False,
            can_send_videos=False,
            can_send_video_notes=False,
            can_send_voice_notes=False,
            can_send_polls=False,
            can_send_other_messages=False,
            can_add_web_page_previews=False,
            can_react_to_messages=False,
            can_edit_tag=False,
            can_change_info=False,
            can_invite_users=False,
            can_pin_messages=False,
            can_manage_topics=False,
            until_date=0,
        )
    elif status == "kicked":
        data["until_date"] = 0
    return data
