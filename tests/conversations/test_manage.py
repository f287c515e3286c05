"""Rename, archive, unarchive and delete a conversation: owner, another user, anonymous, htmx and plain."""

import re

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.urls import reverse

from conversations import events, services
from conversations.models import Conversation, Message

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}
ENTRY = re.compile(r'id="conversation-([0-9a-f-]{36})"')


@pytest.fixture
def conversation(alice, persona):
    conversation = services.conversation_create(owner=alice, persona=persona)
    services.message_send(conversation=conversation, text="What is a monad?")
    conversation.refresh_from_db()
    return conversation


def url(name: str, conversation) -> str:
    return reverse(f"conversations:{name}", kwargs={"public_id": conversation.public_id})


def snapshot(conversation) -> tuple:
    conversation = Conversation.objects.get(pk=conversation.pk)
    messages = list(Message.objects.filter(conversation=conversation).values_list("pk", "content"))
    return conversation.title, conversation.title_source, conversation.archived, messages


ACTIONS = [
    ("get", "conversation-rename"),
    ("post", "conversation-rename"),
    ("get", "conversation-delete"),
    ("post", "conversation-delete"),
    ("post", "conversation-archive"),
    ("post", "conversation-unarchive"),
]


@pytest.mark.parametrize(("method", "name"), ACTIONS)
def test_anonymous_user_is_sent_to_login(client, conversation, method, name):
    before = snapshot(conversation)
    response = getattr(client, method)(url(name, conversation), {"title": "Hijacked"})
    assert response.status_code == 302 and response.url.startswith("/accounts/login/")
    assert snapshot(conversation) == before


@pytest.mark.parametrize("htmx", [False, True])
@pytest.mark.parametrize(("method", "name"), ACTIONS)
def test_other_user_gets_404_and_changes_nothing(client, bob, conversation, method, name, htmx):
    before = snapshot(conversation)
    client.force_login(bob)
    response = getattr(client, method)(url(name, conversation), {"title": "Hijacked"}, **(HTMX if htmx else {}))
    assert response.status_code == 404
    assert snapshot(conversation) == before


@pytest.mark.parametrize("name", ["conversation-archive", "conversation-unarchive"])
def test_archive_needs_post(client, alice, conversation, name):
    client.force_login(alice)
    assert client.get(url(name, conversation)).status_code == 405


# The conversation header


def test_conversation_header_offers_rename_archive_and_delete(client, alice, conversation):
    client.force_login(alice)
    page = client.get(conversation.get_absolute_url()).content.decode()
    header = page[page.index('<header class="chat-header">') : page.index("</header>")]
    assert f'id="conversation-{conversation.public_id}-actions"' in header
    assert f'id="conversation-{conversation.public_id}-heading"' in header and "What is a monad?" in header
    for name in ["conversation-rename", "conversation-archive", "conversation-delete"]:
        assert f'href="{url(name, conversation)}"' in header or f'action="{url(name, conversation)}"' in header


# Rename


def test_rename_form_htmx_takes_the_place_of_the_sidebar_entry(client, alice, conversation):
    client.force_login(alice)
    response = client.get(url("conversation-rename", conversation), {"place": "sidebar"}, **HTMX)
    form = response.content.decode()
    assert "<html" not in form
    assert f'<form id="conversation-{conversation.public_id}" class="rename-form"' in form
    assert f'hx-post="{url("conversation-rename", conversation)}"' in form
    assert 'name="title" value="What is a monad?"' in form and "csrfmiddlewaretoken" in form


def test_rename_form_without_javascript_is_a_page(client, alice, conversation):
    client.force_login(alice)
    page = client.get(url("conversation-rename", conversation)).content.decode()
    assert "<html" in page and 'id="conversations"' in page and "Rename conversation" in page
    assert "hx-post" not in page[page.index('class="rename-form"') - 200 : page.index('class="rename-form"') + 300]


