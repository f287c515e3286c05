"""Search: titles and message text of the user's own conversations, matches highlighted and escaped.

Runs on SQLite (substring search) and, in CI's second leg, on PostgreSQL
(full-text search on the GIN index, with the substring fallback).
"""

import re

import pytest
from django.db import connection
from django.urls import reverse

from conversations import search, services
from conversations.models import Conversation, Message

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}
SEARCH_URL = reverse("conversations:search")
HIT = re.compile(
    r'<a href="(/c/[0-9a-f-]{36}/(?:\?around=[0-9a-f-]{36}#message-[0-9a-f-]{36})?)" class="search-hit-link">'
)


@pytest.fixture
def chat(alice, persona):
    """Return a factory: a conversation of `owner` (alice by default) with one user message per text."""

    def make(*texts: str, owner=None, title: str = "") -> tuple[Conversation, list[Message]]:
        conversation = services.conversation_create(owner=owner or alice, persona=persona)
        messages = [services.message_send(conversation=conversation, text=text).user_message for text in texts]
        if title:
            Conversation.objects.filter(pk=conversation.pk).update(title=title)
            conversation.title = title
        return conversation, messages

    return make


def hits(client, query: str) -> list[str]:
    return HIT.findall(client.get(SEARCH_URL, {"q": query}).content.decode())


def message_url(conversation, message) -> str:
    return f"{conversation.get_absolute_url()}?around={message.public_id}#message-{message.public_id}"


def test_finds_message_text_and_links_to_the_message(client, alice, chat):
    conversation, (first, second) = chat("How do I bake sourdough bread?", "And rye bread?")
    chat("Something else entirely")
    client.force_login(alice)
    assert hits(client, "sourdough") == [message_url(conversation, first)]
    assert set(hits(client, "bread")) == {message_url(conversation, first), message_url(conversation, second)}


def test_finds_titles(client, alice, chat):
    conversation, _ = chat("hello", title="Trip to Lisbon")
    client.force_login(alice)
    assert hits(client, "lisbon") == [conversation.get_absolute_url()]
    assert "Trip to <mark>Lisbon</mark>" in client.get(SEARCH_URL, {"q": "lisbon"}).content.decode()


def test_a_title_that_matches_shows_once_with_its_matching_messages(client, alice, chat):
    conversation, (message,) = chat("Pasta recipes", title="Pasta night")
    client.force_login(alice)
    page = client.get(SEARCH_URL, {"q": "pasta"}).content.decode()
    assert HIT.findall(page) == [message_url(conversation, message)]
    assert "<mark>Pasta</mark> night" in page and "<mark>Pasta</mark> recipes" in page


def test_finds_assistant_replies(client, alice, chat):
    conversation, _ = chat("hello")
    reply = Message.objects.filter(conversation=conversation, role="assistant").first()
    services.reply_finish(message=reply, content="The capital of Portugal is Lisbon.", status="complete")
    client.force_login(alice)
    assert hits(client, "portugal") == [message_url(conversation, reply)]


def test_never_shows_another_users_text(client, alice, bob, chat):
    chat("My password hint is platypus", owner=bob, title="platypus secrets")
    mine, (message,) = chat("A platypus lays eggs")
    client.force_login(alice)
    page = client.get(SEARCH_URL, {"q": "platypus"}).content.decode()
    assert HIT.findall(page) == [message_url(mine, message)]
    assert "password" not in page and "secrets" not in page
    client.force_login(bob)
    page = client.get(SEARCH_URL, {"q": "eggs"}).content.decode()
    assert HIT.findall(page) == [] and "lays" not in page


def test_match_is_highlighted_and_everything_else_escaped(client, alice, chat):
    chat("<script>alert(1)</script>", title="<img src=x onerror=alert(1)> script notes")
    client.force_login(alice)
    page = client.get(SEARCH_URL, {"q": "script"}).content.decode()
    assert "&lt;<mark>script</mark>&gt;alert(1)&lt;/<mark>script</mark>&gt;" in page
    assert "&lt;img src=x onerror=alert(1)&gt; <mark>script</mark> notes" in page
    assert "<script>" not in page and "<img src=x" not in page


def test_query_is_escaped_back_in_the_page(client, alice):
    client.force_login(alice)
    page = client.get(SEARCH_URL, {"q": '"><svg onload=alert(1)>'}).content.decode()
    assert "<svg" not in page and "&lt;svg onload=alert(1)&gt;" in page


def test_chinese_text_is_found_by_part_of_a_sentence(client, alice, chat):
    conversation, (message,) = chat("我们明天去公园散步，好吗？")
    client.force_login(alice)
    assert hits(client, "公园") == [message_url(conversation, message)]
    assert "<mark>公园</mark>" in client.get(SEARCH_URL, {"q": "公园"}).content.decode()


def test_a_word_being_typed_already_matches(client, alice, chat):
    conversation, (message,) = chat("Explain photosynthesis simply")
    client.force_login(alice)
    assert hits(client, "photosyn") == [message_url(conversation, message)]


def test_every_word_must_appear(client, alice, chat):
    conversation, (both, _) = chat("alpha beta gamma", "alpha only")
    client.force_login(alice)
    assert hits(client, "gamma alpha") == [message_url(conversation, both)]


def test_earlier_versions_of_messages_are_not_searched(client, alice, chat):
    _, (message,) = chat("zebra crossing", title="Road safety")
    Message.objects.filter(pk=message.pk).update(is_current=False)
    client.force_login(alice)
    assert hits(client, "zebra") == []


