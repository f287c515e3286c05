"""The sidebar: conversations grouped by date, keyset pages loaded on scroll, a constant query count."""

import re
from datetime import datetime, time, timedelta

import pytest
from django.db import connection
from django.urls import reverse
from django.utils import formats, timezone, translation

from conversations import selectors, sidebar
from conversations.models import Conversation

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}
LIST_URL = reverse("conversations:conversation-list")
ENTRY = re.compile(r'id="conversation-([0-9a-f-]{36})"')
HEADER = re.compile(r'<h2 class="conversation-group">([^<]*)</h2>')
SENTINEL = re.compile(r'hx-get="(/conversations/\?before=[^"]+)"')


def make_conversations(owner, moments: list[datetime], title: str = "chat") -> list[Conversation]:
    """Create one conversation per moment of last activity: one insert, then one update each."""
    created = Conversation.objects.bulk_create(
        [Conversation(owner=owner, title=f"{title} {i}") for i in range(len(moments))]
    )
    for conversation, moment in zip(created, moments, strict=True):
        conversation.updated_at = moment
        Conversation.objects.filter(pk=conversation.pk).update(updated_at=moment)
    return created


def today_at(seconds: float) -> datetime:
    """Return a moment of today, `seconds` after local midnight (later than now counts as today too)."""
    return local_midnight(0) + timedelta(seconds=seconds)


def newest_first(owner) -> list[str]:
    return [
        str(public_id)
        for public_id in Conversation.objects.filter(owner=owner, archived=False)
        .order_by("-updated_at", "-public_id")
        .values_list("public_id", flat=True)
    ]


def local_midnight(days_ago: int = 0) -> datetime:
    """Return 00:00 of the local day `days_ago` days before today, in the current time zone."""
    day = timezone.localdate() - timedelta(days=days_ago)
    return timezone.make_aware(datetime.combine(day, time.min))


# Date groups


@pytest.mark.parametrize("zone", ["UTC", "Asia/Shanghai", "America/Los_Angeles"])
def test_date_groups_follow_local_calendar_days(zone):
    with timezone.override(zone):
        today = timezone.localdate()
        second = timedelta(seconds=1)

        def group(moment):
            return sidebar.date_group(moment, today=today)

        assert group(timezone.now()) == "Today"
        assert group(local_midnight(0)) == "Today"
        assert group(local_midnight(0) - second) == "Yesterday"
        assert group(local_midnight(1)) == "Yesterday"
        assert group(local_midnight(1) - second) == "Previous 7 days"
        assert group(local_midnight(7)) == "Previous 7 days"
        assert group(local_midnight(7) - second) == "Previous 30 days"
        assert group(local_midnight(30)) == "Previous 30 days"
        older = local_midnight(30) - second
        assert group(older) == formats.date_format(timezone.localtime(older).date(), "YEAR_MONTH_FORMAT")
        assert group(timezone.now() + timedelta(hours=1)) == "Today"  # a clock running ahead


def test_month_groups_are_named_in_the_active_language():
    moment = timezone.make_aware(datetime(2024, 11, 15, 12))
    today = timezone.localdate()
    assert sidebar.date_group(moment, today=today) == "November 2024"
    with translation.override("zh-hans"):
        assert sidebar.date_group(moment, today=today) == "2024年11月"


def test_sidebar_shows_groups_newest_first_with_one_header_each(client, alice):
    moments = [today_at(5), today_at(60), local_midnight(1), local_midnight(3), local_midnight(20)]
    moments += [local_midnight(70), local_midnight(71), local_midnight(400)]
    make_conversations(alice, moments)
    client.force_login(alice)
    page = client.get("/").content.decode()
    today = timezone.localdate()
    month = formats.date_format(today - timedelta(days=70), "YEAR_MONTH_FORMAT")
    old_month = formats.date_format(today - timedelta(days=400), "YEAR_MONTH_FORMAT")
    expected = ["Today", "Yesterday", "Previous 7 days", "Previous 30 days", month, old_month]
    if month == formats.date_format(today - timedelta(days=71), "YEAR_MONTH_FORMAT"):
        assert HEADER.findall(page) == expected
    else:  # Day 70 and day 71 fall in two months.
        assert len(HEADER.findall(page)) == len(expected) + 1
    assert ENTRY.findall(page) == newest_first(alice)
    # Each header comes right before the first entry of its group.
    assert page.index(">Today<") < page.index("chat 1<") < page.index("chat 0<") < page.index(">Yesterday<")


# Keyset pages


def walk_pages(client) -> tuple[list[str], list[list[str]]]:
    """Return the entries of "/" and every page its sentinels load, and the headers of each page."""
    html = client.get("/").content.decode()
    entries, headers = ENTRY.findall(html), [HEADER.findall(html)]
    while match := SENTINEL.search(html):
        response = client.get(match[1].replace("&amp;", "&"), **HTMX)
        assert response.status_code == 200
        html = response.content.decode()
        assert "<html" not in html and 'id="sidebar"' not in html
        entries += ENTRY.findall(html)
        headers.append(HEADER.findall(html))
    return entries, headers


def test_pages_follow_each_other_without_duplicates_or_gaps(client, alice, bob):
    moments = [today_at(1000 - i) for i in range(130)]
    # Ties in last activity across a page boundary (49, 50, 51): the public id breaks them.
    for i in (49, 50, 51):
        moments[i] = today_at(1000 - 49)
    make_conversations(alice, moments)
    make_conversations(bob, [today_at(i) for i in range(60)], title="bob's")
    client.force_login(alice)
    entries, headers = walk_pages(client)
    assert len(entries) == 130 == len(set(entries))
    assert entries == newest_first(alice)
    # Pages of 50: the group "Today" continues on pages 2 and 3 without a second header.
    assert headers == [["Today"], [], []]


