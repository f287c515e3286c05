"""Share links: share, share again, revoke; the shared page for another user, a signed-out visitor, htmx; continue."""

import re
from datetime import timedelta

import pytest
from django.db.models import F
from django.urls import reverse

from accounts.selectors import site_settings
from conversations import selectors, services
from conversations.models import Conversation, Message
from sharing.models import SharedConversation
from sharing.services import TOKEN_BYTES

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def conversation(alice, make_persona):
    persona = make_persona(system_prompt="SECRET-SYSTEM-PROMPT: be a pirate.")
    conversation = services.conversation_create(owner=alice, persona=persona)
    sent = services.message_send(conversation=conversation, text="What is a **monad**?")
    services.reply_finish(
        message=sent.assistant_message, content="A monoid in the category of *endofunctors*.", status="complete"
    )
    services.conversation_rename(conversation=conversation, title="Monads explained")
    conversation.refresh_from_db()
    return conversation


def manage_url(conversation) -> str:
    return reverse("sharing:share-manage", kwargs={"public_id": conversation.public_id})


def share(client, conversation, **data) -> SharedConversation:
    response = client.post(manage_url(conversation), {"action": "share", **data})
    assert response.status_code == 302
    return SharedConversation.objects.get(conversation=conversation)


def test_sharing_makes_an_unguessable_link_with_at_least_128_random_bits(client, alice, conversation):
    client.force_login(alice)
    first = share(client, conversation)
    client.post(manage_url(conversation), {"action": "revoke"})
    second = share(client, conversation)
    assert TOKEN_BYTES * 8 >= 128
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", first.token)  # 32 bytes, URL-safe base64 without padding
    assert first.token != second.token
    page = client.get(manage_url(conversation)).content.decode()
    assert second.get_absolute_url() in page


def test_another_user_reads_the_shared_messages_without_system_prompt_or_owner_name(client, alice, bob, conversation):
    client.force_login(alice)
    link = share(client, conversation).get_absolute_url()
    client.force_login(bob)

    response = client.get(link)

    page = response.content.decode()
    assert response.status_code == 200
    assert response["X-Robots-Tag"] == "noindex, nofollow"
    assert "Monads explained" in page and "What is a **monad**?" in page
    assert "<em>endofunctors</em>" in page  # the stored, sanitized HTML
    assert "SECRET-SYSTEM-PROMPT" not in page
    assert "alice" not in page
    assert "Hello! How can I help?" in page  # the greeting is a message of the chat


def test_the_owner_may_choose_to_show_their_name(client, alice, bob, conversation):
    client.force_login(alice)
    link = share(client, conversation, show_owner="on").get_absolute_url()
    client.force_login(bob)
    assert "Shared by alice" in client.get(link).content.decode()


def test_messages_after_sharing_stay_private_until_shared_again(client, alice, bob, conversation):
    client.force_login(alice)
    link = share(client, conversation).get_absolute_url()
    later = services.message_send(conversation=conversation, text="A later question, not shared")
    services.reply_finish(message=later.assistant_message, content="A later answer", status="complete")
    client.force_login(bob)
    assert "A later question" not in client.get(link).content.decode()

    client.force_login(alice)
    again = share(client, conversation)
    client.force_login(bob)

    assert again.get_absolute_url() == link  # sharing again keeps the link
    assert "A later question, not shared" in client.get(link).content.decode()


def test_a_reply_regenerated_after_sharing_does_not_replace_the_shared_one(client, alice, bob, conversation):
    client.force_login(alice)
    link = share(client, conversation).get_absolute_url()
    regenerated = services.reply_regenerate(conversation=conversation)
    services.reply_finish(message=regenerated, content="A brand new answer", status="complete")
    client.force_login(bob)
    page = client.get(link).content.decode()
    assert "endofunctors" in page and "A brand new answer" not in page


