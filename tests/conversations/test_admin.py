"""The conversations admin shows metadata only, unless CHAT_ADMIN_SHOWS_MESSAGE_TEXT lets staff read the text."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from conversations.models import Conversation
from tests.conversations.history import make_conversation

pytestmark = pytest.mark.django_db

TITLE = "Secret plans for the surprise party"
# Words of the messages make_conversation writes: a question, a hidden earlier
# version of the reply, the reply, a follow-up and a failed reply.
MESSAGE_WORDS = ["Lisbon", "An earlier answer", "Alfama", "With kids", "pastéis de nata"]


@pytest.fixture
def conversation(alice, persona):
    return make_conversation(alice, persona, title=TITLE)


def _admin_pages(admin_client, conversation: Conversation) -> dict[str, str]:
    urls = {
        "changelist": reverse("admin:conversations_conversation_changelist"),
        "change": reverse("admin:conversations_conversation_change", args=[conversation.pk]),
        "history": reverse("admin:conversations_conversation_history", args=[conversation.pk]),
    }
    pages = {}
    for name, url in urls.items():
        response = admin_client.get(url)
        assert response.status_code == 200, name
        pages[name] = response.content.decode()
    return pages


@pytest.mark.parametrize("page", ["changelist", "change", "history"])
def test_admin_page_hides_title_and_message_text_by_default(admin_client, conversation, page):
    html = _admin_pages(admin_client, conversation)[page]

    assert TITLE not in html and "surprise party" not in html
    for words in MESSAGE_WORDS:
        assert words not in html
    assert str(conversation.public_id) in html


def test_changelist_shows_metadata(admin_client, conversation, alice):
    html = _admin_pages(admin_client, conversation)["changelist"]

    assert "alice" in html
    assert conversation.persona.name in html
    assert '<td class="field-message_count">5</td>' in html


def test_change_page_shows_metadata_read_only(admin_client, conversation):
    response = admin_client.get(reverse("admin:conversations_conversation_change", args=[conversation.pk]))

    html = response.content.decode()
    assert "alice" in html and conversation.persona.name in html
    assert 'name="_save"' not in html and 'name="title"' not in html


def test_searching_by_title_finds_nothing_by_default(admin_client, conversation):
    response = admin_client.get(reverse("admin:conversations_conversation_changelist"), {"q": "surprise"})

    assert str(conversation.public_id) not in response.content.decode()


def test_searching_by_owner_finds_the_conversation(admin_client, conversation):
    response = admin_client.get(reverse("admin:conversations_conversation_changelist"), {"q": "alice"})

    assert str(conversation.public_id) in response.content.decode()


@pytest.mark.parametrize("page", ["changelist", "change"])
def test_admin_page_shows_title_when_the_setting_allows_it(admin_client, conversation, settings, page):
    settings.CHAT_ADMIN_SHOWS_MESSAGE_TEXT = True

    html = _admin_pages(admin_client, conversation)[page]

    assert TITLE in html


def test_change_page_shows_messages_when_the_setting_allows_it(admin_client, conversation, settings):
    settings.CHAT_ADMIN_SHOWS_MESSAGE_TEXT = True

    html = _admin_pages(admin_client, conversation)["change"]

    for words in MESSAGE_WORDS:
        assert words in html


def test_searching_by_title_works_when_the_setting_allows_it(admin_client, conversation, settings):
    settings.CHAT_ADMIN_SHOWS_MESSAGE_TEXT = True

    response = admin_client.get(reverse("admin:conversations_conversation_changelist"), {"q": "surprise"})

    assert str(conversation.public_id) in response.content.decode()


def test_conversations_cannot_be_added_changed_or_deleted(admin_client, conversation):
    add = admin_client.get(reverse("admin:conversations_conversation_add"))
    change = admin_client.post(
        reverse("admin:conversations_conversation_change", args=[conversation.pk]),
        {"title": "Hacked", "archived": "on"},
    )
    delete = admin_client.post(
        reverse("admin:conversations_conversation_delete", args=[conversation.pk]), {"post": "yes"}
    )

    assert add.status_code == 403 and change.status_code == 403 and delete.status_code == 403
    conversation.refresh_from_db()
    assert conversation.title == TITLE and not conversation.archived


def test_changelist_does_not_query_per_row(admin_client, alice, bob, persona):
    make_conversation(alice, persona)
    url = reverse("admin:conversations_conversation_changelist")
    with CaptureQueriesContext(connection) as one:
        admin_client.get(url)
    for owner in (alice, bob, bob):
        make_conversation(owner, persona)

    with CaptureQueriesContext(connection) as four:
        admin_client.get(url)

    assert len(four) == len(one)


def test_staff_without_permission_cannot_see_conversations(client, django_user_model, conversation):
    staff = django_user_model.objects.create_user("staff", "staff@example.com", "pw", is_staff=True)
    client.force_login(staff)

    response = client.get(reverse("admin:conversations_conversation_changelist"))

    assert response.status_code == 403
