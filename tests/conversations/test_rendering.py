"""Tests for conversations.rendering: Markdown and plain text to safe HTML.

The XSS corpus and its oracle are described in
tests/fixtures/xss/SOURCES.md; the output is parsed with the standard
library's html.parser and checked structurally, not by string matching.
"""

from __future__ import annotations

import codecs
import html
import os
import subprocess
import sys
import unicodedata
from html.parser import HTMLParser
from pathlib import Path

import pytest

from conversations import rendering
from conversations.rendering import render_markdown, render_plain_text, sanitize_html

# The contract, written out here so that widening the module's allow-list is a
# visible change to this file too.
ALLOWED_ATTRIBUTES = {
    "p": set(),
    "br": set(),
    "hr": set(),
    "h1": set(),
    "h2": set(),
    "h3": set(),
    "h4": set(),
    "h5": set(),
    "h6": set(),
    "strong": set(),
    "em": set(),
    "del": set(),
    "s": set(),
    "code": {"class"},
    "pre": {"class"},
    "blockquote": set(),
    "ul": {"class"},
    "ol": {"start", "class"},
    "li": {"class"},
    "input": {"type", "disabled", "checked"},
    "table": set(),
    "thead": set(),
    "tbody": set(),
    "tr": set(),
    "th": {"class"},
    "td": {"class"},
    "a": {"href", "title", "rel", "target"},
    "span": {"class"},
    # MathML
    "math": {"display"},
    "mi": {"mathvariant"},
    "mo": {
        "fence", "separator", "stretchy", "largeop", "movablelimits", "symmetric",
        "minsize", "maxsize", "lspace", "rspace", "form", "accent",
    },
    "mstyle": {"displaystyle", "scriptlevel", "mathvariant", "mathsize"},
    "mspace": {"width", "height", "depth", "linebreak"},
    "mpadded": {"width", "height", "depth", "lspace", "voffset"},
    "mfrac": {"linethickness"},
    "mover": {"accent"},
    "munder": {"accentunder"},
    "munderover": {"accent", "accentunder"},
    "menclose": {"notation"},
    "mtable": {
        "columnalign", "rowalign", "columnspacing", "rowspacing", "columnlines", "rowlines", "frame", "displaystyle",
    },
    "mtr": {"columnalign", "rowalign"},
    "mtd": {"columnalign", "rowalign", "columnspan", "rowspan"},
    **{tag: set() for tag in (
        "mrow", "mn", "ms", "mtext", "msub", "msup", "msubsup", "msqrt", "mroot", "mphantom", "merror",
    )},
}  # fmt: skip
IMG_ATTRIBUTES = {"src", "alt", "title"}
FORBIDDEN_ELEMENTS = {
    "script", "iframe", "object", "embed", "base", "meta", "link", "form",
    "style", "svg", "noscript", "template", "button", "select", "textarea",
    "maction", "semantics", "annotation", "annotation-xml", "mglyph", "malignmark",
}  # fmt: skip
URL_ATTRIBUTES = {
    "href", "src", "action", "formaction", "poster", "background", "xlink:href",
}  # fmt: skip
DANGEROUS_SCHEMES = ("javascript:", "vbscript:", "data:", "file:")


def _corpus_path() -> Path:
    fixtures = os.environ.get("CHAT_FIXTURES_DIR")
    if fixtures:
        return Path(fixtures) / "xss" / "payloads.txt"
    return Path(__file__).resolve().parents[1] / "fixtures" / "xss" / "payloads.txt"


def _corpus() -> list:
    path = _corpus_path()
    if not path.is_file():
        # Fail loudly rather than collect zero cases.
        return [pytest.param(None, id="corpus-missing")]
    with path.open(encoding="ascii") as lines:
        return [
            pytest.param(codecs.decode(line.rstrip("\n"), "unicode_escape"), id=f"L{number:03d}")
            for number, line in enumerate(lines, start=1)
        ]


CORPUS = _corpus()