def test_a_streaming_reply_is_not_shared(client, alice, bob, conversation):
    services.message_send(conversation=conversation, text="Still answering this")
    client.force_login(alice)
    shared = share(client, conversation)
    streaming = Message.objects.get(conversation=conversation, status=Message.Status.STREAMING)
    assert streaming.pk not in shared.message_ids


def test_a_revoked_link_answers_404(client, alice, bob, conversation):
    client.force_login(alice)
    link = share(client, conversation).get_absolute_url()
    response = client.post(manage_url(conversation), {"action": "revoke"})
    assert response.status_code == 302
    client.force_login(bob)
    assert client.get(link).status_code == 404
    assert client.get(reverse("sharing:shared-detail", args=["A" * 43])).status_code == 404


def test_signed_out_visitors_sign_in_first_unless_the_admin_allows_them(client, alice, conversation):
    client.force_login(alice)
    link = share(client, conversation).get_absolute_url()
    client.logout()

    response = client.get(link)
    assert response.status_code == 302 and response.url.startswith("/accounts/login/")

    settings_row = site_settings()
    settings_row.shares_visible_to_anonymous = True
    settings_row.save()
    response = client.get(link)
    assert response.status_code == 200 and "What is a **monad**?" in response.content.decode()
    assert "Sign in to continue this chat" in response.content.decode()


def test_only_the_owner_manages_the_link(client, alice, bob, conversation):
    client.force_login(bob)
    assert client.get(manage_url(conversation)).status_code == 404
    assert client.post(manage_url(conversation), {"action": "share"}).status_code == 404
    assert not SharedConversation.objects.exists()
    client.logout()
    assert client.get(manage_url(conversation)).status_code == 302


def test_the_share_panel_is_a_fragment_for_htmx(client, alice, conversation):
    client.force_login(alice)
    response = client.post(manage_url(conversation), {"action": "share"}, **HTMX)
    page = response.content.decode()
    assert response.status_code == 200 and 'id="share-panel"' in page and "<html" not in page
    assert SharedConversation.objects.get().get_absolute_url() in page
    assert client.post(manage_url(conversation), {"action": "bogus"}).status_code == 400


def test_continue_copies_the_shared_messages_into_the_visitors_own_conversation(client, alice, bob, conversation):
    client.force_login(alice)
    shared = share(client, conversation)
    client.force_login(bob)

    response = client.post(reverse("sharing:shared-continue", args=[shared.token]))

    copy = Conversation.objects.get(owner=bob)
    assert response.status_code == 302 and response.url == copy.get_absolute_url()
    assert copy.persona_id == conversation.persona_id and copy.title == "Monads explained"
    copied = list(Message.objects.filter(conversation=copy).order_by("created_at", "id"))
    assert [m.content for m in copied] == [
        m.content for m in Message.objects.filter(pk__in=shared.message_ids).order_by("created_at", "id")
    ]
    assert [m.parent_id for m in copied] == [None, *[m.pk for m in copied[:-1]]]
    assert client.get(copy.get_absolute_url()).status_code == 200
    assert Message.objects.filter(conversation=conversation).count() == 3  # the original is untouched


def test_a_continued_copy_counts_no_usage_for_the_visitor(client, alice, bob, conversation):
    Message.objects.filter(conversation=conversation, role=Message.Role.ASSISTANT).update(
        prompt_tokens=120, completion_tokens=80, ttft_ms=300
    )
    # Asked an hour ago: a copy made now must not look like sends of the last minute.
    Message.objects.filter(conversation=conversation).update(created_at=F("created_at") - timedelta(hours=1))
    client.force_login(alice)
    shared = share(client, conversation)
    client.force_login(bob)

    client.post(reverse("sharing:shared-continue", args=[shared.token]))

    usage = selectors.user_usage(user=bob)
    assert (usage.sends_last_minute, usage.tokens_today) == (0, 0)
    copied = Message.objects.filter(conversation__owner=bob)
    assert not copied.filter(prompt_tokens__isnull=False).exists() and not copied.filter(ttft_ms__isnull=False).exists()
    originals = Message.objects.filter(pk__in=shared.message_ids).order_by("created_at", "id")
    assert [m.created_at for m in copied.order_by("created_at", "id")] == [m.created_at for m in originals]


