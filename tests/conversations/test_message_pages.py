"""The conversation page shows its latest messages; older pages load through a sentinel (keyset cursor).

A conversation of 120 messages: the page holds the latest 50 under a
sentinel; following sentinels gives the rest, oldest first, until the
start. Timestamps repeat (three messages per second), so the order's tie
break on the id is crossed by page boundaries.
"""

import re
import uuid

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from conversations import fragments, selectors, services
from conversations.models import Message
from tests.conversations.history import long_conversation

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}
BUBBLE = re.compile(r'<article id="message-([0-9a-f-]{36})"')
SENTINEL = re.compile(r'<a class="messages-older" href="([^"]+)" hx-get="([^"]+)"')
PAGE = selectors.MESSAGE_PAGE_SIZE


def page_url(conversation, cursor: str) -> str:
    return f"{reverse('conversations:message-page', args=[conversation.public_id])}?before={cursor}"


def bubbles(html: str) -> list[str]:
    return BUBBLE.findall(html)


def ids(messages) -> list[str]:
    return [str(message.public_id) for message in messages]


def sentinel(html: str) -> str | None:
    """Return the URL the sentinel fetches, or None without one; its plain link goes to the same URL."""
    found = SENTINEL.findall(html)
    assert len(found) <= 1
    if not found:
        return None
    href, get = found[0]
    assert href == get
    return get


@pytest.fixture
def chat(alice, persona):
    return long_conversation(alice, persona, 119)  # 120 with the greeting


def test_page_shows_the_latest_page_under_a_sentinel(client, alice, chat):
    conversation, messages = chat
    client.force_login(alice)
    html = client.get(conversation.get_absolute_url()).content.decode()
    assert bubbles(html) == ids(messages[-PAGE:])
    url = sentinel(html)
    assert url == page_url(conversation, messages[-PAGE].public_id.hex)
    assert html.index('class="messages-older"') < html.index(f'id="message-{messages[-PAGE].public_id}"')
    assert "<script>alert(" not in html and "&lt;script&gt;alert(118)&lt;/script&gt;" in html


def test_sentinels_give_the_older_messages_in_order_until_the_start(client, alice, chat):
    conversation, messages = chat
    client.force_login(alice)
    html = client.get(conversation.get_absolute_url()).content.decode()
    shown, url, sizes = bubbles(html), sentinel(html), []
    while url is not None:
        response = client.get(url, **HTMX)
        assert response.status_code == 200
        fragment = response.content.decode()
        assert "<html" not in fragment and 'id="composer"' not in fragment
        sizes.append(len(bubbles(fragment)))
        shown = bubbles(fragment) + shown  # The fragment replaces the sentinel, above what is shown.
        url = sentinel(fragment)
        assert "<script>alert(" not in fragment
    assert shown == ids(messages)  # In order, each once, the greeting first.
    assert sizes == [PAGE, 120 - 2 * PAGE]


def test_pages_leave_out_earlier_versions(client, alice, persona):
    conversation, messages = long_conversation(alice, persona, 79)
    hidden = Message.objects.create(
        conversation=conversation, parent=messages[1], role="assistant", content="Old reply", is_current=False
    )
    Message.objects.filter(pk=hidden.pk).update(created_at=messages[5].created_at)
    page = selectors.message_page_for_conversation(conversation=conversation, before=messages[-PAGE])
    assert ids(page.messages) == ids(messages[: 80 - PAGE]) and not page.more_before


def test_another_users_conversation_gets_404(client, alice, bob, persona, chat):
    conversation, messages = chat
    url = page_url(conversation, messages[-PAGE].public_id.hex)
    client.force_login(bob)
    assert client.get(url, **HTMX).status_code == 404
    assert client.get(url).status_code == 404
    theirs = services.conversation_create(owner=bob, persona=persona)
    # bob's own conversation with a cursor naming alice's message
    assert client.get(page_url(theirs, messages[-PAGE].public_id.hex), **HTMX).status_code == 404


def test_anonymous_user_is_sent_to_login(client, chat):
    conversation, messages = chat
    response = client.get(page_url(conversation, messages[-1].public_id.hex), **HTMX)
    assert response.status_code == 302 and response.url.startswith("/accounts/login/")


@pytest.mark.parametrize(
    "cursor", ["", "not-a-cursor", "0" * 31, "g" * 32, "A" * 32, "1" * 33, "../../etc/passwd", "%00", "50"]
)
def test_a_malformed_cursor_is_refused(client, alice, chat, cursor):
    conversation, _ = chat
    client.force_login(alice)
    response = client.get(page_url(conversation, cursor), **HTMX)
    assert response.status_code == 400
    assert response.content.decode() == "That link to older messages is broken."


def test_a_cursor_naming_no_message_of_the_conversation_gets_404(client, alice, persona, chat):
    conversation, _ = chat
    _, others = long_conversation(alice, persona, 3)
    client.force_login(alice)
    assert client.get(page_url(conversation, uuid.uuid4().hex), **HTMX).status_code == 404
    assert client.get(page_url(conversation, others[-1].public_id.hex), **HTMX).status_code == 404


def test_the_sentinel_without_javascript_opens_the_page_at_the_older_messages(client, alice, chat):
    conversation, messages = chat
    client.force_login(alice)
    response = client.get(page_url(conversation, messages[-PAGE].public_id.hex))
    first = messages[-2 * PAGE]
    assert response.status_code == 302
    assert response.url == f"{conversation.get_absolute_url()}?around={first.public_id}#message-{first.public_id}"
    html = client.get(response.url).content.decode()
    assert bubbles(html) == ids(messages[-2 * PAGE :])
    assert sentinel(html) == page_url(conversation, first.public_id.hex)


