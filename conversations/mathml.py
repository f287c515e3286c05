"""TeX math in Markdown: find ``$…$``, ``$$…$$``, ``\\(…\\)`` and ``\\[…\\]`` and turn them into MathML.

`math_plugin(md)` adds the rules to a markdown-it parser. Dollars are parsed
by mdit-py-plugins' ``dollarmath`` with Pandoc's rule for prose
(https://pandoc.org/MANUAL.html#math): an opening ``$`` has a non-space
character right after it, a closing ``$`` a non-space character right before
it and no digit right after it, so "costs $5 and $10" stays text. Brackets
(``\\(``, ``\\[``, the delimiters LaTeX and most chat models write) are parsed
by the rules below, before CommonMark's backslash escapes (spec 6.1) would eat
them, and so would eat ``\\,`` inside ``$$…$$`` too.

A formula becomes MathML (MathML Core, https://www.w3.org/TR/mathml-core/,
rendered natively by Chromium, Firefox and Safari) through latex2mathml. One
that latex2mathml cannot convert, that uses a command it does not know, or that
is longer than MAX_FORMULA_CHARS, is shown as code, delimiters included:
exactly what was written. This module's output is not safe by itself (the
MathML carries whatever ``\\text{…}`` held, as text); `rendering` sanitizes
the whole reply afterwards.

`text_math_html(text)` does the same for plain text (a user's message, which
is not Markdown): the formulas, found by the same rules, become MathML and
everything else is escaped text, exactly as typed.
"""

from __future__ import annotations

import html
import re
from bisect import bisect_left
from collections.abc import Sequence
from xml.etree.ElementTree import Element, tostring

from latex2mathml.converter import convert_to_element
from markdown_it import MarkdownIt
from markdown_it.common.utils import escapeHtml
from markdown_it.renderer import RendererHTML
from markdown_it.rules_block import StateBlock
from markdown_it.rules_inline import StateInline
from markdown_it.token import Token
from markdown_it.utils import EnvType, OptionsDict
from mdit_py_plugins.dollarmath import dollarmath_plugin

__all__ = ["MAX_FORMULA_CHARS", "MAX_MATH_CHARS", "math_plugin", "tex_to_mathml", "text_math_html"]

# latex2mathml is pure Python, about 1 ms per 100 characters of TeX; deep
# nesting ends in a RecursionError at Python's limit (caught: shown as code).
MAX_FORMULA_CHARS = 2_000  # per formula; longer: shown as code
MAX_MATH_CHARS = 20_000  # per reply; formulas past it: shown as code
_BUDGET_KEY = "chat_math_budget"  # in markdown-it's per-call env
_NO_CLOSER_KEY = "chat_math_no_closer"
_CLOSERS = {"$": "$", "$$": "$$", "\\(": "\\)", "\\[": "\\]"}
# Plain text: where a delimiter may start; a `$` with the backslashes before it; a newline starting a blank line.
_DELIMITER_START = re.compile(r"[$\\]")
_DOLLAR = re.compile(r"(\\*)\$")
_BLANK_LINE = re.compile(r"\n(?=[ \t\r]*(\n))")
_ASCII_PUNCTUATION = frozenset("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~")


def math_plugin(md: MarkdownIt) -> None:
    """Parse the four math delimiters in `md` and render them as MathML.

    Tokens: ``math_inline`` (``$…$``, ``\\(…\\)``), ``math_inline_double``
    (``$$…$$`` or ``\\[…\\]`` inside a paragraph) and ``math_block`` (the same
    on lines of their own); each token's ``markup`` is its opening delimiter.
    """
    dollarmath_plugin(
        md,
        allow_labels=False,
        allow_space=False,
        allow_digits=False,
        allow_blank_lines=False,
        double_inline=True,
    )
    md.inline.ruler.before("escape", "math_brackets", _bracket_inline)
    # Not an alternative to "paragraph": a `\[` line inside a paragraph is display math of that paragraph
    # (the inline rule), so a paragraph of such lines is scanned once, not once per line.
    md.block.ruler.before("fence", "math_block_brackets", _bracket_block)
    md.add_render_rule("math_inline", _render_math)
    md.add_render_rule("math_inline_double", _render_math)
    md.add_render_rule("math_block", _render_math)


