"""Turn chat text into HTML that is safe to put in a page.

Three entry points, all returning ``SafeString``:

- ``render_markdown``: an assistant reply (or any Markdown) to sanitized HTML,
  fenced code highlighted by Pygments. Run once when a reply finishes; the
  result is stored with the message.
- ``render_user_text``: a user's message as typed (not Markdown), its TeX
  formulas as MathML, sanitized with the same allow-list. Run once when the
  message is saved; the result is stored with the message.
- ``render_plain_text``: escape text, for deltas while a reply streams and
  for alerts. Line breaks are kept by CSS (``white-space: pre-wrap``).

And the builders of the fragments the site writes in Python rather than in
a template (a message's bubble, `bubbles.py`): ``html_format``, which
escapes every value put into an HTML template, ``html_join`` and
``html_literal``.

Safety comes in two layers:

1. markdown-it-py with raw HTML off (CommonMark spec, section 6.6 "Raw HTML"
   becomes text), and a link validator that accepts only ``http``, ``https``
   and ``mailto`` destinations;
2. nh3 (the Python binding of the Rust crate ammonia) re-parses the HTML with
   html5ever and keeps only an explicit allow-list of elements, attributes,
   classes and URL schemes. htmx's security docs ask that third-party HTML be
   scrubbed "including removing attributes starting with hx- and data-hx"; the
   allow-list keeps no ``hx-*``, ``data-*``, ``ws-*``, ``on*``, ``style``,
   ``id`` or ``name`` attribute at all, and every link's ``target`` is ``_blank``.

This is the only module of the project allowed to call ``mark_safe``.

Sources: CommonMark spec 0.31.2 (https://spec.commonmark.org/0.31.2/);
GFM spec for tables and strikethrough (https://github.github.com/gfm/);
nh3 docs (https://nh3.readthedocs.io/) and ammonia's ``Builder`` docs
(https://docs.rs/ammonia/); htmx docs, "Security"
(https://htmx.org/docs/#security); OWASP HTML5 Security Cheat Sheet,
"Tabnabbing" (``rel="noopener noreferrer"``); OWASP DOM Clobbering
Prevention Cheat Sheet (no ``id``/``name``).
"""

from __future__ import annotations

import functools
import io
import re
from collections.abc import Iterable, Sequence
from html import escape as escape_text
from typing import cast

import nh3
from django.conf import settings
from django.utils.safestring import SafeData, SafeString, mark_safe
from markdown_it import MarkdownIt
from markdown_it.common.utils import escapeHtml, unescapeAll
from markdown_it.renderer import RendererHTML
from markdown_it.rules_core import StateCore
from markdown_it.token import Token
from markdown_it.utils import EnvType, OptionsDict
from mdit_py_plugins.tasklists import tasklists_plugin
from pygments.formatters import HtmlFormatter
from pygments.lexer import Lexer
from pygments.lexers import find_lexer_class_by_name
from pygments.token import STANDARD_TYPES
from pygments.util import ClassNotFound

from conversations.mathml import math_plugin, text_math_html

__all__ = ["markdown_text", "render_markdown", "render_plain_text", "render_user_text", "sanitize_html", "stored_html"]

# Schemes a link may use. Relative URLs are refused too: a relative link in a
# reply would point into this site (e.g. a logout or delete URL).
LINK_SCHEMES = frozenset({"http", "https", "mailto"})
# https only: the Content-Security-Policy allows `img-src https:` when remote images are on.
IMAGE_SCHEMES = frozenset({"https"})

