"""Pins and folders: the sidebar shows pinned chats first, then folders, then the dated list; owner only."""

import re

import pytest
from django.urls import reverse

from conversations import organizing, services, sidebar
from conversations.models import Conversation, Folder

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}


def nav(page: str) -> str:
    return page[page.index('id="conversations"') :]


def titles_in(html: str) -> list[str]:
    return re.findall(r'id="conversation-[0-9a-f-]{36}-title">([^<]*)<', html)


@pytest.fixture
def chats(alice, persona):
    made = []
    for title in ("First", "Second", "Third"):
        conversation = services.conversation_create(owner=alice, persona=persona)
        services.conversation_rename(conversation=conversation, title=title)
        made.append(conversation)
    return made


def test_pinning_puts_a_chat_above_the_dated_list(client, alice, chats):
    first = chats[0]
    client.force_login(alice)
    response = client.post(reverse("conversations:conversation-pin", args=[first.public_id]))
    assert response.status_code == 302

    page = nav(client.get("/").content.decode())

    pinned = page[page.index('id="pinned-conversations"') : page.index("</div>", page.index("pinned-conversations"))]
    assert titles_in(pinned) == ["First"]
    assert titles_in(page).count("First") == 1  # not repeated in the dated list
    client.post(reverse("conversations:conversation-pin", args=[first.public_id]), {"pinned": "0"}, **HTMX)
    assert Conversation.objects.get(pk=first.pk).pinned_at is None
    assert 'id="pinned-conversations"' not in client.get("/").content.decode()


def test_moving_a_chat_into_a_new_folder_and_out_again(client, alice, chats):
    second = chats[1]
    client.force_login(alice)
    url = reverse("conversations:conversation-folder", args=[second.public_id])
    assert "Or a new folder" in client.get(url).content.decode()

    response = client.post(url, {"new_folder": "  Work   stuff "}, **HTMX)

    assert response.status_code == 200 and response["HX-Refresh"] == "true"
    folder = Folder.objects.get(owner=alice)
    assert folder.name == "Work stuff"
    page = nav(client.get("/").content.decode())
    group = page[page.index(f'id="folder-{folder.public_id}"') : page.index("</details>")]
    assert "Work stuff" in group and titles_in(group) == ["Second"]

    client.post(url, {"folder": ""})
    assert Conversation.objects.get(pk=second.pk).folder is None
    client.post(url, {"folder": str(folder.public_id)})
    assert Conversation.objects.get(pk=second.pk).folder == folder


def test_a_blank_folder_name_is_refused_with_a_message(client, alice, chats):
    client.force_login(alice)
    url = reverse("conversations:conversation-folder", args=[chats[0].public_id])
    response = client.post(url, {"new_folder": "x" * 101})
    assert response.status_code == 400 and "at most 100 characters" in response.content.decode()
    assert not Folder.objects.exists()


def test_deleting_a_folder_keeps_its_chats(client, alice, chats):
    folder = organizing.folder_get_or_create(owner=alice, name="Old")
    organizing.conversation_move(conversation=chats[0], folder=folder)
    client.force_login(alice)
    client.post(reverse("conversations:folder-delete", args=[folder.public_id]))
    assert not Folder.objects.exists()
    assert Conversation.objects.get(pk=chats[0].pk).folder is None


def test_another_users_chat_or_folder_cannot_be_organised(client, alice, bob, chats):
    folder = organizing.folder_get_or_create(owner=alice, name="Mine")
    bobs_folder = organizing.folder_get_or_create(owner=bob, name="Bob's")
    client.force_login(bob)
    assert client.post(reverse("conversations:conversation-pin", args=[chats[0].public_id])).status_code == 404
    url = reverse("conversations:conversation-folder", args=[chats[0].public_id])
    assert client.post(url, {"folder": str(bobs_folder.public_id)}).status_code == 404
    assert client.post(reverse("conversations:folder-delete", args=[folder.public_id])).status_code == 404
    client.force_login(alice)
    own_chat_url = reverse("conversations:conversation-folder", args=[chats[1].public_id])
    assert client.post(own_chat_url, {"folder": str(bobs_folder.public_id)}).status_code == 404
    assert Conversation.objects.filter(pinned_at__isnull=False).count() == 0
    assert Folder.objects.count() == 2 and Conversation.objects.filter(folder__isnull=False).count() == 0
    client.logout()
    assert client.post(reverse("conversations:conversation-pin", args=[chats[0].public_id])).status_code == 302


def test_archived_chats_leave_the_pinned_list_and_folders(alice, chats):
    folder = organizing.folder_get_or_create(owner=alice, name="F")
    organizing.conversation_set_pinned(conversation=chats[0], pinned=True)
    organizing.conversation_move(conversation=chats[1], folder=folder)
    for conversation in chats[:2]:
        services.conversation_set_archived(conversation=conversation, archived=True)
    page = sidebar.conversation_page(user=alice)
    assert page.pinned == [] and page.folders[0].conversations == []
    archived = sidebar.conversation_page(user=alice, archived=True)
    assert {row.conversation.title for row in archived.rows} == {"First", "Second"}