def test_around_opens_the_page_at_an_old_message(client, alice, chat):
    conversation, messages = chat
    client.force_login(alice)
    url = conversation.get_absolute_url()
    html = client.get(url, {"around": str(messages[10].public_id)}).content.decode()
    assert bubbles(html) == ids(messages[10:])
    assert sentinel(html) == page_url(conversation, messages[10].public_id.hex)
    html = client.get(url, {"around": str(messages[0].public_id)}).content.decode()
    assert bubbles(html) == ids(messages) and sentinel(html) is None
    # A message of the latest page, an unknown or malformed id, another conversation's message: the latest page.
    _, others = long_conversation(alice, conversation.persona, 2)
    for around in [messages[-3].public_id, uuid.uuid4(), "nope", others[-1].public_id]:
        assert bubbles(client.get(url, {"around": str(around)}).content.decode()) == ids(messages[-PAGE:])


def test_a_search_hit_deep_in_the_history_opens_a_page_that_shows_it(client, alice, chat):
    conversation, messages = chat
    Message.objects.filter(pk=messages[5].pk).update(content="Where do penguins live?")
    client.force_login(alice)
    results = client.get(reverse("conversations:search"), {"q": "penguins"}).content.decode()
    link = re.search(r'<a href="([^"]+)" class="search-hit-link">', results)[1]
    assert link == f"{conversation.get_absolute_url()}?around={messages[5].public_id}#message-{messages[5].public_id}"
    assert str(messages[5].public_id) in bubbles(client.get(link).content.decode())


def test_resync_fragment_is_the_latest_page_and_its_sentinel(chat):
    conversation, messages = chat
    html = fragments.message_list_html(conversation=conversation)
    assert html.strip().startswith('<div id="messages" hx-swap-oob="innerHTML">')
    assert bubbles(html) == ids(messages[-PAGE:])
    assert sentinel(html) == page_url(conversation, messages[-PAGE].public_id.hex)


def test_version_switchers_work_on_an_older_page(client, alice, persona):
    conversation = services.conversation_create(owner=alice, persona=persona)
    sent = services.message_send(conversation=conversation, text="q1")
    services.reply_finish(message=sent.assistant_message, content="r1", status="complete", finish_reason="stop")
    second = services.reply_regenerate(conversation=conversation)
    services.reply_finish(message=second, content="r2", status="complete", finish_reason="stop")
    previous = second
    for i in range(2 * PAGE):  # Messages after the regenerated reply push it off the latest page.
        previous = Message.objects.create(
            conversation=conversation, parent=previous, role="user" if i % 2 == 0 else "assistant", content=f"m{i}"
        )
    client.force_login(alice)
    html = client.get(conversation.get_absolute_url()).content.decode()
    assert str(second.public_id) not in bubbles(html)
    html = client.get(sentinel(html), **HTMX).content.decode()
    html = client.get(sentinel(html), **HTMX).content.decode()
    show_first = reverse("conversations:message-show", args=[conversation.public_id, sent.assistant_message.public_id])
    assert str(second.public_id) in bubbles(html) and "2/2" in html and f'hx-post="{show_first}"' in html
    response = client.post(show_first, **HTMX)
    assert response.status_code == 200
    html = response.content.decode()
    assert "<p>r1</p>" in html and "1/2" in html and len(bubbles(html)) == 3  # greeting, q1, r1


def test_page_and_resync_sizes_do_not_grow_with_the_conversation(client, alice, persona):
    small, _ = long_conversation(alice, persona, 100)
    large, _ = long_conversation(alice, persona, 1000)
    client.force_login(alice)
    pages = [len(client.get(conversation.get_absolute_url()).content) for conversation in (small, large)]
    resyncs = [len(fragments.message_list_html(conversation=conversation)) for conversation in (small, large)]
    # The bubbles differ only by a digit in their text ("Question 998" for "Question 98").
    assert pages[1] < pages[0] * 1.05 and resyncs[1] < resyncs[0] * 1.05


def _page_queries(client, conversation, **params) -> int:
    with CaptureQueriesContext(connection) as queries:
        assert client.get(conversation.get_absolute_url(), params).status_code == 200
    return len(queries)


def _older_page_queries(client, conversation, cursor: str) -> int:
    with CaptureQueriesContext(connection) as queries:
        assert client.get(page_url(conversation, cursor), **HTMX).status_code == 200
    return len(queries)


def test_query_counts_do_not_grow_with_the_conversation(client, alice, persona):
    small, small_messages = long_conversation(alice, persona, 100)
    large, large_messages = long_conversation(alice, persona, 1000)
    client.force_login(alice)
    # The page: the same queries whatever the length (test_views.py lists them); the messages are one of them.
    page = _page_queries(client, small)
    assert _page_queries(client, large) == page
    # An older page: session, user, conversation, the cursor's message, the page, its attachments, its versions;
    # wherever it is.
    small_deep = _older_page_queries(client, small, small_messages[PAGE].public_id.hex)
    large_deep = _older_page_queries(client, large, large_messages[PAGE].public_id.hex)
    assert small_deep == large_deep == _older_page_queries(client, large, large_messages[-PAGE].public_id.hex) == 7
    # Opened at a message older than the latest page: the message, the messages from it, whether older ones exist.
    assert _page_queries(client, large, around=large_messages[10].public_id) == page + 3