ALLOWED_TAGS = frozenset(
    {
        "p", "br", "hr",
        "h1", "h2", "h3", "h4", "h5", "h6",
        "strong", "em", "del", "s", "code", "pre", "blockquote",
        "ul", "ol", "li",
        "table", "thead", "tbody", "tr", "th", "td",
        "a", "span", "input",
    }
)  # fmt: skip
# MathML Core's presentation elements (https://www.w3.org/TR/mathml-core/#presentation-markup),
# those latex2mathml writes. Not allowed: <maction> (actions on click), <annotation-xml> and
# <semantics> (HTML integration points, OWASP's mXSS class), <mglyph> and <malignmark>.
MATHML_TAGS = frozenset(
    {
        "math", "mrow", "mi", "mn", "mo", "ms", "mtext", "mspace", "msub", "msup", "msubsup",
        "munder", "mover", "munderover", "mfrac", "msqrt", "mroot", "mstyle", "mpadded",
        "mphantom", "menclose", "mtable", "mtr", "mtd", "merror",
    }
)  # fmt: skip
# `rel` and `target` are not listed: nh3 sets them itself on every <a> (link_rel, LINK_TARGET);
# neither are <input>'s `type` and `disabled` (TASK_CHECKBOX).
ALLOWED_ATTRIBUTES: dict[str, frozenset[str]] = {
    "*": frozenset(),  # no generic attributes (ammonia's default is lang, title)
    "a": frozenset({"href", "title"}),
    "ol": frozenset({"start"}),
    # Only the fence renderer below emits this, from a checked language token.
    "code": frozenset({"class"}),
    # GFM task lists: `- [x] done` (https://github.github.com/gfm/#task-list-items-extension-).
    "input": frozenset({"checked"}),
    # MathML's presentation attributes that change layout only, never a URL or a colour.
    "math": frozenset({"display"}),
    "mi": frozenset({"mathvariant"}),
    "mo": frozenset({"fence", "separator", "stretchy", "largeop", "movablelimits", "symmetric"})
    | {"minsize", "maxsize", "lspace", "rspace", "form", "accent"},
    "mstyle": frozenset({"displaystyle", "scriptlevel", "mathvariant", "mathsize"}),
    "mspace": frozenset({"width", "height", "depth", "linebreak"}),
    "mpadded": frozenset({"width", "height", "depth", "lspace", "voffset"}),
    "mfrac": frozenset({"linethickness"}),
    "mover": frozenset({"accent"}),
    "munder": frozenset({"accentunder"}),
    "munderover": frozenset({"accent", "accentunder"}),
    "menclose": frozenset({"notation"}),
    "mtable": frozenset(
        {"columnalign", "rowalign", "columnspacing", "rowspacing", "columnlines", "rowlines", "frame", "displaystyle"}
    ),
    "mtr": frozenset({"columnalign", "rowalign"}),
    "mtd": frozenset({"columnalign", "rowalign", "columnspan", "rowspan"}),
}
# MathML lengths (MathML Core, "<length-percentage>"; MathML 3's named spaces): kept only within
# MATH_LENGTH_MAX, so `\hspace{5000em}` or a negative width cannot push a bubble wider than the
# page or draw a formula over its neighbours.
MATH_LENGTH_ATTRIBUTES = frozenset(
    {"width", "height", "depth", "lspace", "rspace", "voffset", "minsize", "maxsize", "mathsize"}
    | {"columnspacing", "rowspacing", "linethickness"}
)
MATH_LENGTH_MAX = {"em": 5.0, "ex": 10.0, "px": 80.0, "pt": 60.0, "%": 300.0, "": 5.0}
_MATH_LENGTH = re.compile(r"\s*(-?(?:\d+\.?\d*|\.\d+))\s*(em|ex|px|pt|%)?\s*")
_MATH_NAMED_SPACES = frozenset(
    f"{sign}{size}mathspace"
    for sign in ("", "negative")
    for size in ("veryverythin", "verythin", "thin", "medium", "thick", "verythick", "veryverythick")
) | {"small", "normal", "big", "true", "false", "infinity"}
# Links open in a new tab (with LINK_REL, so the reply's page cannot reach back into this one).
LINK_TARGET = "_blank"
# A task list's box shows its state and cannot be clicked: there is nothing to save it to.
TASK_CHECKBOX = {"type": "checkbox", "disabled": ""}
# Table column alignment (GFM `:--:`) as a class: no style attribute is allowed.
ALIGN_CLASSES = {"left": "align-left", "center": "align-center", "right": "align-right"}
IMAGE_ATTRIBUTES = frozenset({"src", "alt", "title"})
LINK_REL = "noopener noreferrer nofollow"

