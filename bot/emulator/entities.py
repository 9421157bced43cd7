"""Message entities the way Telegram counts them: offsets and lengths in UTF-16 code units.

``parse_html`` follows the rules of Telegram's HTML parse mode (the subset documented for the
Bot API, with the error texts TDLib gives); ``render_html`` turns text and entities back into
HTML for display; ``finish_text`` applies what the server does after parsing (trim the text,
find commands, mentions and links).
"""

from __future__ import annotations

import html
import re
from bisect import bisect_left
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "Entity",
    "HtmlParseError",
    "entities_from_api",
    "finish_text",
    "parse_html",
    "render_html",
    "utf16_len",
    "utf16_slice",
]

# Entity types a bot may send explicitly; anything else is refused like Telegram does.
KNOWN_TYPES = frozenset(
    {
        "mention",
        "hashtag",
        "cashtag",
        "bot_command",
        "url",
        "email",
        "phone_number",
        "bold",
        "italic",
        "underline",
        "strikethrough",
        "spoiler",
        "blockquote",
        "expandable_blockquote",
        "code",
        "pre",
        "text_link",
        "text_mention",
        "custom_emoji",
        "date_time",
    }
)

# Tags accepted by Telegram's HTML parse mode; everything else is "Unsupported start tag".
_TAG_TYPES = {
    "b": "bold",
    "strong": "bold",
    "i": "italic",
    "em": "italic",
    "u": "underline",
    "ins": "underline",
    "s": "strikethrough",
    "strike": "strikethrough",
    "del": "strikethrough",
    "tg-spoiler": "spoiler",
    "span": "spoiler",
    "a": "text_link",
    "code": "code",
    "pre": "pre",
    "blockquote": "blockquote",
    "tg-emoji": "custom_emoji",
}

# Telegram never auto-links inside these, and a found entity must not cut through them.
_OPAQUE = frozenset({"code", "pre", "text_link", "url", "mention", "bot_command", "text_mention"})

_NAMED_REFERENCES = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}


class HtmlParseError(ValueError):
    """Malformed HTML; the message is what Telegram puts after "can't parse entities: "."""


@dataclass(frozen=True)
class Entity:
    """One MessageEntity; offset and length in UTF-16 code units."""

    type: str
    offset: int
    length: int
    url: str | None = None
    language: str | None = None
    custom_emoji_id: str | None = None
    user_id: int | None = None

    @property
    def end(self) -> int:
        return self.offset + self.length

    def to_api(self) -> dict[str, Any]:
        data: dict[str, Any] = {"type": self.type, "offset": self.offset, "length": self.length}
        if self.url is not None:
            data["url"] = self.url
        if self.language is not None:
            data["language"] = self.language
        if self.custom_emoji_id is not None:
            data["custom_emoji_id"] = self.custom_emoji_id
        if self.user_id is not None:
            data["user"] = {"id": self.user_id, "is_bot": False, "first_name": str(self.user_id)}
        return data

    def text_in(self, text: str) -> str:
        """The part of ``text`` this entity covers."""
        return utf16_slice(text, self.offset, self.length)


def utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def utf16_slice(text: str, offset: int, length: int) -> str:
    raw = text.encode("utf-16-le")[2 * offset : 2 * (offset + length)]
    return raw.decode("utf-16-le", errors="replace")


def sort_entities(entities: Iterable[Entity]) -> list[Entity]:
    """Telegram's order: by offset, an enclosing entity before the ones it contains."""
    return sorted(entities, key=lambda e: (e.offset, -e.length, e.type))


