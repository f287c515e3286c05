"""Search over one user's own conversations: their titles and the text of their shown messages.

Every query here is scoped to the asking user, like those of `selectors`.

PostgreSQL: full-text search on `to_tsvector('simple', content)`, the very
expression of the GIN index `message_content_fts` (migration 0003), so the
index serves the match. The 'simple' configuration lowercases words but does
not stem them or drop stop words: chats mix languages, and no single
language's stemmer suits them all. Each query word matches as a prefix
(`word:*`), so results appear while the user is still typing.

Substring search (`icontains`) instead, on SQLite (no FTS5 needed), and on
PostgreSQL when:
- the query has CJK characters: PostgreSQL's text parser only splits words
  at spaces and punctuation, so a run of Chinese or Japanese characters
  becomes one "word" and a search for part of a sentence finds nothing;
- full-text search finds nothing: its parser drops some text entirely
  (it reads `<script>` as an XML tag, not as the word "script") and splits
  other text differently from what people type (`foo_bar`, URLs, paths).
A substring search cannot use the GIN index; it scans the user's messages.

Snippets are built here from plain text, as `Segment`s that templates
escape; nothing in this module produces HTML. A reply's snippet is taken from
the words its Markdown shows (`rendering.markdown_text`), not its markup.
"""

import re
from dataclasses import dataclass

from django.contrib.auth.models import User
from django.db import connection
from django.db.models import Q, QuerySet

from conversations import rendering
from conversations.dom import message_dom_id
from conversations.models import Conversation, Message

SEARCH_MAX_MESSAGES = 50
SEARCH_MAX_TITLES = 10
SNIPPET_CHARS = 160
# Longer queries are cut: a search box, not a document comparison.
QUERY_MAX_CHARS = 200
QUERY_MAX_TERMS = 8
# Hiragana, katakana, CJK ideographs (with extension A, compatibility and the
# supplementary planes) and Hangul syllables.
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff\U00020000-\U0002fa1f]")
_WORD = re.compile(r"\w+")
# Where a cut snippet may start or end rather than mid-word.
_SPACE = re.compile(r"\s")


@dataclass(frozen=True)
class Segment:
    """A piece of a title or snippet; `marked` pieces matched the query. Plain text: templates escape it."""

    text: str
    marked: bool


@dataclass(frozen=True)
class Hit:
    """A conversation whose title matched (`message` is None), or one of its messages that matched."""

    conversation: Conversation
    message: Message | None
    title: list[Segment]
    snippet: list[Segment]

    @property
    def url(self) -> str:
        """Return the conversation's URL; for a message, opened at its bubble (`?around=` shows it however old)."""
        url = self.conversation.get_absolute_url()
        if self.message is None:
            return url
        return f"{url}?around={self.message.public_id}#{message_dom_id(self.message.public_id)}"


@dataclass(frozen=True)
class Results:
    """What a search found: title hits first, then message hits; `truncated` when more messages matched."""

    query: str
    hits: list[Hit]
    truncated: bool


def query_terms(query: str) -> list[str]:
    """Return the words of `query` that must all appear, casefolded, without repeats, at most QUERY_MAX_TERMS."""
    terms: list[str] = []
    for term in query[:QUERY_MAX_CHARS].casefold().split():
        if term not in terms:
            terms.append(term)
    return terms[:QUERY_MAX_TERMS]