def test_rename_over_htmx_returns_the_updated_sidebar_entry(client, alice, conversation):
    client.force_login(alice)
    response = client.post(
        url("conversation-rename", conversation), {"title": "  Monads <explained>  ", "place": "sidebar"}, **HTMX
    )
    assert response.status_code == 200
    html = response.content.decode()
    assert ENTRY.findall(html) == [str(conversation.public_id)]
    assert f'<span id="conversation-{conversation.public_id}-title">Monads &lt;explained&gt;</span>' in html
    assert f'id="conversation-{conversation.public_id}-heading"' in html and 'hx-swap-oob="true"' in html
    conversation.refresh_from_db()
    assert conversation.title == "Monads <explained>"
    assert conversation.title_source == Conversation.TitleSource.USER


def test_rename_from_the_header_returns_the_heading_and_the_sidebar_title(client, alice, conversation):
    client.force_login(alice)
    response = client.post(url("conversation-rename", conversation), {"title": "Monads", "place": "header"}, **HTMX)
    html = response.content.decode()
    assert html.lstrip().startswith(f'<a id="conversation-{conversation.public_id}-heading"')
    assert f'<span id="conversation-{conversation.public_id}-title" hx-swap-oob="true">Monads</span>' in html


def test_cancelled_rename_puts_the_entry_back(client, alice, conversation):
    client.force_login(alice)
    html = client.get(url("conversation-rename", conversation), {"place": "sidebar", "cancel": "1"}, **HTMX)
    assert ENTRY.findall(html.content.decode()) == [str(conversation.public_id)]
    assert "rename-form" not in html.content.decode()


def test_rename_without_javascript_goes_back_to_the_conversation(client, alice, conversation):
    client.force_login(alice)
    response = client.post(url("conversation-rename", conversation), {"title": "Monads"})
    assert response.status_code == 302 and response.url == conversation.get_absolute_url()
    assert client.get(response.url).content.decode().count(">Monads<") >= 2  # sidebar and heading


def test_a_user_title_is_kept_when_a_title_is_generated_later(client, alice, conversation):
    client.force_login(alice)
    client.post(url("conversation-rename", conversation), {"title": "Mine"})
    assert not services.conversation_title_generated_set(public_id=conversation.public_id, title="Generated")
    conversation.refresh_from_db()
    assert conversation.title == "Mine"


@pytest.mark.usefixtures("one_process_channel_layer")
def test_rename_reaches_the_conversations_open_tabs(client, alice, conversation, django_capture_on_commit_callbacks):
    layer = get_channel_layer()
    channel = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)(events.conversation_group(conversation.public_id), channel)
    client.force_login(alice)
    with django_capture_on_commit_callbacks(execute=True):
        client.post(url("conversation-rename", conversation), {"title": "Renamed <b>"})
    event = async_to_sync(layer.receive)(channel)
    assert event["type"] == "title.changed"
    assert f'id="conversation-{conversation.public_id}-title" hx-swap-oob="true">Renamed &lt;b&gt;<' in event["html"]


@pytest.mark.parametrize(
    ("title", "reason"),
    [("", "Type a title."), ("   \n ", "Type a title."), ("x" * 201, "201 characters long; the limit is 200")],
)
def test_empty_or_too_long_titles_are_refused_with_a_message(client, alice, conversation, title, reason):
    before = snapshot(conversation)
    client.force_login(alice)
    response = client.post(url("conversation-rename", conversation), {"title": title, "place": "sidebar"}, **HTMX)
    # htmx swaps only 2xx answers by default: the form comes back with its message.
    assert response.status_code == 200
    html = response.content.decode()
    assert 'class="rename-form"' in html and reason in html and 'role="alert"' in html
    response = client.post(url("conversation-rename", conversation), {"title": title})
    assert response.status_code == 400 and reason in response.content.decode()
    assert snapshot(conversation) == before


def test_a_title_of_200_characters_is_accepted(client, alice, conversation):
    client.force_login(alice)
    client.post(url("conversation-rename", conversation), {"title": "x" * 200})
    conversation.refresh_from_db()
    assert conversation.title == "x" * 200