def tex_to_mathml(tex: str, *, display: bool) -> str | None:
    """Convert one TeX formula to a ``<math>`` element, or None if it does not convert.

    Args:
        tex: the formula without its delimiters.
        display: True for display style (``display="block"``), False for inline.

    Returns:
        ``<math display="inline|block">…</math>`` (MathML Core elements, text
        escaped), or None for an empty formula, one over MAX_FORMULA_CHARS,
        one latex2mathml rejects, or one with a command it does not know
        (which it would show as the command's name).
    """
    tex = tex.strip()
    if not tex or len(tex) > MAX_FORMULA_CHARS:
        return None
    try:
        root = convert_to_element(tex, display="block" if display else "inline")
    except Exception:  # its own errors, and IndexError, KeyError, RecursionError on malformed TeX
        return None
    for node in root.iter():
        text = node.text or ""
        if text.startswith("\\") and len(text) > 1:  # a command latex2mathml does not know, shown by name
            return None
        _decode(node)
    root.attrib.pop("xmlns", None)  # the HTML parser puts <math> in the MathML namespace by itself
    return tostring(root, encoding="unicode", short_empty_elements=False)


def text_math_html(text: str) -> str:
    """Return plain `text` as HTML: its formulas as MathML, the rest escaped, exactly as typed.

    The delimiters and their rules are those of `math_plugin`, applied to
    text that is not Markdown: ``$…$`` (Pandoc's rule, so "costs $5 and $10"
    stays text), ``$$…$$``, ``\\(…\\)`` and ``\\[…\\]``; a formula does not
    span a blank line; a backslash pairs with the punctuation after it
    (``\\$`` is no delimiter, ``\\\\(`` opens nothing). A formula that
    `tex_to_mathml` does not convert, or past MAX_MATH_CHARS in all, stays
    its source, delimiters included. Display math is wrapped in
    ``<span class="math-display">``.

    Args:
        text: a message as its author wrote it.

    Returns:
        An HTML fragment, not safe by itself (see the module docstring):
        escape it nowhere else, sanitize it. Linear in ``len(text)`` plus the
        formulas' conversion (about 1 ms per 100 characters of TeX).
    """
    scan = _PlainScan(text)
    out: list[str] = []
    budget = MAX_MATH_CHARS
    done = pos = 0
    while match := _DELIMITER_START.search(text, pos):
        pos = match.start()
        found = scan.formula_at(pos)
        if found is None:
            pos += 2 if text[pos] == "\\" and text[pos + 1 : pos + 2] in _ASCII_PUNCTUATION else 1
            continue
        end, tex, display = found
        mathml = None
        if len(tex) <= budget:
            budget -= len(tex)
            mathml = tex_to_mathml(tex, display=display)
        if mathml is not None:
            out.append(escapeHtml(text[done:pos]))
            out.append(f'<span class="math-display">{mathml}</span>' if display else mathml)
            done = end
        pos = end
    out.append(escapeHtml(text[done:]))
    return "".join(out)


class _PlainScan:
    """Where the formulas of one plain text are: delimiters indexed once, each lookup O(log n)."""

    def __init__(self, text: str) -> None:
        self.text = text
        # A `$` after an odd number of backslashes is escaped (mdit-py-plugins' is_escaped).
        self.dollars = [m.end() - 1 for m in _DOLLAR.finditer(text) if len(m.group(1)) % 2 == 0]
        self.doubles = [p for p in self.dollars if text[p + 1 : p + 2] == "$"]
        blanks = list(_BLANK_LINE.finditer(text))
        self.blank_starts = [m.start() for m in blanks]
        self.blank_ends = [m.start(1) for m in blanks]
        self.closers: dict[str, int] = {}  # closer -> its first position at or after the last search's start

    def formula_at(self, pos: int) -> tuple[int, str, bool] | None:
        """Return (end of the closer, TeX, display) of the formula opening at `pos`, or None."""
        if self.text[pos] == "$":
            return self._dollar_at(pos)
        return self._bracket_at(pos)

    def _dollar_at(self, pos: int) -> tuple[int, str, bool] | None:
        text = self.text
        after = text[pos + 1 : pos + 2]
        if not after or after.isspace() or (pos > 0 and text[pos - 1].isdigit()):
            return None
        index = bisect_left(self.dollars, pos)
        if index == len(self.dollars) or self.dollars[index] != pos:  # escaped
            return None
        if after == "$":
            index = bisect_left(self.doubles, pos + 2)
            if index == len(self.doubles):
                return None
            close = self.doubles[index]
            tex, end = text[pos + 2 : close], close + 2
        else:
            if index + 1 == len(self.dollars):
                return None
            close = self.dollars[index + 1]
            if text[close - 1].isspace():
                return None
            tex, end = text[pos + 1 : close], close + 1
        if not tex or text[end : end + 1].isdigit() or self._blank_line_between(pos, end):
            return None
        return end, tex, after == "$"

    def _bracket_at(self, pos: int) -> tuple[int, str, bool] | None:
        opener = self.text[pos : pos + 2]
        if opener not in ("\\(", "\\["):
            return None
        closer = _CLOSERS[opener]
        close = self.closers.get(closer, -1)
        if close < pos + 2 and close != -2:  # find results only grow with the start: search again only past them
            close = self.text.find(closer, pos + 2)
            self.closers[closer] = close if close != -1 else -2
        if close < 0 or close == pos + 2 or self._blank_line_between(pos, close):
            return None
        return close + 2, self.text[pos + 2 : close], opener == "\\["

    def _blank_line_between(self, start: int, end: int) -> bool:
        index = bisect_left(self.blank_starts, start)
        return index < len(self.blank_starts) and self.blank_ends[index] < end


