"""Reply text for chats: long replies split within a platform's size limit, and Markdown as readable plain text."""

from collections.abc import Callable

from markdown_it import MarkdownIt


def utf8_bytes(text: str) -> int:
    """Return the length of `text` in UTF-8 bytes (WeChat counts its limits in bytes)."""
    return len(text.encode())


def split_text(text: str, *, limit: int, size: Callable[[str], int] = len) -> list[str]:
    """Split `text` into parts of at most `limit` (measured by `size`), at paragraph, line, then word ends.

    A part is cut mid-word only when a single word is longer than `limit`.
    Joining the parts gives `text` back up to whitespace at the cuts. An empty
    text gives one empty part.
    """
    if size(text) <= limit:
        return [text]
    parts: list[str] = []
    rest = text
    while size(rest) > limit:
        cut = _cut(rest, limit=limit, size=size)
        parts.append(rest[:cut].rstrip())
        rest = rest[cut:].lstrip("\n")
    if rest.strip():
        parts.append(rest)
    return parts


def _cut(text: str, *, limit: int, size: Callable[[str], int]) -> int:
    """Return where to cut `text` so that text[:cut] fits `limit`: the last paragraph, line or space end."""
    low, high = 1, len(text)
    while low < high:  # The longest prefix that fits (size grows with length).
        middle = (low + high + 1) // 2
        if size(text[:middle]) <= limit:
            low = middle
        else:
            high = middle - 1
    fits = low
    for separator in ("\n\n", "\n", " "):
        at = text.rfind(separator, 0, fits)
        if at > fits // 2:
            return at + len(separator)
    return fits


def markdown_to_plain(text: str) -> str:
    """Return Markdown as plain text for chats that show no formatting (WeChat).

    Emphasis and heading marks go; list items get "• " or their number; links
    become "text (url)"; code blocks keep their lines; paragraphs are separated
    by a blank line. Parsed with markdown-it-py (CommonMark), so what counts as
    Markdown is what the site's pages render.
    """
    tokens = MarkdownIt("commonmark").parse(text)
    blocks: list[str] = []
    line: list[str] = []
    prefixes: list[str] = []
    counters: list[int] = []
    for token in tokens:
        if token.type == "bullet_list_open":
            counters.append(0)
        elif token.type == "ordered_list_open":
            counters.append(int(token.attrGet("start") or 1))
        elif token.type in ("bullet_list_close", "ordered_list_close"):
            counters.pop()
        elif token.type == "list_item_open":
            number = counters[-1] if counters else 0
            prefixes.append(f"{number}. " if number else "• ")
            if counters and counters[-1]:
                counters[-1] += 1
        elif token.type == "list_item_close":
            prefixes.pop()
        elif token.type == "inline":
            line.append(_inline_text(token.children or []))
        elif token.type in ("paragraph_close", "heading_close"):
            indent = "  " * max(len(prefixes) - 1, 0)
            blocks.append(indent + (prefixes[-1] if prefixes else "") + "".join(line))
            line = []
            if prefixes:
                prefixes[-1] = " " * len(prefixes[-1])
        elif token.type in ("fence", "code_block"):
            blocks.append(token.content.rstrip("\n"))
        elif token.type == "hr":
            blocks.append("———")
    return "\n\n".join(block for block in blocks if block.strip()).strip() or text.strip()


def _inline_text(children) -> str:
    out: list[str] = []
    href: list[str] = []
    for child in children:
        if child.type in ("text", "code_inline", "html_inline"):
            out.append(child.content)
        elif child.type in ("softbreak", "hardbreak"):
            out.append("\n")
        elif child.type == "link_open":
            href.append(str(child.attrGet("href") or ""))
        elif child.type == "link_close":
            url = href.pop() if href else ""
            if url and not "".join(out).endswith(url):
                out.append(f" ({url})")
        elif child.type == "image":
            out.append(child.content or str(child.attrGet("src") or ""))
    return "".join(out)