# Delete


def test_delete_asks_first_htmx_in_the_main_panel(client, alice, conversation):
    client.force_login(alice)
    html = client.get(url("conversation-delete", conversation), **HTMX).content.decode()
    assert "<html" not in html and "Delete this conversation?" in html and "What is a monad?" in html
    assert f'action="{url("conversation-delete", conversation)}"' in html and 'id="confirm-delete"' in html
    assert Conversation.objects.filter(pk=conversation.pk).exists()


def test_delete_asks_first_without_javascript_on_a_page(client, alice, conversation):
    client.force_login(alice)
    page = client.get(url("conversation-delete", conversation)).content.decode()
    assert "<html" in page and 'id="confirm-delete"' in page and "csrfmiddlewaretoken" in page


def test_delete_removes_the_conversation_and_its_messages_and_goes_home(client, alice, conversation):
    services.message_send(conversation=conversation, text="Another question")
    client.force_login(alice)
    response = client.post(url("conversation-delete", conversation))
    assert response.status_code == 302 and response.url == "/"
    assert not Conversation.objects.filter(pk=conversation.pk).exists()
    assert not Message.objects.filter(conversation_id=conversation.pk).exists()
    page = client.get("/").content.decode()
    assert "Deleted “What is a monad?”." in page and str(conversation.public_id) not in page


def test_delete_over_htmx_answers_with_a_client_redirect(client, alice, conversation):
    client.force_login(alice)
    response = client.post(url("conversation-delete", conversation), **HTMX)
    assert response.status_code == 200 and response.headers["HX-Redirect"] == "/"
    assert not Conversation.objects.filter(pk=conversation.pk).exists()


@pytest.mark.usefixtures("one_process_channel_layer")
def test_delete_stops_a_reply_still_streaming(client, alice, conversation, django_capture_on_commit_callbacks):
    layer = get_channel_layer()
    generator = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)(events.control_group(conversation.public_id), generator)
    client.force_login(alice)
    with django_capture_on_commit_callbacks(execute=True):
        client.post(url("conversation-delete", conversation))
    assert async_to_sync(layer.receive)(generator) == {"type": "reply.stop"}


def test_delete_leaves_other_conversations_alone(client, alice, bob, conversation, persona):
    mine = services.conversation_create(owner=alice, persona=persona)
    theirs = services.conversation_create(owner=bob, persona=persona)
    client.force_login(alice)
    client.post(url("conversation-delete", conversation))
    assert set(Conversation.objects.values_list("pk", flat=True)) == {mine.pk, theirs.pk}


# Archive and unarchive


def test_archive_without_javascript_goes_back_and_the_entry_leaves_the_sidebar(client, alice, conversation):
    client.force_login(alice)
    response = client.post(url("conversation-archive", conversation), {"next": "/"})
    assert response.status_code == 302 and response.url == "/"
    conversation.refresh_from_db()
    assert conversation.archived
    assert ENTRY.findall(client.get("/").content.decode()) == []
    archived = client.get(reverse("conversations:conversation-archived-list")).content.decode()
    assert f'id="archived-{conversation.public_id}"' in archived and "What is a monad?" in archived


def test_archive_goes_back_only_to_this_site(client, alice, conversation):
    client.force_login(alice)
    response = client.post(url("conversation-archive", conversation), {"next": "https://evil.example/"})
    assert response.url == conversation.get_absolute_url()


def test_archive_keeps_the_last_activity_time(client, alice, conversation):
    updated_at = conversation.updated_at
    client.force_login(alice)
    client.post(url("conversation-archive", conversation))
    client.post(url("conversation-unarchive", conversation))
    conversation.refresh_from_db()
    assert conversation.updated_at == updated_at and not conversation.archived