# A fence info string's first word becomes `class="language-<word>"` only if it
# looks like a language name (`c++`, `objective-c`, `f#`, `python3`).
_SAFE_LANGUAGE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_+#.-]{0,39}")
# Highlighting is bounded by the input, never by a clock: the same text always
# renders to the same HTML, in a cold process as in a warm one. Code past a
# bound is shown escaped, without highlighting.
#
# Pygments lexers are regular expressions run by Python, and many are
# quadratic, some worse, on hostile input. Measured once with Pygments 2.21
# on a shared 2-core VM, every lexer against lines of one repeated character
# or pair (`{`, `/*a`, `<!--`, tab, ...):
# - in a block, an opener that never closes is scanned to the end of the
#   block at every position: 10 KB of `/*a` take 0.3 s with `go`, `less` or
#   `protobuf`, 0.7 s with `asm`, 0.36 s of `{` with `delphi`; 4 KB take
#   0.33 s with `systemd`, 2 KB of tabs 1.3 s with `easytrieve` (cubic);
# - on one line: `make` spends 20 ms on 999 `{` (so 0.2 s on 10 such lines),
#   `terraform` and `apacheconf` 35 ms on 1,000 `-` or `<`; `c-objdump`
#   ~3 s inside a single match on one 20 KB line of `(`;
# - `mcschema` never ends on `<!--`: it yields empty tokens forever.
# So only the lexers of HIGHLIGHT_LANGUAGES run (measured on one 10 KB block,
# lines up to MAX_HIGHLIGHT_LINE_CHARS: at most 0.36 s, `less`, `go` and
# `protobuf` on `/*a`; under 0.2 s for the others; `bench/render.py --scan`),
# a lexer that yields more tokens than the code has characters is stopped,
# and since the cost grows with the square of a block's size, one
# render_markdown call highlights blocks while the sum of their sizes squared
# stays within MAX_HIGHLIGHT_WORK: one block of MAX_HIGHLIGHT_CHARS, or four
# of half that size. bench/render.py prints the timings.
MAX_HIGHLIGHT_CHARS = 10_000  # per block
MAX_HIGHLIGHT_LINE_CHARS = 500  # longer lines: minified or hostile
MAX_HIGHLIGHT_WORK = MAX_HIGHLIGHT_CHARS**2  # per call: sum of len(block) ** 2
MAX_HIGHLIGHT_TOTAL_CHARS = 20_000  # per call: bounds the linear cost of many small blocks
MAX_HIGHLIGHT_BLOCKS = 100  # per call: each block costs ~20 us even when tiny
_TOKEN_SLACK = 64  # tokens a lexer may yield beyond one per character
# Fence languages that are highlighted, as Pygments names them (their other
# aliases count too: `py` and `python3` are `python`). Common in replies, and
# measured as above; any other language is shown plain, with its class.
HIGHLIGHT_LANGUAGES = frozenset(
    {
        "apacheconf", "awk", "bash", "batch", "c", "clojure", "cmake", "cobol",
        "coffeescript", "console", "cpp", "csharp", "css", "dart", "diff",
        "django", "docker", "elixir", "elm", "erb", "erlang", "fish", "fortran",
        "fsharp", "go", "graphql", "groovy", "handlebars", "haskell", "html",
        "http", "ini", "java", "javascript", "json", "jsx", "julia", "kotlin",
        "latex", "less", "lisp", "lua", "make", "markdown", "matlab", "mysql",
        "nasm", "nginx", "nix", "objective-c", "ocaml", "perl", "php",
        "postgresql", "powershell", "prolog", "properties", "protobuf",
        "python", "r", "racket", "ruby", "rust", "sass", "scala", "scheme",
        "scss", "sed", "solidity", "sql", "sqlite3", "swift", "tcl",
        "terraform", "toml", "tsx", "twig", "typescript", "vbnet", "vim",
        "vue", "xml", "yaml", "zig",
    }
)  # fmt: skip
_BUDGET_KEY = "chat_highlight_budget"  # in markdown-it's per-call env
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*):")
_WHITESPACE = re.compile(r"\s+")