def entities_from_api(items: object) -> list[Entity]:
    """Explicit ``entities``/``caption_entities`` as sent by a bot, validated.

    Raises ValueError with a Telegram-like reason for anything Telegram would refuse.
    """
    if not isinstance(items, list):
        raise ValueError("entities must be an array")
    result: list[Entity] = []
    for item in items:
        if not isinstance(item, Mapping):
            raise ValueError("entity must be an object")
        kind = item.get("type")
        offset = item.get("offset")
        length = item.get("length")
        if not isinstance(kind, str) or kind not in KNOWN_TYPES:
            raise ValueError(f"unsupported entity type {kind!r}")
        if not isinstance(offset, int) or not isinstance(length, int) or offset < 0 or length < 0:
            raise ValueError("entity offset and length must be non-negative integers")
        url = item.get("url")
        if kind == "text_link" and not (isinstance(url, str) and url):
            raise ValueError("text_link entity needs a url")
        language = item.get("language")
        emoji = item.get("custom_emoji_id")
        if kind == "custom_emoji" and not (isinstance(emoji, str) and emoji):
            raise ValueError("custom_emoji entity needs custom_emoji_id")
        user = item.get("user")
        user_id = user.get("id") if isinstance(user, Mapping) else None
        if kind == "text_mention" and not isinstance(user_id, int):
            raise ValueError("text_mention entity needs a user")
        result.append(
            Entity(
                type=kind,
                offset=offset,
                length=length,
                url=url if kind == "text_link" and isinstance(url, str) else None,
                language=language if kind == "pre" and isinstance(language, str) else None,
                custom_emoji_id=(
                    emoji if kind == "custom_emoji" and isinstance(emoji, str) else None
                ),
                user_id=user_id if kind == "text_mention" and isinstance(user_id, int) else None,
            )
        )
    return result


# --------------------------------------------------------------------------- HTML parsing


@dataclass
class _Open:
    tag: str
    begin: int  # char index of "<" in the source, for error messages
    offset: int  # UTF-16 offset in the output where the entity starts
    argument: str = ""
    expandable: bool = False
    inner_language: str | None = None  # <pre><code class="language-x"> becomes pre(language=x)


