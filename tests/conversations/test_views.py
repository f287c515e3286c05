"""Pages: anonymous, another user, htmx and plain requests; query counts pinned."""

import uuid

import pytest
from django.urls import reverse

from conversations import services
from conversations.models import Conversation, Message

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}


def detail_url(conversation) -> str:
    return reverse("conversations:conversation-detail", kwargs={"public_id": conversation.public_id})


# Anonymous users go to the login page


@pytest.mark.parametrize("method", ["get", "post"])
def test_anonymous_user_is_sent_to_login(client, conversation, method):
    for url in ["/", reverse("conversations:conversation-create"), detail_url(conversation)]:
        response = getattr(client, method)(url)
        assert response.status_code == 302 and response.url.startswith("/accounts/login/"), url


# The persona picker


def test_new_chat_page_lists_active_personas_on_enabled_models(client, alice, make_persona):
    make_persona(name="Tutor", description="Explains <b>maths</b>", slug="tutor")
    make_persona(name="Hidden", slug="hidden", is_active=False)
    disabled = make_persona("off-model", name="Disabled model", slug="disabled")
    disabled.model.enabled = False
    disabled.model.save()
    client.force_login(alice)
    page = client.get("/").content.decode()
    assert 'data-persona="tutor"' in page and "Explains &lt;b&gt;maths&lt;/b&gt;" in page
    assert 'data-persona="hidden"' not in page and 'data-persona="disabled"' not in page
    assert 'id="new-chat"' in page and 'id="conversations"' in page


def test_new_chat_page_without_personas_explains_how_to_add_one(client, alice, admin_user):
    client.force_login(alice)
    page = client.get("/").content.decode()
    assert 'id="no-personas"' in page and "An administrator needs to add a provider" in page
    client.force_login(admin_user)
    page = client.get("/").content.decode()
    assert "/admin/personas/provider/add/" in page and "OPENAI_API_KEY" in page


def test_new_chat_htmx_request_gets_only_the_picker(client, alice, persona):
    client.force_login(alice)
    page = client.get("/", **HTMX).content.decode()
    assert "persona-picker" in page and "<html" not in page and 'id="conversations"' not in page


@pytest.mark.parametrize("slug", ["nope", ""])
def test_create_with_an_unknown_or_inactive_persona_is_refused(client, alice, make_persona, slug):
    make_persona(slug="inactive", is_active=False)
    client.force_login(alice)
    for value in [slug, "inactive"]:
        response = client.post(reverse("conversations:conversation-create"), {"persona": value})
        assert response.status_code == 400
    assert not Conversation.objects.exists()


def test_create_needs_post(client, alice, persona):
    client.force_login(alice)
    assert client.get(reverse("conversations:conversation-create")).status_code == 405


# The conversation page


def test_owner_sees_the_conversation_with_page_hooks(client, alice, conversation):
    Message.objects.create(conversation=conversation, role="user", content="<script>alert(1)</script>")
    client.force_login(alice)
    page = client.get(detail_url(conversation)).content.decode()
    for hook in [
        'id="composer"',
        'name="message"',
        'id="messages"',
        'id="stop"',
        'id="new-chat"',
        'id="conversations"',
    ]:
        assert hook in page, hook
    assert 'class="message message-assistant" data-role="assistant" data-status="complete"' in page
    assert "message-body" in page
    assert 'class="flash"' not in page  # messages are bubbles, never flash messages
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert f'ws-connect="/ws/conversations/{conversation.public_id}/"' in page


def test_other_user_gets_404(client, bob, conversation):
    client.force_login(bob)
    assert client.get(detail_url(conversation)).status_code == 404
    assert client.get(detail_url(conversation), **HTMX).status_code == 404


def test_unknown_conversation_gets_404(client, alice):
    client.force_login(alice)
    url = reverse("conversations:conversation-detail", kwargs={"public_id": uuid.uuid4()})
    assert client.get(url).status_code == 404


def test_htmx_request_gets_only_the_conversation_panel(client, alice, conversation):
    client.force_login(alice)
    page = client.get(detail_url(conversation), **HTMX).content.decode()
    assert 'id="composer"' in page and "<html" not in page and 'id="sidebar"' not in page


def test_sidebar_lists_only_the_users_conversations_newest_first(client, alice, bob, persona):
    older = services.conversation_create(owner=alice, persona=persona)
    services.message_send(conversation=older, text="Older chat")
    newer = services.conversation_create(owner=alice, persona=persona)
    services.message_send(conversation=newer, text="Newer chat")
    theirs = services.conversation_create(owner=bob, persona=persona)
    services.message_send(conversation=theirs, text="Bob's secret")
    client.force_login(alice)
    page = client.get("/").content.decode()
    assert page.index("Newer chat") < page.index("Older chat")
    assert "secret" not in page


def test_conversation_page_queries_do_not_grow_with_messages(client, alice, conversation, django_assert_num_queries):
    client.force_login(alice)
    for i in range(30):
        sent = services.message_send(conversation=conversation, text=f"message {i}")
        services.reply_finish(message=sent.assistant_message, content=f"reply {i}", status="complete")
    for _ in range(20):
        services.conversation_create(owner=alice, persona=conversation.persona)
    # session, user, conversation with persona/model/provider, stale replies, messages,
    # their attachments, their versions, the context budget (greeting, latest messages, their count,
    # their attachments, custom instructions), the models offered, the quota (limits, usage), sidebar
    # (with its folders and pinned or filed conversations)
    with django_assert_num_queries(18):
        assert client.get(detail_url(conversation)).status_code == 200


def test_new_chat_page_query_count_is_constant(client, alice, make_persona, django_assert_num_queries):
    for i in range(10):
        make_persona(slug=f"persona-{i}")
    client.force_login(alice)
    # session, user, personas with models, sidebar (with its folders and pinned or filed conversations)
    with django_assert_num_queries(6):
        assert client.get("/").status_code == 200