class _Element:
    def __init__(self, tag: str, attrs: list[tuple[str, str | None]]):
        self.tag = tag
        self.attrs = attrs

    def get(self, name: str) -> str | None:
        return next((value for key, value in self.attrs if key == name), None)


class _Collector(HTMLParser):
    """Record start tags (with entity-decoded attributes), text and comments."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.elements: list[_Element] = []
        self.events: list[tuple] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.elements.append(_Element(tag, attrs))
        self.events.append(("start", tag, tuple(attrs)))

    def handle_endtag(self, tag):
        self.events.append(("end", tag))

    def handle_data(self, data):
        self.text.append(data)
        if self.events and self.events[-1][0] == "text":
            self.events[-1] = ("text", self.events[-1][1] + data)
        else:
            self.events.append(("text", data))

    def handle_comment(self, data):
        self.events.append(("comment", data))

    def handle_decl(self, decl):
        self.events.append(("decl", decl))

    def handle_pi(self, data):
        self.events.append(("pi", data))

    def unknown_decl(self, data):
        self.events.append(("unknown_decl", data))


def _parse(markup: str) -> _Collector:
    collector = _Collector()
    collector.feed(markup)
    collector.close()
    return collector


def _serialize(events: list[tuple]) -> str:
    out = []
    for event in events:
        if event[0] == "start":
            attrs = "".join(f' {name}="{html.escape(value or "", quote=True)}"' for name, value in event[2])
            out.append(f"<{event[1]}{attrs}>")
        elif event[0] == "end":
            out.append(f"</{event[1]}>")
        elif event[0] == "text":
            out.append(html.escape(event[1], quote=False))
        else:
            out.append(f"<!--{event[1]}-->")
    return "".join(out)


def _url_for_scheme_check(value: str) -> str:
    # Browsers drop tabs and newlines anywhere in a URL and strip leading
    # control characters and spaces; removing every such character anywhere is
    # stricter than either.
    return "".join(
        ch for ch in value if not (ch.isspace() or unicodedata.category(ch) in {"Cc", "Cf", "Zl", "Zp"})
    ).lower()


def _assert_safe(markup: str, *, images_allowed: bool) -> _Collector:
    parsed = _parse(markup)
    for element in parsed.elements:
        assert element.tag not in FORBIDDEN_ELEMENTS, markup
        allowed = IMG_ATTRIBUTES if element.tag == "img" and images_allowed else None
        if allowed is None:
            assert element.tag in ALLOWED_ATTRIBUTES, f"<{element.tag}> in {markup!r}"
            allowed = ALLOWED_ATTRIBUTES[element.tag]
        for name, value in element.attrs:
            assert not name.startswith("on"), markup
            assert not name.startswith(("hx-", "data-", "ws-")), markup
            assert name not in {"style", "id", "name"}, markup
            assert name in allowed, f"{name} on <{element.tag}> in {markup!r}"
            if name in URL_ATTRIBUTES:
                assert not _url_for_scheme_check(value or "").startswith(DANGEROUS_SCHEMES), markup
        if element.tag == "a":
            href = element.get("href")
            if href is not None:
                assert href.lower().startswith(("http:", "https:", "mailto:")), markup
            rel = (element.get("rel") or "").split()
            assert "noopener" in rel and "noreferrer" in rel, markup
            assert element.get("target") == "_blank", markup
        if element.tag == "input":
            assert element.get("type") == "checkbox" and element.get("disabled") is not None, markup
        if element.tag == "img":
            assert (element.get("src") or "").lower().startswith(("http:", "https:")), markup
    return parsed


def _assert_stable(markup: str) -> None:
    # mXSS: one more sanitize pass, and one more parse/serialize round trip,
    # must change nothing.
    assert str(sanitize_html(markup)) == markup
    events = _parse(markup).events
    assert _parse(_serialize(events)).events == events


@pytest.fixture
def remote_images_off(settings):
    settings.CHAT_ALLOW_REMOTE_IMAGES = False


@pytest.fixture
def remote_images_on(settings):
    settings.CHAT_ALLOW_REMOTE_IMAGES = True


# --- the XSS corpus --------------------------------------------------------


@pytest.mark.parametrize("payload", CORPUS)
def test_markdown_of_payload_is_inert_with_remote_images_off(payload, remote_images_off):
    assert payload is not None, f"XSS corpus not found at {_corpus_path()}; set CHAT_FIXTURES_DIR"
    markup = str(render_markdown(payload))
    parsed = _assert_safe(markup, images_allowed=False)
    assert not any(element.tag == "img" for element in parsed.elements)
    _assert_stable(markup)


@pytest.mark.parametrize("payload", CORPUS)
def test_markdown_of_payload_is_inert_with_remote_images_on(payload, remote_images_on):
    assert payload is not None, f"XSS corpus not found at {_corpus_path()}; set CHAT_FIXTURES_DIR"
    markup = str(render_markdown(payload))
    _assert_safe(markup, images_allowed=True)
    _assert_stable(markup)


@pytest.mark.parametrize("payload", CORPUS)
def test_plain_text_of_payload_is_text_only(payload):
    assert payload is not None, f"XSS corpus not found at {_corpus_path()}; set CHAT_FIXTURES_DIR"
    markup = str(render_plain_text(payload))
    parsed = _parse(markup)
    assert parsed.elements == []
    assert [event[0] for event in parsed.events if event[0] != "text"] == []
    assert html.unescape(markup) == payload


@pytest.mark.parametrize("payload", CORPUS)
def test_html_format_puts_a_payload_in_an_attribute_and_in_text_as_text_only(payload):
    assert payload is not None, f"XSS corpus not found at {_corpus_path()}; set CHAT_FIXTURES_DIR"
    markup = str(rendering.html_format('<p title="{}">{}</p>', payload, payload))
    parsed = _parse(markup)
    assert [(element.tag, element.attrs) for element in parsed.elements] == [("p", [("title", payload)])]
    assert "".join(parsed.text) == payload


def test_html_format_and_html_join_keep_what_is_marked_safe_and_escape_the_rest():
    bold = rendering.html_format("<b>{}</b>", "<i>")
    assert bold == "<b>&lt;i&gt;</b>"
    assert rendering.html_format("<p>{}{}{}</p>", bold, "<i>", 3) == "<p><b>&lt;i&gt;</b>&lt;i&gt;3</p>"
    assert rendering.html_join([bold, "\"'&", 3]) == "<b>&lt;i&gt;</b>&quot;&#x27;&amp;3"
    assert hasattr(rendering.html_join([]), "__html__")
    assert rendering.html_literal("<hr>") == "<hr>"
    assert hasattr(rendering.html_literal("<hr>"), "__html__")
    with pytest.raises(TypeError):
        rendering.html_format("<p>{}</p>")  # A template without values is html_literal's, as Django refuses it.


# --- benign Markdown still renders ----------------------------------------


def test_bold_and_link_render_with_rel(remote_images_off):
    parsed = _parse(str(render_markdown("**bold** [ok](https://example.com)")))

    tags = [element.tag for element in parsed.elements]
    assert "strong" in tags
    (link,) = [element for element in parsed.elements if element.tag == "a"]
    assert link.get("href") == "https://example.com"
    assert set((link.get("rel") or "").split()) >= {"noopener", "noreferrer", "nofollow"}


def test_image_renders_as_link_when_remote_images_are_off(remote_images_off):
    parsed = _parse(str(render_markdown("![ok](https://example.com/a.png)")))

    assert [element.tag for element in parsed.elements] == ["p", "a"]
    assert parsed.elements[1].get("href") == "https://example.com/a.png"
    assert "".join(parsed.text).strip() == "ok"


def test_image_without_alt_text_links_with_its_url_as_text(remote_images_off):
    parsed = _parse(str(render_markdown("![](https://example.com/a.png)")))

    assert "".join(parsed.text).strip() == "https://example.com/a.png"


def test_image_renders_as_img_when_remote_images_are_on(remote_images_on):
    parsed = _parse(str(render_markdown("![ok](https://example.com/a.png)")))

    (image,) = [element for element in parsed.elements if element.tag == "img"]
    assert image.get("src") == "https://example.com/a.png"
    assert image.get("alt") == "ok"


def test_setting_is_read_at_call_time(settings):
    settings.CHAT_ALLOW_REMOTE_IMAGES = False
    assert "<img" not in render_markdown("![ok](https://example.com/a.png)")
    settings.CHAT_ALLOW_REMOTE_IMAGES = True
    assert "<img" in render_markdown("![ok](https://example.com/a.png)")


def test_data_image_is_not_rendered_even_when_remote_images_are_on(remote_images_on):
    markup = str(render_markdown("![x](data:image/png;base64,iVBORw0KGgo=)"))

    assert "<img" not in markup
    assert "<a" not in markup


def test_fenced_python_block_is_highlighted_and_escaped(remote_images_off):
    markup = str(render_markdown("```python\nprint('<b>hi</b>')\n```"))
    parsed = _parse(markup)

    assert "<b>hi</b>" in "".join(parsed.text)
    assert "b" not in {element.tag for element in parsed.elements}
    (code,) = [element for element in parsed.elements if element.tag == "code"]
    assert code.get("class") == "language-python"
    span_classes = {element.get("class") for element in parsed.elements if element.tag == "span"}
    assert {"nb", "s1"} <= span_classes


def test_fence_with_unknown_safe_language_is_plain_code_with_class(remote_images_off):
    parsed = _parse(str(render_markdown("```mermaid\ngraph TD; A-->B\n```")))

    (code,) = [element for element in parsed.elements if element.tag == "code"]
    assert code.get("class") == "language-mermaid"
    assert not any(element.tag == "span" for element in parsed.elements)
    assert "graph TD; A-->B" in "".join(parsed.text)


def test_fence_with_unsafe_info_string_gets_no_class(remote_images_off):
    parsed = _parse(str(render_markdown('```" onmouseover="alert(1)\nx\n```')))

    (code,) = [element for element in parsed.elements if element.tag == "code"]
    assert code.attrs == []


def test_code_cannot_close_its_own_pre(remote_images_off):
    parsed = _parse(str(render_markdown("```\n</code></pre><img src=x onerror=alert(1)>\n```")))

    assert [element.tag for element in parsed.elements] == ["pre", "code"]
    assert "</code></pre><img src=x onerror=alert(1)>" in "".join(parsed.text)


def _code_spans(markup: str) -> list[_Element]:
    return [element for element in _parse(markup).elements if element.tag == "span"]


def test_code_block_over_the_size_limit_is_plain(remote_images_off):
    body = "x = 1\n" * (rendering.MAX_HIGHLIGHT_CHARS // 6 + 1)
    markup = str(render_markdown(f"```python\n{body}```"))

    assert '<code class="language-python">' in markup
    assert _code_spans(markup) == []


def test_code_block_with_a_very_long_line_is_plain(remote_images_off):
    body = "x = '" + "a" * rendering.MAX_HIGHLIGHT_LINE_CHARS + "'\n"
    markup = str(render_markdown(f"```python\n{body}```"))

    assert _code_spans(markup) == []


@pytest.fixture
def lexed(monkeypatch) -> list[str]:
    """Record the code every Pygments lexer is given (a counting wrapper around `Lexer.get_tokens`)."""
    from pygments.lexer import Lexer

    given: list[str] = []
    original = Lexer.get_tokens

    def get_tokens(self, text, *args, **kwargs):
        given.append(text)
        return original(self, text, *args, **kwargs)

    monkeypatch.setattr(Lexer, "get_tokens", get_tokens)
    return given


def _fences(language: str, bodies: list[str]) -> str:
    return "\n".join(f"```{language}\n{body}```\n" for body in bodies)


def _highlighted(markup: str) -> list[bool]:
    """Return, for each code block of `markup` in order, whether it is highlighted."""
    return [element.get("class") == "highlight" for element in _parse(markup).elements if element.tag == "pre"]


def _plain_block(language: str, body: str) -> str:
    return f'<pre><code class="language-{language}">{html.escape(body, quote=False)}</code></pre>'


def test_blocks_past_the_work_bound_of_a_reply_are_plain(remote_images_off, lexed):
    # Blocks of 6,000 characters: two fit in MAX_HIGHLIGHT_WORK (10,000 ** 2), a third does not;
    # a small block after it still fits.
    body = "x = '<b>'\n" * 600
    markup = str(render_markdown(_fences("python", [body, body, body, "x = 1\n"])))

    assert _highlighted(markup) == [True, True, False, True]
    assert lexed == [body, body, "x = 1\n"]
    assert _plain_block("python", body) in markup


def test_blocks_past_the_character_bound_of_a_reply_are_plain(remote_images_off, lexed):
    body = "print('hi')\n" * 50  # 600 characters: far from the work bound
    fits = rendering.MAX_HIGHLIGHT_TOTAL_CHARS // len(body)
    markup = str(render_markdown(_fences("python", [body] * (fits + 2))))

    assert _highlighted(markup) == [True] * fits + [False, False]
    assert sum(map(len, lexed)) <= rendering.MAX_HIGHLIGHT_TOTAL_CHARS
    assert _plain_block("python", body) in markup


def test_blocks_past_the_block_bound_of_a_reply_are_plain(remote_images_off):
    markup = str(render_markdown(_fences("py", ["x\n"] * (rendering.MAX_HIGHLIGHT_BLOCKS + 1))))

    assert _highlighted(markup) == [True] * rendering.MAX_HIGHLIGHT_BLOCKS + [False]


@pytest.mark.parametrize("language", ["systemd", "mcschema", "c-objdump", "asm"])
def test_languages_off_the_list_are_plain_with_their_class(language, remote_images_off, lexed):
    markup = str(render_markdown(f"```{language}\n<!--\n```"))

    assert _plain_block(language, "<!--\n") in markup
    assert lexed == []


def test_a_lexer_that_makes_no_progress_is_stopped():
    from pygments.lexer import Lexer
    from pygments.token import Text

    class Stuck(Lexer):
        # Pygments 2.21's `mcschema` does this on "<!--".
        def get_tokens_unprocessed(self, text):
            while True:
                yield 0, Text, ""

    assert rendering._highlight("x = 1\n", Stuck) is None


# An ordinary reply: prose, and code in two languages named by an alias.
ORDINARY_REPLY = "Use **this**:\n\n```py\ndef double(x):\n    return x * 2\n```\n\nthen\n\n```sh\necho done\n```\n"


def test_the_same_text_renders_the_same_html_in_a_fresh_process(remote_images_off):
    # The first render of a process builds markdown-it, the sanitizer and the lexers' expressions
    # (~0.1-0.3 s): it highlights all the same.
    script = (
        "import sys, django; django.setup(); from conversations.rendering import render_markdown; "
        "sys.stdout.write(str(render_markdown(sys.stdin.read())))"
    )
    cold = subprocess.run(
        [sys.executable, "-c", script],
        input=ORDINARY_REPLY,
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "chatsite.settings", "CHAT_ALLOW_REMOTE_IMAGES": "0"},
        cwd=Path(__file__).resolve().parents[2],
        timeout=120,
    ).stdout
    warm = str(render_markdown(ORDINARY_REPLY))

    assert cold == warm
    assert _highlighted(warm) == [True, True]


def test_the_same_text_renders_the_same_html_twice(remote_images_off):
    text = ORDINARY_REPLY + _fences("python", ["x = 1\n" * 1_500] * 3)

    assert str(render_markdown(text)) == str(render_markdown(text))


@pytest.mark.parametrize(
    "source",
    [
        # Quadratic or worse in Pygments 2.21 (see conversations/rendering.py; bench/render.py times them).
        "```c-objdump\n" + "(" * 20_000 + "\n```",
        "```make\n" + ("{" * 999 + "\n") * 20 + "```",
        "```html+ng2\n" + ("(" * 999 + "\n") * 10 + "```",
        "```mcschema\n<!--\n```",
        # Openers that never close, in highlighted languages: quadratic in the size of a block.
        ("```go\n" + ("/*a" * 166 + "\n") * 20 + "```\n") * 5,
        ("```less\n" + ("/*a" * 26 + "\n") * 60 + "```\n") * 30,
    ],
    ids=["c-objdump-one-line", "make-braces", "html+ng2-parens", "mcschema", "go-10k-blocks", "less-5k-blocks"],
)
def test_hostile_code_block_does_not_hang(source, remote_images_off, lexed):
    markup = str(render_markdown(source))

    assert "<pre" in markup
    # No clock: the lexers are given at most what the bounds allow, whatever the machine.
    assert sum(len(code) ** 2 for code in lexed) <= rendering.MAX_HIGHLIGHT_WORK
    assert sum(map(len, lexed)) <= rendering.MAX_HIGHLIGHT_TOTAL_CHARS
    assert len(lexed) <= rendering.MAX_HIGHLIGHT_BLOCKS
    assert all(len(line) <= rendering.MAX_HIGHLIGHT_LINE_CHARS for code in lexed for line in code.splitlines())


def test_gfm_table_alignment_becomes_a_class_not_a_style(remote_images_off):
    markup = str(render_markdown("| a | b | c | d |\n|:--|:-:|--:|---|\n| 1 | 2 | 3 | 4 |"))
    parsed = _parse(markup)

    tags = {element.tag for element in parsed.elements}
    assert {"table", "thead", "tbody", "th", "td"} <= tags
    cells = [element.get("class") for element in parsed.elements if element.tag in {"th", "td"}]
    assert cells == ["align-left", "align-center", "align-right", None] * 2
    assert all(element.get("style") is None for element in parsed.elements)


def test_strikethrough_and_ordered_list_start_render(remote_images_off):
    parsed = _parse(str(render_markdown("~~gone~~\n\n3. three\n4. four")))

    assert "s" in {element.tag for element in parsed.elements}
    (ordered,) = [element for element in parsed.elements if element.tag == "ol"]
    assert ordered.get("start") == "3"


def test_inline_code_keeps_script_tag_as_text(remote_images_off):
    parsed = _parse(str(render_markdown("`<script>alert(1)</script>`")))

    assert [element.tag for element in parsed.elements] == ["p", "code"]
    assert "".join(parsed.text).strip() == "<script>alert(1)</script>"


def test_raw_html_in_source_is_text(remote_images_off):
    parsed = _parse(str(render_markdown("<b>x</b>")))

    assert [element.tag for element in parsed.elements] == ["p"]
    assert "".join(parsed.text).strip() == "<b>x</b>"


def test_bare_url_is_linkified(remote_images_off):
    parsed = _parse(str(render_markdown("see https://example.com/docs today")))

    (link,) = [element for element in parsed.elements if element.tag == "a"]
    assert link.get("href") == "https://example.com/docs"


def test_relative_and_protocol_relative_links_are_not_links(remote_images_off):
    parsed = _parse(str(render_markdown("[a](/account/delete) [b](//attacker.example/x)")))

    assert not any(element.tag == "a" for element in parsed.elements)


def test_result_is_safe_string(remote_images_off):
    assert hasattr(render_markdown("x"), "__html__")
    assert hasattr(render_plain_text("x"), "__html__")


# --- plain text ------------------------------------------------------------


def test_plain_text_escapes_html_special_characters():
    assert render_plain_text("a & b < c > d \" e ' f") == ("a &amp; b &lt; c &gt; d &quot; e &#x27; f")


def test_plain_text_keeps_newlines_without_br():
    assert render_plain_text("one\ntwo") == "one\ntwo"


def test_remote_images_load_over_https_only(settings):
    # The Content-Security-Policy allows https: images only; an http image would be blocked, so it is a link.
    settings.CHAT_ALLOW_REMOTE_IMAGES = True
    assert "<img" in render_markdown("![ok](https://example.com/a.png)")
    markup = str(render_markdown("![plain](http://example.com/a.png)"))
    assert "<img" not in markup and 'href="http://example.com/a.png"' in markup


# --- math: TeX to MathML ----------------------------------------------------


def _math_elements(markup: str) -> list[_Element]:
    return [element for element in _parse(markup).elements if element.tag == "math"]


@pytest.mark.parametrize(
    ("source", "display"),
    [
        ("Euler: $E=mc^2$.", "inline"),
        ("so \\(a^2+b^2=c^2\\) holds", "inline"),
        ("$$\\int_0^1 x\\,dx$$", "block"),
        ("\\[\\sum_{k=1}^n k\\]", "block"),
        ("\\[\nx = \\frac{-b \\pm \\sqrt{b^2-4ac}}{2a}\n\\]", "block"),
        ("$$\n\\begin{pmatrix}1 & 2\\\\ 3 & 4\\end{pmatrix}\n$$", "block"),
        ("the area is \\[\\pi r^2\\] here", "block"),
    ],
)
def test_each_delimiter_renders_mathml(source, display, remote_images_off):
    markup = str(render_markdown(source))

    (math,) = _math_elements(markup)
    assert math.get("display") == display
    assert "$" not in "".join(_parse(markup).text)
    _assert_safe(markup, images_allowed=False)
    _assert_stable(markup)


def test_backslash_commands_reach_the_formula(remote_images_off):
    # CommonMark's escapes would turn `\,` into `,` (the bug: "x,dx").
    parsed = _parse(str(render_markdown("$$\\int_0^1 x\\,dx$$")))

    assert "mspace" in {element.tag for element in parsed.elements}
    assert "," not in "".join(parsed.text)
    assert "∫" in "".join(parsed.text)


@pytest.mark.parametrize(
    "source",
    [
        "It costs $5 and $10.",
        "From $3.50 to $ 4 and back",
        "Prices: $20, $30 and $40",
        "escaped \\$x\\$ dollars",
        "code `$x$` stays code",
    ],
)
def test_dollar_amounts_and_escaped_dollars_stay_text(source, remote_images_off):
    markup = str(render_markdown(source))

    assert _math_elements(markup) == []
    assert "$" in "".join(_parse(markup).text)


@pytest.mark.parametrize(
    ("source", "shown"),
    [
        ("$\\frac{$ and more", "$\\frac{$"),
        ("$\\unknowncommand{x}$", "$\\unknowncommand{x}$"),
        ("\\(\\frac{\\)", "\\(\\frac{\\)"),
        ("$$\n\\frac{\n$$", "$$\n\\frac{\n$$"),
    ],
)
def test_a_formula_that_does_not_parse_is_shown_as_code(source, shown, remote_images_off):
    parsed = _parse(str(render_markdown(source)))

    assert "math" not in {element.tag for element in parsed.elements}
    assert "code" in {element.tag for element in parsed.elements}
    assert shown in "".join(parsed.text)


def test_a_formula_past_the_size_limit_is_shown_as_code(remote_images_off):
    from conversations.mathml import MAX_FORMULA_CHARS

    tex = "x+" * (MAX_FORMULA_CHARS // 2) + "y"
    parsed = _parse(str(render_markdown(f"${tex}$")))

    assert "math" not in {element.tag for element in parsed.elements}
    assert f"${tex}$" in "".join(parsed.text)


def test_deeply_nested_formula_is_shown_as_code(remote_images_off):
    tex = "{" * 1500 + "x" + "}" * 1500

    parsed = _parse(str(render_markdown(f"$${tex}$$")))

    assert "math" not in {element.tag for element in parsed.elements}


def test_html_written_in_tex_text_is_text(remote_images_off):
    markup = str(render_markdown("$\\text{</math><img src=x onerror=alert(1)>}$"))
    parsed = _assert_safe(markup, images_allowed=False)

    assert [element.tag for element in parsed.elements] == ["p", "math", "mrow", "mtext"]
    assert "<img\xa0src=x\xa0onerror=alert(1)>" in "".join(parsed.text)
    _assert_stable(markup)


@pytest.mark.parametrize(
    "hostile",
    [
        '<math><mtext href="javascript:alert(1)">x</mtext></math>',
        '<math><mi xlink:href="javascript:alert(1)">x</mi></math>',
        '<math><maction actiontype="statusline#javascript:alert(1)"><mi>x</mi></maction></math>',
        '<math><semantics><mi>x</mi><annotation-xml encoding="text/html">'
        "<img src=x onerror=alert(1)></annotation-xml></semantics></math>",
        "<math><mtext><table><mglyph><style><img src=x onerror=alert(1)></style></mglyph></table></mtext></math>",
        '<math><mi style="position:fixed" mathcolor="red" mathbackground="url(javascript:alert(1))">x</mi></math>',
        "<math><mtext><script>alert(1)</script></mtext></math>",
        '<math><annotation encoding="text/html">&lt;img src=x onerror=alert(1)&gt;</annotation></math>',
        "<mi>outside of math</mi><mglyph src=x></mglyph>",
    ],
)
def test_hostile_mathml_is_cleaned_by_the_allow_list(hostile):
    markup = str(sanitize_html(hostile))

    parsed = _assert_safe(markup, images_allowed=False)
    assert not any(
        name in {"href", "xlink:href", "style", "mathcolor", "mathbackground"}
        for e in parsed.elements
        for name, _ in e.attrs
    )
    _assert_stable(markup)


def test_math_budget_per_reply_leaves_later_formulas_as_code(remote_images_off):
    from conversations.mathml import MAX_MATH_CHARS

    formula = "$" + "x+" * 900 + "y$ "
    count = MAX_MATH_CHARS // (len(formula) - 3) + 2
    parsed = _parse(str(render_markdown(formula * count)))

    rendered = [element for element in parsed.elements if element.tag == "math"]
    assert 0 < len(rendered) < count
    assert len([element for element in parsed.elements if element.tag == "code"]) == count - len(rendered)


# --- GFM extras: task lists, links in a new tab -----------------------------


def test_task_list_items_are_disabled_checkboxes(remote_images_off):
    markup = str(render_markdown("- [ ] todo\n- [x] done\n- plain"))
    parsed = _assert_safe(markup, images_allowed=False)

    boxes = [element for element in parsed.elements if element.tag == "input"]
    assert [(box.get("type"), box.get("disabled") is not None, box.get("checked") is not None) for box in boxes] == [
        ("checkbox", True, False),
        ("checkbox", True, True),
    ]
    (task_list,) = [element for element in parsed.elements if element.tag == "ul"]
    assert task_list.get("class") == "contains-task-list"


def test_links_open_in_a_new_tab_without_opener(remote_images_off):
    parsed = _parse(str(render_markdown("[a](https://example.com) and https://example.org")))

    links = [element for element in parsed.elements if element.tag == "a"]
    assert len(links) == 2
    for link in links:
        assert link.get("target") == "_blank"
        assert {"noopener", "noreferrer"} <= set((link.get("rel") or "").split())


def test_a_stored_target_other_than_blank_is_replaced():
    parsed = _parse(str(sanitize_html('<a href="https://example.com" target="_self">x</a><input type="text">')))

    (link,) = [element for element in parsed.elements if element.tag == "a"]
    assert link.get("target") == "_blank"
    (box,) = [element for element in parsed.elements if element.tag == "input"]
    assert box.get("type") == "checkbox" and box.get("disabled") is not None


@pytest.mark.parametrize("tex", [r"\hspace{5000em}", r"\hspace{-300em}", r"\hspace{100000px}"])
def test_a_huge_or_negative_math_space_is_dropped_so_a_formula_cannot_widen_or_overlap_the_page(tex):
    html = str(render_markdown(f"${tex} x$"))
    assert "<math" in html
    assert "width=" not in html


def test_ordinary_math_spaces_are_kept():
    html = str(render_markdown(r"$a \, b \quad c \! d$"))
    assert 'width="0.167em"' in html and 'width="1em"' in html and 'width="negativethinmathspace"' in html