class _HtmlParser:
    def __init__(self, source: str) -> None:
        self.src = source
        self.n = len(source)
        self.out: list[str] = []
        self.offset = 0
        self.stack: list[_Open] = []
        self.entities: list[Entity] = []

    def byte_offset(self, index: int) -> int:
        return len(self.src[:index].encode("utf-8"))

    def error(self, text: str) -> HtmlParseError:
        return HtmlParseError(text)

    def emit(self, text: str) -> None:
        self.out.append(text)
        self.offset += utf16_len(text)

    def decode_reference(self, i: int) -> tuple[str, int] | None:
        """A character reference at ``i`` (the "&"), as TDLib reads them: only the four named
        ones and numeric ones, the ";" optional. None leaves the "&" as literal text."""
        src = self.src
        j = i + 1
        if j < self.n and src[j] == "#":
            j += 1
            hexadecimal = j < self.n and src[j] in "xX"
            if hexadecimal:
                j += 1
            start = j
            digits = "0123456789abcdefABCDEF" if hexadecimal else "0123456789"
            while j < self.n and src[j] in digits:
                j += 1
            if j == start:
                return None
            code = int(src[start:j], 16 if hexadecimal else 10)
            if code == 0 or code > 0x10FFFF or 0xD800 <= code <= 0xDFFF:
                return None
            char = chr(code)
        else:
            start = j
            while j < self.n and src[j].isascii() and src[j].isalpha():
                j += 1
            named = _NAMED_REFERENCES.get(src[start:j])
            if named is None:
                return None
            char = named
        if j < self.n and src[j] == ";":
            j += 1
        return char, j

    def parse(self) -> tuple[str, list[Entity]]:
        i = 0
        src = self.src
        while i < self.n:
            ch = src[i]
            if ch == "&":
                decoded = self.decode_reference(i)
                if decoded is not None:
                    self.emit(decoded[0])
                    i = decoded[1]
                    continue
                self.emit(ch)
                i += 1
            elif ch != "<":
                self.emit(ch)
                i += 1
            elif i + 1 < self.n and src[i + 1] == "/":
                i = self.end_tag(i)
            else:
                i = self.start_tag(i)
        if self.stack:
            raise self.error(
                f'Can\'t find end tag corresponding to start tag "{self.stack[-1].tag}"'
            )
        return "".join(self.out), sort_entities(self.entities)

    def start_tag(self, begin: int) -> int:
        src = self.src
        j = begin + 1
        while j < self.n and not src[j].isspace() and src[j] != ">":
            j += 1
        if j >= self.n:
            raise self.error(f"Unclosed start tag at byte offset {self.byte_offset(begin)}")
        tag = src[begin + 1 : j].lower()
        if tag not in _TAG_TYPES:
            raise self.error(
                f'Unsupported start tag "{tag}" at byte offset {self.byte_offset(begin)}'
            )
        opened = _Open(tag=tag, begin=begin, offset=self.offset)
        while True:
            while j < self.n and src[j].isspace():
                j += 1
            if j >= self.n:
                raise self.error(
                    f'Unclosed start tag "{tag}" at byte offset {self.byte_offset(begin)}'
                )
            if src[j] == ">":
                j += 1
                break
            name_start = j
            while j < self.n and not src[j].isspace() and src[j] not in "=>":
                j += 1
            name = src[name_start:j].lower()
            if not name:
                raise self.error(
                    f'Empty attribute name in the tag "{tag}" at byte offset '
                    f"{self.byte_offset(begin)}"
                )
            while j < self.n and src[j].isspace():
                j += 1
            if j >= self.n:
                raise self.error(
                    f'Unclosed start tag "{tag}" at byte offset {self.byte_offset(begin)}'
                )
            if src[j] != "=":
                if tag == "blockquote" and name == "expandable":
                    opened.expandable = True
                continue
            j += 1
            while j < self.n and src[j].isspace():
                j += 1
            if j >= self.n:
                raise self.error(
                    f'Unclosed start tag "{tag}" at byte offset {self.byte_offset(begin)}'
                )
            value, j = self.attribute_value(j)
            self.apply_attribute(opened, name, value)
        if tag == "span" and opened.argument != "spoiler":
            raise self.error(
                f'Tag "span" must have class "tg-spoiler" at byte offset {self.byte_offset(begin)}'
            )
        if tag == "tg-emoji" and not opened.argument:
            raise self.error(
                f'Tag "tg-emoji" must have attribute "emoji-id" at byte offset '
                f"{self.byte_offset(begin)}"
            )
        self.stack.append(opened)
        return j

    def attribute_value(self, j: int) -> tuple[str, int]:
        src = self.src
        quote = src[j]
        if quote not in "\"'":
            # An unquoted value is a name token: letters, digits, periods and hyphens.
            start = j
            while j < self.n and ((src[j].isascii() and src[j].isalnum()) or src[j] in ".-"):
                j += 1
            if j >= self.n or not (src[j].isspace() or src[j] == ">"):
                raise self.error(
                    f"Unexpected end of name token at byte offset {self.byte_offset(j)}"
                )
            return src[start:j].lower(), j
        j += 1
        value: list[str] = []
        while j < self.n and src[j] != quote:
            if src[j] == "&":
                decoded = self.decode_reference(j)
                if decoded is not None:
                    value.append(decoded[0])
                    j = decoded[1]
                    continue
            value.append(src[j])
            j += 1
        if j >= self.n:
            raise self.error(f"Unclosed start tag at byte offset {self.byte_offset(j)}")
        return "".join(value), j + 1

    @staticmethod
    def apply_attribute(opened: _Open, name: str, value: str) -> None:
        if opened.tag == "a" and name == "href":
            opened.argument = value
        elif opened.tag == "code" and name == "class" and value.startswith("language-"):
            opened.argument = value[len("language-") :]
        elif opened.tag == "span" and name == "class" and value.startswith("tg-"):
            opened.argument = value[len("tg-") :]
        elif opened.tag == "tg-emoji" and name == "emoji-id":
            opened.argument = value

    def end_tag(self, begin: int) -> int:
        src = self.src
        if not self.stack:
            raise self.error(f"Unexpected end tag at byte offset {self.byte_offset(begin)}")
        j = begin + 2
        while j < self.n and not src[j].isspace() and src[j] != ">":
            j += 1
        name = src[begin + 2 : j].lower()
        while j < self.n and src[j].isspace():
            j += 1
        if j >= self.n or src[j] != ">":
            raise self.error(f"Unclosed end tag at byte offset {self.byte_offset(begin)}")
        top = self.stack[-1]
        if name and name != top.tag:
            raise self.error(
                f"Unmatched end tag at byte offset {self.byte_offset(begin)}, "
                f'expected "</{top.tag}>", found "</{name}>"'
            )
        self.stack.pop()
        self.close(top)
        return j + 1

    def close(self, opened: _Open) -> None:
        length = self.offset - opened.offset
        parent = self.stack[-1] if self.stack else None
        if (
            opened.tag == "code"
            and parent is not None
            and parent.tag == "pre"
            and parent.offset == opened.offset
        ):
            # <pre><code class="language-x">…</code></pre> is one pre entity with a language.
            if opened.argument:
                parent.inner_language = opened.argument
            return
        if length <= 0:
            return
        kind = _TAG_TYPES[opened.tag]
        entity: Entity
        if kind == "text_link":
            if not opened.argument:
                return
            entity = Entity("text_link", opened.offset, length, url=opened.argument)
        elif kind == "pre":
            entity = Entity("pre", opened.offset, length, language=opened.inner_language or None)
        elif kind == "blockquote":
            quote_type = "expandable_blockquote" if opened.expandable else "blockquote"
            entity = Entity(quote_type, opened.offset, length)
        elif kind == "custom_emoji":
            entity = Entity("custom_emoji", opened.offset, length, custom_emoji_id=opened.argument)
        else:
            entity = Entity(kind, opened.offset, length)
        self.entities.append(entity)