def test_continue_asks_a_signed_out_visitor_to_sign_in(client, alice, conversation):
    client.force_login(alice)
    shared = share(client, conversation)
    client.logout()
    response = client.post(reverse("sharing:shared-continue", args=[shared.token]))
    assert response.status_code == 302 and response.url.startswith("/accounts/login/")
    assert Conversation.objects.count() == 1


def test_deleting_the_conversation_revokes_its_link(client, alice, bob, conversation):
    client.force_login(alice)
    link = share(client, conversation).get_absolute_url()
    services.conversation_delete(conversation=conversation)
    client.force_login(bob)
    assert client.get(link).status_code == 404


def test_a_signed_out_visitor_cannot_tell_a_live_link_from_a_dead_one(client, alice, conversation):
    client.force_login(alice)
    link = share(client, conversation).get_absolute_url()
    client.logout()
    live, dead = client.get(link), client.get(reverse("sharing:shared-detail", args=["B" * 43]))
    assert (live.status_code, dead.status_code) == (302, 302)


@pytest.fixture
def private_chat(alice, make_persona):
    """Alice's chat with her own private persona, shared."""
    persona = make_persona(name="Alices Secret Coach", avatar="🦉", owner=alice, system_prompt="PRIVATE-PROMPT")
    conversation = services.conversation_create(owner=alice, persona=persona)
    sent = services.message_send(conversation=conversation, text="Coach me")
    services.reply_finish(message=sent.assistant_message, content="Breathe.", status="complete")
    return conversation


def test_continuing_a_chat_with_someone_elses_private_persona_gives_a_copy_without_it(
    client, alice, bob, private_chat, persona
):
    client.force_login(alice)
    shared = share(client, private_chat)
    client.force_login(bob)

    client.post(reverse("sharing:shared-continue", args=[shared.token]))

    copy = Conversation.objects.get(owner=bob)
    assert copy.persona is None
    page = client.get(copy.get_absolute_url()).content.decode()
    assert 'id="persona-choice"' in page  # bob chooses one of his personas to go on
    assert persona.name in page and "Alices Secret Coach" not in page and "PRIVATE-PROMPT" not in page


def test_continuing_keeps_a_persona_the_visitor_may_use(client, alice, bob, private_chat):
    private_chat.persona.is_published = True
    private_chat.persona.save()
    client.force_login(alice)
    shared = share(client, private_chat)
    client.force_login(bob)
    client.post(reverse("sharing:shared-continue", args=[shared.token]))
    assert Conversation.objects.get(owner=bob).persona_id == private_chat.persona_id
    client.force_login(alice)  # the owner continuing her own shared chat keeps her private persona
    client.post(reverse("sharing:shared-continue", args=[shared.token]))
    assert Conversation.objects.filter(owner=alice).exclude(pk=private_chat.pk).get().persona_id == (
        private_chat.persona_id
    )


def test_the_shared_page_shows_a_private_personas_name_and_avatar_only_to_its_owner(
    client, alice, bob, private_chat, settings
):
    client.force_login(alice)
    link = share(client, private_chat).get_absolute_url()
    assert "Alices Secret Coach" in client.get(link).content.decode()

    client.force_login(bob)
    page = client.get(link).content.decode()

    assert "Alices Secret Coach" not in page and "🦉" not in page and "PRIVATE-PROMPT" not in page
    assert "A private persona" in page and "Breathe." in page
    private_chat.persona.is_published = True
    private_chat.persona.save()
    assert "Alices Secret Coach" in client.get(link).content.decode()