def render_markdown(text: str) -> SafeString:
    """Render Markdown to sanitized HTML.

    Args:
        text: Markdown source (CommonMark plus GFM tables and strikethrough,
            bare URLs linkified). Raw HTML in it comes out as text.

    Returns:
        HTML fragment of block elements (``<p>``, ``<pre>``, ``<table>``...).
        TeX math (``$…$``, ``$$…$$``, ``\\(…\\)``, ``\\[…\\]``) is MathML
        (see `conversations.mathml`); GFM task list items hold a disabled
        checkbox; table cells aligned with ``:--:`` carry ``align-*`` classes.
        Fenced code with a known language is
        ``<pre class="highlight"><code class="language-xx">`` with Pygments
        token classes on ``<span>``s (style them with
        ``HtmlFormatter().get_style_defs(".highlight")``). Images become links
        to their URL unless ``settings.CHAT_ALLOW_REMOTE_IMAGES`` is true,
        in which case ``<img>`` is kept for http(s) sources. Every ``<a>``
        carries ``rel="noopener noreferrer nofollow"`` and ``target="_blank"``.

    The output depends on the text and the settings only. Cost is linear in
    the input: about 2 ms per KB of prose (markdown-it-py is pure Python).
    Highlighting is bounded by the sizes above (at most ~0.36 s measured for
    a hostile reply, see bench/render.py); code past them is left plain.
    CPU-bound: from async code, call it through ``sync_to_async`` for long
    replies.
    """
    allow_images = _remote_images_allowed()
    env = {_BUDGET_KEY: _HighlightBudget()}
    html = _markdown(allow_images).render(text, env)
    return mark_safe(_cleaner(allow_images).clean(html))


def markdown_text(text: str) -> str:
    """Return the words a reader sees in Markdown `text`, without its markup, for a search snippet.

    Emphasis, link and heading markers, list bullets and table pipes go; code
    and math keep their source; blocks are joined by one space. Plain text,
    for templates to escape.
    """
    words: list[str] = []
    for token in _markdown(False).parse(text):
        if token.type == "inline":
            for child in token.children or []:
                if child.type in {"text", "code_inline", "math_inline", "math_inline_double"}:
                    words.append(child.content)
                elif child.type in {"softbreak", "hardbreak"}:
                    words.append(" ")
                elif child.type == "image":
                    words.append(child.content)
            words.append(" ")
        elif token.type in {"fence", "code_block", "math_block"}:
            words.append(f" {token.content} ")
    return _WHITESPACE.sub(" ", "".join(words)).strip()


def render_user_text(text: str) -> SafeString:
    """Render a user's message: the text as typed, escaped, with its TeX formulas as MathML.

    Args:
        text: the message as its author wrote it (not Markdown: ``*``, ``#``
            and HTML show as typed).

    Returns:
        Sanitized HTML (the allow-list of ``render_markdown``): text, with
        ``$…$``, ``$$…$$``, ``\\(…\\)`` and ``\\[…\\]`` as ``<math>``
        (display math inside ``<span class="math-display">``) where
        `conversations.mathml.text_math_html` converts them; a formula it
        does not convert, and prose dollars ("$5 and $10"), stay as typed.
        Newlines are left for CSS (``white-space: pre-wrap``). Linear in the
        text, plus about 1 ms per 100 characters of TeX.
    """
    return sanitize_html(text_math_html(text))


def render_plain_text(text: str) -> SafeString:
    """Escape text for HTML: ``&``, ``<``, ``>``, ``"`` and ``'``.

    Args:
        text: a streamed delta, or an alert.

    Returns:
        The escaped text; newlines are left as they are, for CSS
        (``white-space: pre-wrap``) to show.
    """
    return SafeString(escape_text(text))