def parse_html(source: str) -> tuple[str, list[Entity]]:
    """Telegram HTML into (plain text, entities). Raises HtmlParseError like the server does."""
    return _HtmlParser(source).parse()


# --------------------------------------------------------------------------- after parsing

_COMMAND_RE = re.compile(r"(?<![\w/@])/[A-Za-z0-9_]{1,64}(?:@[A-Za-z0-9_]{3,32})?(?![\w/@])")
_MENTION_RE = re.compile(r"(?<![\w@/])@[A-Za-z0-9_]{4,32}(?![\w@])")
_URL_RE = re.compile(r"(?<![\w/])https?://[^\s<>\"']+", re.IGNORECASE)
_URL_TRAILING = ".,;:!?)]}'\""


def _detect(text: str) -> list[tuple[str, int, int]]:
    """Commands, @mentions and http(s) links, as char index ranges (the subset of Telegram's
    automatic entities a shop bot meets; hashtags, e-mails and bare domains are left out)."""
    found: list[tuple[str, int, int]] = []
    for match in _URL_RE.finditer(text):
        end = match.end()
        while end > match.start() and text[end - 1] in _URL_TRAILING:
            end -= 1
        found.append(("url", match.start(), end))
    for kind, pattern in (("bot_command", _COMMAND_RE), ("mention", _MENTION_RE)):
        for match in pattern.finditer(text):
            if not any(s < match.end() and match.start() < e for _, s, e in found):
                found.append((kind, match.start(), match.end()))
    return found