def _decode(node: Element) -> None:
    """Turn latex2mathml's character references (``&#x0003D;``) back into characters.

    latex2mathml stores them as text and unescapes its whole serialization,
    which would also unescape ``<`` written inside ``\\text{…}``; decoding
    node by node and serializing with ElementTree escapes every character once.
    """
    if node.text:
        node.text = html.unescape(node.text)
    if node.tail:
        node.tail = html.unescape(node.tail)
    for name, value in node.attrib.items():
        node.attrib[name] = html.unescape(value)


def _render_math(
    self: RendererHTML,
    tokens: Sequence[Token],
    idx: int,
    options: OptionsDict,
    env: EnvType,
) -> str:
    token = tokens[idx]
    display = token.type != "math_inline"
    mathml = None
    budget = env.setdefault(_BUDGET_KEY, [MAX_MATH_CHARS])
    if len(token.content) <= budget[0]:
        budget[0] -= len(token.content)
        mathml = tex_to_mathml(token.content, display=display)
    if mathml is None:
        source = escapeHtml(f"{token.markup}{token.content}{_CLOSERS[token.markup]}")
        return f"<pre><code>{source}</code></pre>\n" if token.type == "math_block" else f"<code>{source}</code>"
    if token.type == "math_block":
        return f'<p><span class="math-display">{mathml}</span></p>\n'
    return f'<span class="math-display">{mathml}</span>' if display else mathml


def _bracket_inline(state: StateInline, silent: bool) -> bool:
    """Parse ``\\(…\\)`` (inline) and ``\\[…\\]`` (display) inside a paragraph.

    The closer is searched for once per opener; where none is left, the
    position is remembered, so a paragraph of unclosed openers costs linear
    time, not quadratic.
    """
    src, pos = state.src, state.pos
    if pos + 2 >= state.posMax or src[pos] != "\\" or src[pos + 1] not in "([":
        return False
    opener = src[pos : pos + 2]
    closer = _CLOSERS[opener]
    no_closer = state.env.setdefault(_NO_CLOSER_KEY, {})
    known = no_closer.get(closer)
    if known is not None and known[0] is src and known[1] <= pos:
        return False
    end = src.find(closer, pos + 2, state.posMax)
    if end == -1:
        no_closer[closer] = (src, pos)
        return False
    if end == pos + 2:
        return False
    if not silent:
        token = state.push("math_inline" if opener == "\\(" else "math_inline_double", "math", 0)
        token.content = src[pos + 2 : end]
        token.markup = opener
    state.pos = end + 2
    return True


def _bracket_block(state: StateBlock, start_line: int, end_line: int, silent: bool) -> bool:
    """Parse ``\\[…\\]`` starting a line and ending one (the same or a later), with no blank line between.

    The scan stops after MAX_FORMULA_CHARS characters, so a run of lines
    starting with ``\\[`` costs linear time.
    """
    if state.sCount[start_line] - state.blkIndent >= 4:  # an indented code block
        return False
    begin = state.bMarks[start_line] + state.tShift[start_line]
    if not state.src.startswith("\\[", begin):
        return False
    lines = [state.src[begin + 2 : state.eMarks[start_line]].rstrip()]
    if "\\]" in lines[0][:-2]:  # closed inside the line: inline display math in a paragraph
        return False
    line = start_line
    size = len(lines[0])
    while not lines[-1].endswith("\\]"):
        line += 1
        if line >= end_line or state.isEmpty(line) or size > MAX_FORMULA_CHARS:
            return False
        text = state.src[state.bMarks[line] + state.tShift[line] : state.eMarks[line]].rstrip()
        lines.append(text)
        size += len(text)
    if not "".join(lines)[:-2].strip():
        return False
    if silent:
        return True
    token = state.push("math_block", "math", 0)
    token.block = True
    token.content = "\n".join(lines)[:-2]
    token.markup = "\\["
    token.map = [start_line, line + 1]
    state.line = line + 1
    return True