def html_format(template: str, *values: object) -> SafeString:
    """Return HTML `template` with `values` in its ``{}`` fields, each escaped unless marked safe.

    What Django's ``format_html`` does, without the lazy-string wrappers it
    puts around each escape and ``mark_safe``: they took 60 % of a bubble's
    CPU (bench/README.md, the eleventh round). A value is escaped as
    ``render_plain_text`` escapes; unlike ``conditional_escape``, only a
    ``SafeData`` value passes as it is (another with ``__html__`` is escaped).

    Raises:
        TypeError: no values (a literal is ``html_literal``'s, as Django 5.0 has ``format_html`` refuse it).
    """
    if not values:
        raise TypeError("html_format() needs values to put in its template; for markup alone, html_literal().")
    return SafeString(template.format(*(_escaped(value) for value in values)))


def html_join(parts: Iterable[object]) -> SafeString:
    """Return `parts` one after the other, each escaped unless marked safe (``html_format``'s fragments are)."""
    return SafeString("".join(_escaped(part) for part in parts))


def html_literal(markup: str) -> SafeString:
    """Return `markup`, HTML written in the source (never data), as safe to output."""
    return SafeString(markup)


def _escaped(value: object) -> str:
    """Return `value` escaped for HTML text and quoted attributes, or as it is when it is marked safe."""
    return cast(str, value) if isinstance(value, SafeData) else escape_text(str(value))


def sanitize_html(html: str) -> SafeString:
    """Clean an HTML fragment with the same allow-list as ``render_markdown``.

    For HTML this module produced earlier and has stored; running it again is
    a no-op on current output (the test-suite checks this for mXSS).

    Args:
        html: an HTML fragment.

    Returns:
        The fragment re-serialized by html5ever with only allowed elements,
        attributes, classes and URL schemes left.
    """
    return mark_safe(_cleaner(_remote_images_allowed()).clean(html))


def _remote_images_allowed() -> bool:
    # Read at call time so settings overrides (and tests) take effect.
    return bool(getattr(settings, "CHAT_ALLOW_REMOTE_IMAGES", False))


# The Markdown parser and the sanitizer are configured once per process and
# never mutated afterwards, so threads can share them: markdown-it-py keeps
# parse state in per-call objects, and linkify-it-py 2.x's test()/match() keep
# none on the instance (checked in 2.2.0; the JS original caches matches).
@functools.cache
def _markdown(allow_images: bool) -> MarkdownIt:
    md = MarkdownIt(
        "commonmark",
        {"html": False, "linkify": True, "typographer": False},
    ).enable(["table", "strikethrough", "linkify"])
    md.validateLink = _link_allowed  # type: ignore[method-assign]
    tasklists_plugin(md)
    math_plugin(md)
    md.core.ruler.push("chat_mark_images_in_links", _mark_images_in_links)
    md.add_render_rule("fence", _render_fence)
    md.add_render_rule("th_open", _render_cell_open)
    md.add_render_rule("td_open", _render_cell_open)
    md.add_render_rule("image", _render_image if allow_images else _render_image_as_link)
    return md


def _math_length_filter(tag: str, attribute: str, value: str) -> str | None:
    """nh3's attribute filter: keep a MathML length only when it is small (MATH_LENGTH_MAX); others pass."""
    if tag not in MATHML_TAGS or attribute not in MATH_LENGTH_ATTRIBUTES:
        return value
    if value.strip() in _MATH_NAMED_SPACES:
        return value
    found = _MATH_LENGTH.fullmatch(value)
    if found is None:
        return None
    number, unit = float(found.group(1)), found.group(2) or ""
    limit = MATH_LENGTH_MAX[unit]
    # Negative only as a small kern (latex2mathml's \! is -0.167em); a multiple of the text's size at most.
    return value if -min(limit, 1.0) <= number <= limit else None