def test_a_page_that_starts_a_new_group_shows_its_header(client, alice):
    make_conversations(alice, [today_at(100 - i) for i in range(50)] + [local_midnight(3)] * 5)
    client.force_login(alice)
    entries, headers = walk_pages(client)
    assert len(entries) == 55
    assert headers == [["Today"], ["Previous 7 days"]]


def test_selector_pages_with_a_cursor_cover_the_list_exactly(alice):
    make_conversations(alice, [today_at(i % 7) for i in range(23)])
    seen, cursor = [], ""
    while True:
        page = sidebar.conversation_page(user=alice, cursor=cursor, size=5)
        seen += [str(row.conversation.public_id) for row in page.rows]
        if not page.next_cursor:
            break
        cursor = page.next_cursor
    assert seen == newest_first(alice)


def test_sentinel_loads_the_next_page_when_it_scrolls_into_view(client, alice):
    make_conversations(alice, [today_at(i) for i in range(51)])
    client.force_login(alice)
    page = client.get("/").content.decode()
    assert len(ENTRY.findall(page)) == selectors.SIDEBAR_PAGE_SIZE
    sentinel = re.search(r'<a class="more"[^>]*>', page)[0]
    assert 'hx-trigger="intersect once"' in sentinel and 'hx-swap="outerHTML"' in sentinel
    assert 'href="/conversations/?before=' in sentinel  # a plain link without JavaScript
    rest = client.get(SENTINEL.search(page)[1], **HTMX).content.decode()
    assert len(ENTRY.findall(rest)) == 1 and 'class="more"' not in rest


def test_later_page_without_javascript_is_a_whole_page_with_that_page_in_the_sidebar(client, alice):
    make_conversations(alice, [today_at(i) for i in range(55)])
    client.force_login(alice)
    url = SENTINEL.search(client.get("/").content.decode())[1]
    page = client.get(url).content.decode()
    assert "<html" in page and 'id="new-chat"' in page and 'id="conversations"' in page
    assert ENTRY.findall(page) == newest_first(alice)[50:]
    assert "Newest conversations" in page


@pytest.mark.parametrize("cursor", ["nonsense", "1.abc", "9" * 18 + "." + "0" * 32, "123." + "g" * 32])
def test_a_broken_cursor_is_refused(client, alice, cursor):
    client.force_login(alice)
    assert client.get(LIST_URL, {"before": cursor}, **HTMX).status_code == 400


def test_later_pages_never_show_another_users_conversations(client, alice, bob):
    make_conversations(alice, [today_at(i) for i in range(60)], title="alice's")
    make_conversations(bob, [today_at(i) for i in range(60)], title="bob's")
    client.force_login(bob)
    entries, _ = walk_pages(client)
    assert entries == newest_first(bob)
    page = client.get(SENTINEL.search(client.get("/").content.decode())[1], **HTMX).content.decode()
    assert "alice&#x27;s" not in page and "bob&#x27;s" in page


def test_anonymous_user_is_sent_to_login(client):
    response = client.get(LIST_URL)
    assert response.status_code == 302 and response.url.startswith("/accounts/login/")


def test_sidebar_keeps_its_hooks(client, alice):
    (conversation,) = make_conversations(alice, [timezone.now()])
    client.force_login(alice)
    page = client.get(conversation.get_absolute_url()).content.decode()
    assert 'id="new-chat"' in page and '<nav id="conversations"' in page
    assert f'<span id="conversation-{conversation.public_id}-title">chat 0</span>' in page
    assert f'id="conversation-{conversation.public_id}" class="conversation-item current"' in page


def test_archived_conversations_leave_the_sidebar(client, alice):
    kept, archived = make_conversations(alice, [today_at(1), today_at(2)])
    Conversation.objects.filter(pk=archived.pk).update(archived=True)
    client.force_login(alice)
    assert ENTRY.findall(client.get("/").content.decode()) == [str(kept.public_id)]


# Query count with 10,000 conversations


@pytest.fixture
def ten_thousand(alice):
    Conversation.objects.bulk_create(
        [Conversation(owner=alice, title=f"chat {i}") for i in range(10_000)], batch_size=2000
    )


def test_first_page_needs_the_same_few_queries_with_10000_conversations(
    client, alice, persona, ten_thousand, django_assert_num_queries
):
    client.force_login(alice)
    # session, user, personas with models, sidebar page, folders, pinned and filed conversations
    with django_assert_num_queries(6):
        page = client.get("/").content.decode()
    assert len(ENTRY.findall(page)) == selectors.SIDEBAR_PAGE_SIZE
    # session, user, sidebar page
    with django_assert_num_queries(3):
        rest = client.get(SENTINEL.search(page)[1], **HTMX).content.decode()
    assert len(ENTRY.findall(rest)) == selectors.SIDEBAR_PAGE_SIZE


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's plan")
def test_sidebar_query_walks_the_owner_updated_index_on_postgresql(alice, ten_thousand):
    before = sidebar.cursor_decode(sidebar.conversation_page(user=alice).next_cursor)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE conversations_conversation")
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("SET LOCAL enable_bitmapscan = off")
    for page in (None, before):
        plan = selectors.conversation_list_for_user(user=alice, limit=51, before=page).explain()
        assert "conversation_owner_updated" in plan, plan
