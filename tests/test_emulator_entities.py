"""Telegram HTML parsing, rendering and flood buckets of the Bot API emulator (no network)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.emulator.entities import (
    Entity,
    HtmlParseError,
    entities_from_api,
    finish_text,
    parse_html,
    render_html,
    utf16_len,
)
from bot.emulator.flood import FloodControl, FloodLimits


def kinds(entities: list[Entity]) -> list[tuple[str, int, int]]:
    return [(e.type, e.offset, e.length) for e in entities]


def test_basic_tags_and_aliases() -> None:
    text, entities = parse_html(
        "<b>b</b><strong>s</strong><i>i</i><em>e</em><u>u</u><ins>n</ins>"
        "<s>s</s><strike>k</strike><del>d</del>"
    )
    assert text == "bsieunskd"
    assert [e.type for e in entities] == [
        "bold",
        "bold",
        "italic",
        "italic",
        "underline",
        "underline",
        "strikethrough",
        "strikethrough",
        "strikethrough",
    ]
    assert [e.offset for e in entities] == list(range(9))


def test_offsets_are_utf16_code_units() -> None:
    # The emoji is one Python character but two UTF-16 code units, as Telegram counts.
    text, entities = parse_html("😀 <b>Welcome</b> <i>дом</i>")
    assert text == "😀 Welcome дом"
    assert kinds(entities) == [("bold", 3, 7), ("italic", 11, 3)]
    assert entities[0].text_in(text) == "Welcome"
    assert utf16_len(text) == 14


def test_nested_entities_are_sorted_outer_first() -> None:
    text, entities = parse_html("<b>bold <i>both</i></b>")
    assert text == "bold both"
    assert kinds(entities) == [("bold", 0, 9), ("italic", 5, 4)]


def test_links_spoilers_quotes_and_emoji() -> None:
    text, entities = parse_html(
        '<a href="https://example.com/?a=1&amp;b=2">site</a> '
        '<tg-spoiler>x</tg-spoiler><span class="tg-spoiler">y</span> '
        "<blockquote>q</blockquote><blockquote expandable>w</blockquote>"
        '<tg-emoji emoji-id="5368324170671202286">👍</tg-emoji>'
    )
    assert text == "site xy qw👍"
    by_type = {e.type: e for e in entities}
    assert by_type["text_link"].url == "https://example.com/?a=1&b=2"
    assert [e.type for e in entities if e.type == "spoiler"] == ["spoiler", "spoiler"]
    assert by_type["blockquote"].offset == 8
    assert by_type["expandable_blockquote"].offset == 9
    assert by_type["custom_emoji"].custom_emoji_id == "5368324170671202286"
    assert by_type["custom_emoji"].length == 2


def test_pre_with_language_and_code() -> None:
    text, entities = parse_html(
        '<pre><code class="language-python">print(1)</code></pre> <pre>raw</pre> <code>c</code>'
    )
    assert text == "print(1) raw c"
    assert [(e.type, e.language) for e in entities] == [
        ("pre", "python"),
        ("pre", None),
        ("code", None),
    ]


def test_character_references() -> None:
    text, entities = parse_html("&lt;tag&gt; &amp; &quot;q&quot; &#65;&#x42; &nbsp; &copy; a&b")
    # Only the four named references and numeric ones are decoded; others stay as typed.
    assert text == '<tag> & "q" AB &nbsp; &copy; a&b'
    assert entities == []


@pytest.mark.parametrize(
    ("source", "error"),
    [
        ("<b>bold", 'Can\'t find end tag corresponding to start tag "b"'),
        ("<x>y</x>", 'Unsupported start tag "x" at byte offset 0'),
        ("a < b", 'Unsupported start tag "" at byte offset 2'),
        ("<b>x</i>", 'Unmatched end tag at byte offset 4, expected "</b>", found "</i>"'),
        ("x</b>", "Unexpected end tag at byte offset 1"),
        (
            '<span class="other">x</span>',
            'Tag "span" must have class "tg-spoiler" at byte offset 0',
        ),
        ("<b", "Unclosed start tag at byte offset 0"),
        ("é<b>x</b", "Unclosed end tag at byte offset 6"),
    ],
)
def test_malformed_html_is_refused_like_telegram(source: str, error: str) -> None:
    with pytest.raises(HtmlParseError) as caught:
        parse_html(source)
    assert str(caught.value) == error


def test_empty_entities_are_dropped() -> None:
    text, entities = parse_html("a<b></b>b<a href='https://x.org'></a>")
    assert text == "ab"
    assert entities == []


def test_finish_text_trims_and_moves_entities() -> None:
    text, entities = parse_html("\n  <b> hello</b> world  \n")
    text, entities = finish_text(text, entities, detect=False)
    assert text == "hello world"
    assert kinds(entities) == [("bold", 0, 5)]


def test_finish_text_finds_commands_mentions_and_links() -> None:
    _, entities = finish_text("/start@test_bot hi @alice_01 see https://example.com/x.", [])
    assert kinds(entities) == [("bot_command", 0, 15), ("mention", 19, 9), ("url", 33, 21)]
    code_text, code_entities = parse_html("<code>/start</code> /help")
    _, found = finish_text(code_text, code_entities)
    # Nothing is found inside code, like in Telegram.
    assert kinds(found) == [("code", 0, 6), ("bot_command", 7, 5)]


def test_entities_from_api_validates() -> None:
    parsed = entities_from_api(
        [
            {"type": "bold", "offset": 0, "length": 2},
            {"type": "text_link", "offset": 2, "length": 1, "url": "https://a.b"},
            {"type": "pre", "offset": 3, "length": 1, "language": "sql"},
        ]
    )
    assert parsed[1].url == "https://a.b"
    assert parsed[2].language == "sql"
    with pytest.raises(ValueError, match="unsupported entity type"):
        entities_from_api([{"type": "blink", "offset": 0, "length": 1}])
    with pytest.raises(ValueError, match="needs a url"):
        entities_from_api([{"type": "text_link", "offset": 0, "length": 1}])


def test_render_escapes_and_nests() -> None:
    text, entities = parse_html(
        '<b>1 &lt; 2 &amp; <i>"x"</i></b> <a href="https://e.com/?q=&quot;">l</a> '
        '<pre><code class="language-py">a</code></pre> <span class="tg-spoiler">s</span>'
    )
    html = render_html(text, entities)
    assert html == (
        '<b>1 &lt; 2 &amp; <i>"x"</i></b> <a href="https://e.com/?q=&quot;">l</a> '
        '<pre><code class="language-py">a</code></pre> <span class="tg-spoiler">s</span>'
    )
    assert parse_html(html) == (text, entities)


def test_render_splits_overlapping_entities() -> None:
    text = "abcdef"
    entities = [Entity("bold", 0, 4), Entity("italic", 2, 4)]
    html = render_html(text, entities)
    assert html == "<b>ab<i>cd</i></b><i>ef</i>"


def test_render_links_urls_but_not_commands() -> None:
    text, entities = finish_text("/start https://example.com", [])
    assert render_html(text, entities) == (
        '/start <a href="https://example.com">https://example.com</a>'
    )


_FORMATTING = ["bold", "italic", "underline", "strikethrough", "spoiler", "code", "blockquote"]


def _coverage(text: str, entities: list[Entity]) -> set[tuple[str, int]]:
    return {(e.type, unit) for e in entities for unit in range(e.offset, e.end)}


@st.composite
def _texts_with_entities(draw: st.DrawFn) -> tuple[str, list[Entity]]:
    text = draw(
        st.text(
            alphabet=st.characters(exclude_categories=["Cs"]) | st.sampled_from("<>&😀"),
            min_size=1,
            max_size=30,
        )
    )
    bounds = [0]
    for ch in text:
        bounds.append(bounds[-1] + (2 if ord(ch) > 0xFFFF else 1))
    entities = []
    for _ in range(draw(st.integers(0, 5))):
        start = draw(st.integers(0, len(text) - 1))
        end = draw(st.integers(start + 1, len(text)))
        kind = draw(st.sampled_from(_FORMATTING))
        entities.append(Entity(kind, bounds[start], bounds[end] - bounds[start]))
    return text, entities


@settings(max_examples=200, deadline=None)
@given(_texts_with_entities())
def test_rendered_html_parses_back_to_the_same_formatting(
    sample: tuple[str, list[Entity]],
) -> None:
    text, entities = sample
    parsed_text, parsed = parse_html(render_html(text, entities))
    assert parsed_text == text
    assert _coverage(parsed_text, parsed) == _coverage(text, entities)


def _control(limits: FloodLimits) -> tuple[FloodControl, list[float]]:
    now = [100.0]
    return FloodControl(limits, lambda: now[0]), now


def test_flood_private_chat_burst_then_one_per_second() -> None:
    control, now = _control(FloodLimits(chat_burst=3, chat_per_second=1))
    assert [control.acquire(7, is_group=False) for _ in range(3)] == [None, None, None]
    assert control.acquire(7, is_group=False) == 1
    assert control.acquire(8, is_group=False) is None  # other chats have their own bucket
    now[0] += 1.0
    assert control.acquire(7, is_group=False) is None
    assert control.acquire(7, is_group=False) == 1


def test_flood_group_per_minute_and_global() -> None:
    control, now = _control(FloodLimits(group_per_minute=20, global_per_second=30))
    for _ in range(20):
        assert control.acquire(-5, is_group=True) is None
    assert control.acquire(-5, is_group=True) == 3  # one token every 3 s
    now[0] += 3.0
    assert control.acquire(-5, is_group=True) is None

    control, now = _control(FloodLimits(global_per_second=3, chat_burst=10))
    assert [control.acquire(chat, is_group=False) for chat in (1, 2, 3)] == [None] * 3
    assert control.acquire(4, is_group=False) == 1
    now[0] += 0.34
    assert control.acquire(4, is_group=False) is None


def test_flood_disabled_never_refuses() -> None:
    control, _ = _control(FloodLimits.off())
    assert all(control.acquire(1, is_group=False) is None for _ in range(1000))