@functools.cache
def _cleaner(allow_images: bool) -> nh3.Cleaner:
    tags = set(ALLOWED_TAGS)
    attributes = {tag: set(names) for tag, names in ALLOWED_ATTRIBUTES.items()}
    if allow_images:
        tags.add("img")
        attributes["img"] = set(IMAGE_ATTRIBUTES)
    tags |= MATHML_TAGS
    cell_classes = set(ALIGN_CLASSES.values())
    return nh3.Cleaner(
        tags=tags,
        clean_content_tags={"script", "style"},
        attributes=attributes,
        attribute_filter=_math_length_filter,
        strip_comments=True,
        link_rel=LINK_REL,
        set_tag_attribute_values={"a": {"target": LINK_TARGET}, "input": TASK_CHECKBOX},
        generic_attribute_prefixes=set(),
        url_schemes=set(LINK_SCHEMES),
        url_relative="deny",
        allowed_classes={
            "pre": {"highlight"},
            "span": {name for name in STANDARD_TYPES.values() if name} | {"math-display"},
            "th": cell_classes,
            "td": cell_classes,
            "ul": {"contains-task-list"},
            "ol": {"contains-task-list"},
            "li": {"task-list-item"},
        },
    )


def _link_allowed(url: str) -> bool:
    """Accept a normalized link destination only with an allowed scheme.

    markdown-it calls this after decoding entities and percent-encoding
    (``normalizeLink``), so whitespace or control characters inside a scheme
    are already ``%xx`` and cannot sneak ``java\\tscript:`` past the check.
    Replaces markdown-it's default, which allows relative URLs and
    ``data:image/*``.
    """
    match = _SCHEME.match(url)
    return match is not None and match.group(1).lower() in LINK_SCHEMES


def _image_src_allowed(src: str) -> bool:
    match = _SCHEME.match(src)
    return match is not None and match.group(1).lower() in IMAGE_SCHEMES


def _mark_images_in_links(state: StateCore) -> None:
    """Flag images that sit inside link text, in one pass over the tokens."""
    for block in state.tokens:
        if block.type != "inline" or not block.children:
            continue
        depth = 0
        for token in block.children:
            if token.type == "link_open":
                depth += 1
            elif token.type == "link_close":
                depth -= 1
            elif token.type == "image" and depth > 0:
                token.meta["in_link"] = True


def _render_fence(
    self: RendererHTML,
    tokens: Sequence[Token],
    idx: int,
    options: OptionsDict,
    env: EnvType,
) -> str:
    """Render a fenced code block, highlighted when its language is known.

    The info string is entity-decoded first (CommonMark spec, 4.5 "Fenced
    code blocks"), so ``js&#32;onmouseover=...`` is checked as decoded text.
    """
    token = tokens[idx]
    info = unescapeAll(token.info).strip() if token.info else ""
    language = info.split(maxsplit=1)[0] if info else ""
    if not _SAFE_LANGUAGE.fullmatch(language):
        return f"<pre><code>{escapeHtml(token.content)}</code></pre>\n"
    language = language.lower()
    lexer_class = _lexer_class(language)
    code = None
    if lexer_class is not None and _highlightable(token.content):
        budget = env.setdefault(_BUDGET_KEY, _HighlightBudget())
        if budget.take(len(token.content)):
            code = _highlight(token.content, lexer_class)
    if code is None:
        return f'<pre><code class="language-{language}">{escapeHtml(token.content)}</code></pre>\n'
    return f'<pre class="highlight"><code class="language-{language}">{code}</code></pre>\n'


def _highlightable(code: str) -> bool:
    return len(code) <= MAX_HIGHLIGHT_CHARS and all(len(line) <= MAX_HIGHLIGHT_LINE_CHARS for line in code.splitlines())


class _HighlightBudget:
    """What one render_markdown call may still highlight (see MAX_HIGHLIGHT_WORK)."""

    def __init__(self) -> None:
        self.work = MAX_HIGHLIGHT_WORK
        self.chars = MAX_HIGHLIGHT_TOTAL_CHARS
        self.blocks = MAX_HIGHLIGHT_BLOCKS

    def take(self, size: int) -> bool:
        """Spend the budget on a block of `size` characters; False (nothing spent) if it does not fit."""
        if size * size > self.work or size > self.chars or self.blocks < 1:
            return False
        self.work -= size * size
        self.chars -= size
        self.blocks -= 1
        return True