def test_archived_conversations_are_searched_and_marked(client, alice, chat):
    conversation, (message,) = chat("archived armadillo")
    Conversation.objects.filter(pk=conversation.pk).update(archived=True)
    client.force_login(alice)
    page = client.get(SEARCH_URL, {"q": "armadillo"}).content.decode()
    assert HIT.findall(page) == [message_url(conversation, message)] and '<span class="badge">Archived</span>' in page


def test_snippet_is_cut_around_the_first_match(alice, chat):
    chat("filler " * 100 + "needle in the haystack " + "tail " * 100)
    (hit,) = search.search_for_user(user=alice, query="needle").hits
    text = "".join(piece.text for piece in hit.snippet)
    assert text.startswith("…") and text.endswith("…") and len(text) <= search.SNIPPET_CHARS + 2
    assert [piece.text for piece in hit.snippet if piece.marked] == ["needle"]


def test_results_stop_at_the_limit_and_say_so(client, alice, chat):
    chat(*[f"repeat {i}" for i in range(6)])
    results = search.search_for_user(user=alice, query="repeat", max_messages=5)
    assert len(results.hits) == 5 and results.truncated
    assert not search.search_for_user(user=alice, query="repeat", max_messages=6).truncated


def test_empty_query_shows_how_to_search(client, alice, chat):
    chat("anything")
    client.force_login(alice)
    page = client.get(SEARCH_URL, {"q": "   "}).content.decode()
    assert HIT.findall(page) == [] and "Type in the search box" in page


def test_nothing_found_says_so(client, alice, chat):
    chat("anything")
    client.force_login(alice)
    assert "No conversation or message matches." in client.get(SEARCH_URL, {"q": "zzzz"}).content.decode()


def test_htmx_gets_the_results_panel_and_plain_get_the_page(client, alice, chat):
    chat("kiwi fruit")
    client.force_login(alice)
    panel = client.get(SEARCH_URL, {"q": "kiwi"}, **HTMX).content.decode()
    assert "<html" not in panel and 'id="search-results"' in panel and 'id="sidebar"' not in panel
    page = client.get(SEARCH_URL, {"q": "kiwi"}).content.decode()
    assert "<html" in page and 'id="search-results"' in page
    assert 'name="q" value="kiwi"' in page  # the sidebar's box keeps the query


def test_sidebar_search_box_searches_as_the_user_types(client, alice):
    client.force_login(alice)
    page = client.get("/").content.decode()
    form = re.search(r'<form id="search"[^>]*>', page)[0]
    assert 'action="/search/"' in form and 'method="get"' in form
    assert 'hx-get="/search/"' in form and "input changed delay:300ms" in form and 'hx-target="#main"' in form


def test_anonymous_user_is_sent_to_login(client):
    response = client.get(SEARCH_URL, {"q": "x"})
    assert response.status_code == 302 and response.url.startswith("/accounts/login/")


def test_search_query_count_is_constant(client, alice, chat, django_assert_num_queries):
    for i in range(5):
        chat(f"walrus {i}", "walrus again", title=f"walrus {i}")
    client.force_login(alice)
    # session, user, sidebar (with its folders and pinned or filed conversations), titles, messages
    with django_assert_num_queries(7):
        page = client.get(SEARCH_URL, {"q": "walrus"}).content.decode()
    assert len(HIT.findall(page)) == 10  # the matching titles show with their messages


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL full-text search")
def test_full_text_search_uses_the_gin_index_on_postgresql(alice, chat):
    chat("indexed words here")
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
    # The search's own match expression, alone, so the planner may pick only the GIN index for it:
    # had the expression drifted from the index's, no plan could use the index.
    plan = search._messages_full_text(Message.objects.all(), ["indexed"]).explain()
    assert "Bitmap Index Scan on message_content_fts" in plan, plan


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL full-text search")
def test_full_text_search_ranks_better_matches_first_on_postgresql(client, alice, chat):
    conversation, (once, twice) = chat("otter", "otter otter and more otter facts")
    client.force_login(alice)
    assert hits(client, "otter") == [message_url(conversation, twice), message_url(conversation, once)]


def _reply(conversation, content: str) -> Message:
    reply = Message.objects.filter(conversation=conversation, role="assistant").first()
    return services.reply_finish(message=reply, content=content, status="complete")


def test_a_reply_snippet_shows_its_words_without_markdown(alice, chat):
    conversation, _ = chat("question")
    _reply(conversation, "## Steps\n\n1. Run **`make test`** with *care*\n2. Read [the docs](https://example.com/docs)")

    (hit,) = search.search_for_user(user=alice, query="docs").hits

    text = "".join(piece.text for piece in hit.snippet)
    assert text == "Steps Run make test with care Read the docs"
    assert not any(mark in text for mark in ("**", "`", "#", "[", "](", "*"))


def test_a_long_reply_snippet_is_cut_around_its_match_without_markup(alice, chat):
    conversation, _ = chat("question")
    _reply(conversation, "**filler** " * 2000 + "\n\nthe `needle` is **here**\n\n" + "_tail_ " * 2000)

    (hit,) = search.search_for_user(user=alice, query="needle").hits

    text = "".join(piece.text for piece in hit.snippet)
    assert "needle is here" in text and "*" not in text and "`" not in text and "_" not in text
    assert len(text) <= search.SNIPPET_CHARS + 2


def test_a_user_message_snippet_keeps_what_was_typed(alice, chat):
    chat("is **bold** markdown?")

    (hit,) = search.search_for_user(user=alice, query="bold").hits

    assert "".join(piece.text for piece in hit.snippet) == "is **bold** markdown?"
