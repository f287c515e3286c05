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


def test_deleting_a_folder_that_holds_chats_from_the_sidebar_keeps_them_in_the_dated_list(client, alice, chats):
    folder = organizing.folder_get_or_create(owner=alice, name="Old")
    for conversation in chats[:2]:
        organizing.conversation_move(conversation=conversation, folder=folder)
    client.force_login(alice)
    page = nav(client.get("/").content.decode())
    delete_url = reverse("conversations:folder-delete", args=[folder.public_id])
    assert f'hx-post="{delete_url}"' in page  # offered for a folder that is not empty

    response = client.post(delete_url, **HTMX)

    assert response.status_code == 200 and response["HX-Refresh"] == "true"
    assert not Folder.objects.exists() and Conversation.objects.count() == 3
    assert sorted(titles_in(nav(client.get("/").content.decode()))) == ["First", "Second", "Third"]


def test_renaming_a_folder_in_the_sidebar(client, alice, chats):
    folder = organizing.folder_get_or_create(owner=alice, name="Old name")
    organizing.conversation_move(conversation=chats[0], folder=folder)
    client.force_login(alice)
    url = reverse("conversations:folder-rename", args=[folder.public_id])
    form = client.get(url, {"place": "sidebar"}, **HTMX).content.decode()
    assert 'name="name" value="Old name"' in form and "<html" not in form

    response = client.post(url, {"name": "  New   name ", "place": "sidebar"}, **HTMX)

    assert response.status_code == 200 and response["HX-Retarget"] == f"#folder-{folder.public_id}"
    group = response.content.decode()
    assert "New name" in group and titles_in(group) == ["First"]
    assert Folder.objects.get(pk=folder.pk).name == "New name"
    cancelled = client.get(url, {"place": "sidebar", "cancel": "1"}, **HTMX)
    assert cancelled["HX-Reswap"] == "outerHTML" and 'name="name"' not in cancelled.content.decode()


def test_a_refused_folder_name_shows_the_form_again_and_changes_nothing(client, alice):
    folder = organizing.folder_get_or_create(owner=alice, name="Work")
    organizing.folder_get_or_create(owner=alice, name="Home")
    client.force_login(alice)
    url = reverse("conversations:folder-rename", args=[folder.public_id])

    taken = client.post(url, {"name": "Home", "place": "sidebar"}, **HTMX)
    blank = client.post(url, {"name": "   "})

    assert taken.status_code == 200 and "already have a folder called" in taken.content.decode()
    assert blank.status_code == 400 and "Give the folder a name." in blank.content.decode()
    assert Folder.objects.get(pk=folder.pk).name == "Work"
    organizing.folder_rename(folder=folder, name="work")  # another case is another name
    assert Folder.objects.get(pk=folder.pk).name == "work"


def test_renaming_and_deleting_a_folder_without_javascript(client, alice, chats):
    folder = organizing.folder_get_or_create(owner=alice, name="Plain")
    organizing.conversation_move(conversation=chats[0], folder=folder)
    client.force_login(alice)
    url = reverse("conversations:folder-rename", args=[folder.public_id])
    assert "<html" in client.get(url).content.decode()

    response = client.post(url, {"name": "Plainer"})

    folder_url = reverse("conversations:folder-detail", args=[folder.public_id])
    assert response.status_code == 302 and response.url == folder_url
    page = client.get(folder_url).content.decode()
    assert "Plainer" in page and "First" in page
    assert f'action="{reverse("conversations:folder-delete", args=[folder.public_id])}"' in page
    assert client.post(reverse("conversations:folder-delete", args=[folder.public_id])).status_code == 302
    assert Conversation.objects.get(pk=chats[0].pk).folder is None


def test_another_users_folder_cannot_be_renamed_or_read(client, alice, bob, chats):
    folder = organizing.folder_get_or_create(owner=alice, name="Alice only")
    organizing.conversation_move(conversation=chats[0], folder=folder)
    client.force_login(bob)
    assert (
        client.post(reverse("conversations:folder-rename", args=[folder.public_id]), {"name": "x"}).status_code == 404
    )
    assert client.get(reverse("conversations:folder-detail", args=[folder.public_id]), **HTMX).status_code == 404
    assert Folder.objects.get(pk=folder.pk).name == "Alice only"


def test_a_folder_shows_its_newest_chats_and_the_rest_page_by_page(client, alice, persona):
    folder = organizing.folder_get_or_create(owner=alice, name="Big")
    other = organizing.folder_get_or_create(owner=alice, name="Small")
    made = []
    for number in range(sidebar.GROUP_PAGE_SIZE * 2 + 5):
        conversation = services.conversation_create(owner=alice, persona=persona)
        services.conversation_rename(conversation=conversation, title=f"Chat {number}")
        organizing.conversation_move(conversation=conversation, folder=folder)
        made.append(conversation)
    organizing.conversation_set_pinned(conversation=made[-1], pinned=True)  # pinned: leads, not in the folder
    organizing.conversation_move(conversation=services.conversation_create(owner=alice, persona=persona), folder=other)
    newest_first = [c.title for c in Conversation.objects.filter(folder=folder, pinned_at=None)]

    page = sidebar.conversation_page(user=alice)

    big, small = page.folders
    assert [c.title for c in page.pinned] == [made[-1].title]
    assert [c.title for c in big.conversations] == newest_first[: sidebar.GROUP_PAGE_SIZE] and big.next_cursor
    assert len(small.conversations) == 1 and small.next_cursor == ""
    client.force_login(alice)
    shown = titles_in(client.get("/").content.decode())
    assert newest_first[sidebar.GROUP_PAGE_SIZE] not in shown
    url = reverse("conversations:folder-detail", args=[folder.public_id])
    seen = [c.title for c in big.conversations]
    cursor = big.next_cursor
    while cursor:
        fragment = client.get(url, {"before": cursor}, **HTMX).content.decode()
        seen += titles_in(fragment)
        found = re.search(r'hx-get="[^"?]*\?before=([^"]+)"', fragment)
        cursor = found[1] if found else ""
    assert seen == newest_first
    assert client.get(url, {"before": "nonsense"}).status_code == 400


def test_the_pinned_list_shows_the_latest_pins_and_the_rest_page_by_page(client, alice, persona):
    made = []
    for number in range(sidebar.GROUP_PAGE_SIZE + 3):
        conversation = services.conversation_create(owner=alice, persona=persona)
        services.conversation_rename(conversation=conversation, title=f"Pin {number}")
        made.append(conversation)
    Conversation.objects.filter(pk__in=[c.pk for c in made]).update(pinned_at=made[0].updated_at)  # one pin time
    newest_pins_first = [c.title for c in Conversation.objects.filter(owner=alice).order_by("-public_id")]

    page = sidebar.conversation_page(user=alice)

    assert [c.title for c in page.pinned] == newest_pins_first[: sidebar.GROUP_PAGE_SIZE] and page.pinned_next_cursor
    client.force_login(alice)
    url = reverse("conversations:pinned-list")
    assert f'href="{url}?before={page.pinned_next_cursor}"' in client.get("/").content.decode()
    rest = client.get(url, {"before": page.pinned_next_cursor}, **HTMX).content.decode()
    assert titles_in(rest) == newest_pins_first[sidebar.GROUP_PAGE_SIZE :] and "Show more" not in rest
    assert (
        titles_in(client.get(url).content.decode())[: sidebar.GROUP_PAGE_SIZE]
        == newest_pins_first[: sidebar.GROUP_PAGE_SIZE]
    )