def segments(text: str, terms: list[str], *, width: int | None = None) -> list[Segment]:
    """Split `text` into pieces, marking every case-insensitive occurrence of `terms`.

    With `width` (characters), keep only about that much text around the
    first occurrence, with "…" where text was cut.
    """
    pattern = re.compile("|".join(re.escape(t) for t in sorted(terms, key=len, reverse=True)), re.IGNORECASE)
    matches = [m.span() for m in pattern.finditer(text)] if terms else []
    start, end = 0, len(text)
    if width is not None and len(text) > width:
        first = matches[0][0] if matches else 0
        start = max(0, first - width // 4)
        end = min(len(text), start + width)
        start = max(0, end - width)
        # Cut at a space near each edge when there is one (CJK text has none), never inside the first match.
        if start > 0 and (space := _SPACE.search(text, start, min(first, start + 20))):
            start = space.end()
        if end < len(text):
            low = max(end - 20, matches[0][1] if matches else start)
            spaces = [m.start() for m in _SPACE.finditer(text, low, end)]
            end = spaces[-1] if spaces else end
    pieces = [Segment("…", False)] if start > 0 else []
    position = start
    for match_start, match_end in matches:
        match_start, match_end = max(match_start, start), min(match_end, end)
        if match_end <= match_start:
            continue
        if match_start > position:
            pieces.append(Segment(text[position:match_start], False))
        pieces.append(Segment(text[match_start:match_end], True))
        position = match_end
    if position < end:
        pieces.append(Segment(text[position:end], False))
    if end < len(text):
        pieces.append(Segment("…", False))
    return pieces


def _snippet_text(message: Message, terms: list[str]) -> str:
    """Return the text to cut `message`'s snippet from: a user's text as typed, a reply's without Markdown.

    Only the lines around the first match are converted (SNIPPET_CHARS four
    times over, each side), so a long reply costs no more than a short one.
    """
    text = message.content
    if message.role != Message.Role.ASSISTANT:
        return text
    pattern = re.compile("|".join(re.escape(t) for t in sorted(terms, key=len, reverse=True)), re.IGNORECASE)
    match = pattern.search(text) if terms else None
    first = match.start() if match else 0
    reach = 4 * SNIPPET_CHARS
    # Cut at a line break within another `reach` when there is one, so the Markdown around the match stays whole.
    low = max(0, first - reach)
    line_start = text.rfind("\n", max(0, low - reach), low)
    start = 0 if low == 0 else (line_start + 1 if line_start != -1 else low)
    high = min(len(text), first + reach)
    line_end = text.find("\n", high, high + reach)
    end = line_end if line_end != -1 else min(len(text), high + reach)
    return rendering.markdown_text(text[start:end])


def _all_terms(field: str, terms: list[str]) -> Q:
    condition = Q()
    for term in terms:
        condition &= Q(**{f"{field}__icontains": term})
    return condition


def _messages_full_text(messages: QuerySet[Message], words: list[str]) -> QuerySet[Message]:
    from django.contrib.postgres.search import SearchQuery, SearchRank, SearchVector

    # Must stay the expression of the index in migration 0003, or the index does not apply.
    document = SearchVector("content", config="simple")
    # `words` are \w+ runs: no quote or operator can reach the tsquery syntax.
    query = SearchQuery(" & ".join(f"'{word}':*" for word in words), config="simple", search_type="raw")
    return (
        messages.annotate(document=document)
        .filter(document=query)
        .annotate(rank=SearchRank(document, query))
        .order_by("-rank", "-created_at", "-id")
    )


def search_for_user(*, user: User, query: str, max_messages: int = SEARCH_MAX_MESSAGES) -> Results:
    """Return `user`'s conversations whose title has every word of `query`, then the messages that match.

    A conversation whose title matched is listed on its own only when none
    of its messages matched. Archived conversations are searched too.
    Messages: the shown versions only, at most `max_messages`, best match
    first on PostgreSQL's full-text path, newest first otherwise. Two
    queries, three when PostgreSQL falls back to the substring search.
    """
    query = query.strip()[:QUERY_MAX_CHARS]
    terms = query_terms(query)
    if not terms or not getattr(user, "is_authenticated", False):
        return Results(query=query, hits=[], truncated=False)

    titles = (
        Conversation.objects.filter(owner=user)
        .filter(_all_terms("title", terms))
        .only("public_id", "title", "archived", "updated_at")
        .order_by("-updated_at", "-public_id")[:SEARCH_MAX_TITLES]
    )

    shown = (
        Message.objects.filter(conversation__owner=user, is_current=True)
        .select_related("conversation")
        .only(
            "public_id",
            "role",
            "content",
            "created_at",
            "conversation__public_id",
            "conversation__title",
            "conversation__archived",
        )
    )
    words = _WORD.findall(" ".join(terms))[:QUERY_MAX_TERMS]
    full_text = connection.vendor == "postgresql" and bool(words) and not _CJK.search(query)
    found = list(_messages_full_text(shown, words)[: max_messages + 1]) if full_text else []
    marked = words if found else terms
    if not found:
        substring = shown.filter(_all_terms("content", terms)).order_by("-created_at", "-id")
        found = list(substring[: max_messages + 1])
    found, truncated = found[:max_messages], len(found) > max_messages
    # A title that matched shows with its conversation's message hits; alone only when none matched.
    with_messages = {message.conversation_id for message in found}
    hits = [
        Hit(conversation=c, message=None, title=segments(c.title, terms), snippet=[])
        for c in titles
        if c.pk not in with_messages
    ]
    hits += [
        Hit(
            conversation=message.conversation,
            message=message,
            title=segments(message.conversation.title, marked),
            snippet=segments(_snippet_text(message, marked), marked, width=SNIPPET_CHARS),
        )
        for message in found
    ]
    return Results(query=query, hits=hits, truncated=truncated)