def _highlight(code: str, lexer_class: type[Lexer]) -> str | None:
    """Return Pygments ``<span>`` markup for ``code``, or None if the lexer makes no progress.

    A lexer yields at most one token per character, plus a few empty ones;
    more means it loops without consuming input (`mcschema` on ``<!--``).
    """
    limit = len(code) + _TOKEN_SLACK
    tokens = []
    lexer = lexer_class(stripnl=False, ensurenl=False)
    for item in lexer.get_tokens(code):
        tokens.append(item)
        if len(tokens) > limit:
            return None
    out = io.StringIO()
    _formatter().format(iter(tokens), out)
    return out.getvalue()


@functools.lru_cache(maxsize=512)
def _lexer_class(language: str) -> type[Lexer] | None:
    """Return the lexer of `language` if it is one of HIGHLIGHT_LANGUAGES (by any of its aliases)."""
    # Cached because a miss makes Pygments scan plugin entry points; bounded
    # because the name comes from the reply.
    try:
        lexer_class = find_lexer_class_by_name(language)
    except ClassNotFound:
        return None
    return lexer_class if lexer_class in _highlighted_lexer_classes() else None


@functools.cache
def _highlighted_lexer_classes() -> frozenset[type[Lexer]]:
    return frozenset(find_lexer_class_by_name(name) for name in HIGHLIGHT_LANGUAGES)


@functools.cache
def _formatter() -> HtmlFormatter:
    # nowrap: only the token <span>s; the fence renderer adds <pre><code>.
    # CSS classes, never inline styles (noclasses stays False).
    return HtmlFormatter(nowrap=True)


def _render_cell_open(
    self: RendererHTML,
    tokens: Sequence[Token],
    idx: int,
    options: OptionsDict,
    env: EnvType,
) -> str:
    # markdown-it puts column alignment in a style attribute (`text-align:right`);
    # no style is allowed, so it becomes a class.
    style = str(tokens[idx].attrs.pop("style", ""))
    align = ALIGN_CLASSES.get(style.removeprefix("text-align:"))
    if align:
        tokens[idx].attrSet("class", align)
    return self.renderToken(tokens, idx, options, env)


def _render_image(
    self: RendererHTML,
    tokens: Sequence[Token],
    idx: int,
    options: OptionsDict,
    env: EnvType,
) -> str:
    """Render an image as ``<img>`` when its source is http(s), else a link."""
    token = tokens[idx]
    if not _image_src_allowed(str(token.attrGet("src") or "")):
        return _render_image_as_link(self, tokens, idx, options, env)
    return self.image(tokens, idx, options, env)


def _render_image_as_link(
    self: RendererHTML,
    tokens: Sequence[Token],
    idx: int,
    options: OptionsDict,
    env: EnvType,
) -> str:
    """Render an image as a link to its URL, its alt text (or URL) as text.

    A remote image loads as soon as the page shows it, which lets a prompt-
    injected reply send data to any server in its URL; a link needs a click.
    Inside link text (``[![alt](img)](url)``) only the alt text is kept, as
    links cannot nest.
    """
    token = tokens[idx]
    src = str(token.attrGet("src") or "")
    alt = self.renderInlineAsText(token.children or [], options, env)
    if token.meta.get("in_link"):
        return escapeHtml(alt or src)
    title = token.attrGet("title")
    title_attr = f' title="{escapeHtml(str(title))}"' if title else ""
    return f'<a href="{escapeHtml(src)}"{title_attr}>{escapeHtml(alt or src)}</a>'


def stored_html(html: str) -> SafeString:
    """Mark HTML that `render_markdown` or `render_user_text` produced and the database stored as safe to output.

    Pages never render a message again: its `content_html` was sanitized
    once, when the reply finished or the message was saved, and is output as it is.
    """
    return mark_safe(html)