def test_archive_over_htmx_removes_the_entry_and_flips_the_header(client, alice, conversation):
    client.force_login(alice)
    current = {"HTTP_HX_CURRENT_URL": f"http://testserver{conversation.get_absolute_url()}"}
    response = client.post(url("conversation-archive", conversation), **HTMX, **current)
    html = response.content.decode()
    assert response.status_code == 200
    assert f'<div id="conversation-{conversation.public_id}" hx-swap-oob="delete"></div>' in html
    actions = html[html.index(f'id="conversation-{conversation.public_id}-actions"') :]
    assert 'hx-swap-oob="true"' in actions[:200] and "Unarchive" in actions and ">Archived<" in actions


def test_unarchive_over_htmx_brings_the_sidebar_list_back(client, alice, conversation):
    Conversation.objects.filter(pk=conversation.pk).update(archived=True)
    client.force_login(alice)
    response = client.post(url("conversation-unarchive", conversation), **HTMX)
    html = response.content.decode()
    assert f'<div id="archived-{conversation.public_id}" hx-swap-oob="delete"></div>' in html
    assert '<nav id="conversations" class="conversation-list"' in html and 'hx-swap-oob="true"' in html
    assert ENTRY.findall(html) == [str(conversation.public_id)]
    assert "-actions" not in html  # the page that asked does not show this conversation
    conversation.refresh_from_db()
    assert not conversation.archived


def test_archived_conversation_can_still_be_opened(client, alice, conversation):
    Conversation.objects.filter(pk=conversation.pk).update(archived=True)
    client.force_login(alice)
    page = client.get(conversation.get_absolute_url()).content.decode()
    assert ">Archived<" in page and f'action="{url("conversation-unarchive", conversation)}"' in page


# The archive page


def test_archive_page_lists_only_the_users_archived_conversations(client, alice, bob, persona, conversation):
    services.conversation_create(owner=alice, persona=persona)  # not archived
    theirs = services.conversation_create(owner=bob, persona=persona)
    services.message_send(conversation=theirs, text="Bob's archived secret")
    Conversation.objects.filter(pk__in=[conversation.pk, theirs.pk]).update(archived=True)
    client.force_login(alice)
    page = client.get(reverse("conversations:conversation-archived-list")).content.decode()
    assert re.findall(r'id="archived-([0-9a-f-]{36})"', page) == [str(conversation.public_id)]
    assert '<h2 class="conversation-group">Today</h2>' in page and "secret" not in page


def test_archive_page_htmx_gets_the_panel_and_pages_on_scroll(client, alice):
    Conversation.objects.bulk_create([Conversation(owner=alice, title=f"old {i}", archived=True) for i in range(55)])
    client.force_login(alice)
    archived_url = reverse("conversations:conversation-archived-list")
    panel = client.get(archived_url, **HTMX).content.decode()
    assert "<html" not in panel and "Archived conversations" in panel
    first = re.findall(r'id="archived-([0-9a-f-]{36})"', panel)
    sentinel = re.search(r'hx-get="(/archived/\?before=[^"]+)"', panel)[1]
    rest = client.get(sentinel, **HTMX).content.decode()
    second = re.findall(r'id="archived-([0-9a-f-]{36})"', rest)
    assert len(first) == 50 and len(second) == 5 and not set(first) & set(second)
    assert "Archived conversations" not in rest


def test_archive_page_anonymous_and_empty(client, alice):
    archived_url = reverse("conversations:conversation-archived-list")
    assert client.get(archived_url).url.startswith("/accounts/login/")
    client.force_login(alice)
    assert "No archived conversations." in client.get(archived_url).content.decode()


def test_archive_page_query_count_is_constant(client, alice, django_assert_num_queries):
    Conversation.objects.bulk_create([Conversation(owner=alice, title=f"c {i}", archived=i % 2) for i in range(200)])
    client.force_login(alice)
    # session, user, sidebar page with its folders and pinned or filed conversations, archived page
    with django_assert_num_queries(6):
        client.get(reverse("conversations:conversation-archived-list"))