def finish_text(
    text: str, entities: Sequence[Entity], *, detect: bool = True
) -> tuple[str, list[Entity]]:
    """What the server does to a parsed text: trims surrounding whitespace (moving the
    entities with it), drops empty entities, and adds automatically found ones."""
    stripped = text.strip()
    lead = utf16_len(text[: len(text) - len(text.lstrip())])
    total = utf16_len(stripped)
    result: list[Entity] = []
    for entity in entities:
        start = max(0, entity.offset - lead)
        end = min(total, entity.end - lead)
        if end > start:
            result.append(_moved(entity, start, end - start))
    if detect:
        opaque = [e for e in result if e.type in _OPAQUE]
        for kind, start_index, end_index in _detect(stripped):
            start = utf16_len(stripped[:start_index])
            end = start + utf16_len(stripped[start_index:end_index])
            if not any(e.offset < end and start < e.end for e in opaque):
                result.append(Entity(kind, start, end - start))
    return stripped, sort_entities(result)


def _moved(entity: Entity, offset: int, length: int) -> Entity:
    return Entity(
        type=entity.type,
        offset=offset,
        length=length,
        url=entity.url,
        language=entity.language,
        custom_emoji_id=entity.custom_emoji_id,
        user_id=entity.user_id,
    )


# --------------------------------------------------------------------------- rendering


def _open_tag(entity: Entity, covered: str) -> tuple[str, str] | None:
    kind = entity.type
    simple = {
        "bold": "b",
        "italic": "i",
        "underline": "u",
        "strikethrough": "s",
        "code": "code",
        "blockquote": "blockquote",
    }
    if kind in simple:
        tag = simple[kind]
        return f"<{tag}>", f"</{tag}>"
    if kind == "expandable_blockquote":
        return "<blockquote expandable>", "</blockquote>"
    if kind == "spoiler":
        return '<span class="tg-spoiler">', "</span>"
    if kind == "pre":
        if entity.language:
            lang = html.escape(entity.language, quote=True)
            return f'<pre><code class="language-{lang}">', "</code></pre>"
        return "<pre>", "</pre>"
    if kind == "text_link" and entity.url:
        return f'<a href="{html.escape(entity.url, quote=True)}">', "</a>"
    if kind == "text_mention" and entity.user_id is not None:
        return f'<a href="tg://user?id={entity.user_id}">', "</a>"
    if kind == "url" and covered.lower().startswith(("http://", "https://")):
        return f'<a href="{html.escape(covered, quote=True)}">', "</a>"
    if kind == "custom_emoji" and entity.custom_emoji_id:
        emoji_id = html.escape(entity.custom_emoji_id, quote=True)
        return f'<tg-emoji emoji-id="{emoji_id}">', "</tg-emoji>"
    return None


@dataclass
class _Span:
    start: int
    end: int
    opening: str
    closing: str


def render_html(text: str, entities: Sequence[Entity]) -> str:
    """Text and entities as HTML in Telegram's subset (so it parses back to the same thing),
    for showing a message on a page. Overlapping entities are split to nest properly."""
    bounds = [0]
    for ch in text:
        bounds.append(bounds[-1] + (2 if ord(ch) > 0xFFFF else 1))
    spans: list[_Span] = []
    for entity in sort_entities(entities):
        start = bisect_left(bounds, entity.offset)
        end = bisect_left(bounds, entity.end)
        end = min(end, len(text))
        if end <= start:
            continue
        tags = _open_tag(entity, text[start:end])
        if tags is not None:
            spans.append(_Span(start, end, tags[0], tags[1]))
    starting: dict[int, list[_Span]] = {}
    for span in spans:
        starting.setdefault(span.start, []).append(span)
    out: list[str] = []
    stack: list[_Span] = []
    for index in range(len(text) + 1):
        if any(span.end == index for span in stack):
            reopen: list[_Span] = []
            while any(span.end == index for span in stack):
                top = stack.pop()
                out.append(top.closing)
                if top.end != index:
                    reopen.append(top)
            for span in reversed(reopen):
                out.append(span.opening)
                stack.append(span)
        for span in starting.get(index, []):
            out.append(span.opening)
            stack.append(span)
        if index < len(text):
            out.append(html.escape(text[index], quote=False))
    return "".join(out)
