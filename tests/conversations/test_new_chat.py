"""A new chat is saved when its first message is sent, not when a persona is picked; a gone persona can be replaced."""

import pytest
from asgiref.sync import sync_to_async
from django.urls import reverse
from django.utils import timezone

from accounts.models import UsageLimit
from conversations import services
from conversations.models import Conversation, Message
from tests.sockets import replies_settled

HTMX = {"HX-Request": "true"}
CREATE = "/c/"


@pytest.mark.django_db
def test_picking_a_persona_shows_a_new_chat_and_saves_nothing(client, alice, persona):
    client.force_login(alice)
    page = client.get("/", {"persona": persona.slug}).content.decode()
    assert not Conversation.objects.exists()
    assert persona.greeting in page and 'id="composer"' in page and f'value="{persona.slug}"' in page
    assert f'hx-post="{CREATE}"' in page and "ws-connect" not in page
    assert "The greeting is in context, about" in page
    assert "<title>New chat · Chat</title>" in page


@pytest.mark.django_db
def test_a_new_chat_without_greeting_reads_naturally_before_the_first_message(client, alice, make_persona):
    persona = make_persona(greeting="")
    client.force_login(alice)
    page = client.get("/", {"persona": persona.slug}).content.decode()
    assert "No messages in context yet: about" in page and "0 of 0" not in page


@pytest.mark.django_db
@pytest.mark.parametrize("slug", ["nope", "inactive"])
def test_picking_an_unknown_or_inactive_persona_shows_the_picker_with_the_reason(client, alice, make_persona, slug):
    make_persona(slug="inactive", is_active=False)
    client.force_login(alice)
    response = client.get("/", {"persona": slug})
    assert response.status_code == 400 and "That persona is not available" in response.content.decode()


@pytest.mark.django_db(transaction=True)
async def test_the_first_message_creates_the_chat_and_its_reply_over_htmx(async_client, alice, make_persona):
    persona = await sync_to_async(make_persona)("long:3")
    await async_client.aforce_login(alice)
    response = await async_client.post(
        CREATE, {"persona": persona.slug, "message": "first words", "idempotency_key": "k-1"}, headers=HTMX
    )
    conversation = await Conversation.objects.aget(owner=alice)
    assert response.status_code == 200
    assert response["HX-Retarget"] == "#main" and response["HX-Push-Url"] == conversation.get_absolute_url()
    body = response.content.decode()
    assert f'ws-connect="/ws/conversations/{conversation.public_id}/"' in body
    assert 'id="conversations" class="conversation-list" aria-label="Conversations" hx-swap-oob="true"' in body
    await replies_settled()
    roles = [(m.role, m.status) async for m in Message.objects.filter(conversation=conversation)]
    assert roles == [("assistant", "complete"), ("user", "complete"), ("assistant", "complete")]
    assert await Message.objects.filter(content="w0 w1 w2 ").aexists()


@pytest.mark.django_db(transaction=True)
async def test_a_double_submit_of_the_first_message_makes_one_chat(async_client, alice, make_persona):
    persona = await sync_to_async(make_persona)("long:2")
    await async_client.aforce_login(alice)
    fields = {"persona": persona.slug, "message": "once", "idempotency_key": "k-2"}
    first = await async_client.post(CREATE, fields, headers=HTMX)
    second = await async_client.post(CREATE, fields, headers=HTMX)
    await replies_settled()
    assert await Conversation.objects.acount() == 1
    assert first["HX-Push-Url"] == second["HX-Push-Url"]


@pytest.mark.django_db(transaction=True)
async def test_a_refused_first_message_saves_no_chat_and_answers_the_reason(async_client, alice, make_persona):
    persona = await sync_to_async(make_persona)("long:2")
    await UsageLimit.objects.acreate(user=alice, daily_tokens=1)
    await sync_to_async(services.usage_add)(user_id=alice.pk, started_at=timezone.now(), tokens=2)
    await async_client.aforce_login(alice)
    fields = {"persona": persona.slug, "message": "refuse me", "idempotency_key": "k-3"}
    response = await async_client.post(CREATE, fields, headers=HTMX)
    body = response.content.decode()
    assert response.status_code == 200 and response["HX-Reswap"] == "none"
    assert 'data-outcome="refused" data-key="k-3"' in body and "You have used today’s 1 token" in body
    assert not await Conversation.objects.aexists() and not await Message.objects.aexists()

    plain = await async_client.post(CREATE, fields)
    page = plain.content.decode()
    assert plain.status_code == 400 and ">refuse me</textarea>" in page and "You have used today’s 1 token" in page
    assert not await Conversation.objects.aexists()


@pytest.mark.django_db
def test_a_chat_whose_persona_is_gone_offers_the_active_personas(client, alice, make_persona, persona):
    other = make_persona(name="Tutor", slug="tutor")
    conversation = services.conversation_create(owner=alice, persona=persona)
    persona.delete()
    client.force_login(alice)
    page = client.get(conversation.get_absolute_url()).content.decode()
    assert "Deleted persona" in page and 'id="persona-choice"' in page
    assert f'<option value="{other.slug}">Tutor' in page


@pytest.mark.django_db
def test_choosing_a_persona_continues_the_chat_with_it(client, alice, make_persona):
    gone = make_persona(slug="gone")
    tutor = make_persona(name="Tutor", slug="tutor")
    conversation = services.conversation_create(owner=alice, persona=gone)
    gone.is_active = False
    gone.save()
    client.force_login(alice)
    url = reverse("conversations:conversation-persona", kwargs={"public_id": conversation.public_id})
    response = client.post(url, {"persona": "tutor"}, headers=HTMX)
    body = response.content.decode()
    assert response.status_code == 200 and 'id="persona-choice" hx-swap-oob="delete"' in body
    assert 'id="chat-persona" class="chat-persona" hx-swap-oob="true"' in body and "Tutor" in body
    conversation.refresh_from_db()
    assert conversation.persona == tutor
    page = client.get(conversation.get_absolute_url()).content.decode()
    assert 'id="persona-choice"' not in page


@pytest.mark.django_db
def test_choosing_an_inactive_persona_is_refused(client, alice, make_persona):
    gone = make_persona(slug="gone", is_active=False)
    conversation = services.conversation_create(owner=alice, persona=gone)
    client.force_login(alice)
    url = reverse("conversations:conversation-persona", kwargs={"public_id": conversation.public_id})
    response = client.post(url, {"persona": "gone"})
    assert response.status_code == 400 and "That persona is not available" in response.content.decode()
    conversation.refresh_from_db()
    assert conversation.persona == gone


@pytest.mark.django_db
def test_the_tab_title_is_the_conversation_title_and_the_site_name(client, alice, persona, settings):
    conversation = services.conversation_create(owner=alice, persona=persona)
    services.conversation_rename(conversation=conversation, title="Trip to Kyoto")
    client.force_login(alice)
    assert "<title>Trip to Kyoto · Chat</title>" in client.get(conversation.get_absolute_url()).content.decode()
    settings.CHAT_SITE_NAME = "Class 3B"
    page = client.get(conversation.get_absolute_url()).content.decode()
    assert "<title>Trip to Kyoto · Class 3B</title>" in page and 'data-site-name="Class 3B"' in page


@pytest.mark.django_db
def test_choosing_a_persona_needs_a_signed_in_owner_and_answers_a_plain_post_with_a_redirect(
    client, alice, make_persona
):
    gone = make_persona(slug="gone", is_active=False)
    make_persona(slug="tutor")
    conversation = services.conversation_create(owner=alice, persona=gone)
    url = reverse("conversations:conversation-persona", kwargs={"public_id": conversation.public_id})
    response = client.post(url, {"persona": "tutor"})
    assert response.status_code == 302 and response.url.startswith("/accounts/login/")
    client.force_login(alice)
    response = client.post(url, {"persona": "tutor"})
    assert response.status_code == 302 and response.url == conversation.get_absolute_url()
    assert client.get(url).status_code == 405


@pytest.mark.django_db
def test_a_first_message_to_a_persona_gone_meanwhile_is_refused_with_the_reason(client, alice, make_persona):
    make_persona(slug="gone", is_active=False)
    client.force_login(alice)
    fields = {"persona": "gone", "message": "still here?", "idempotency_key": "k-4"}
    response = client.post(CREATE, fields, headers=HTMX)
    body = response.content.decode()
    assert response.status_code == 200 and response["HX-Reswap"] == "none"
    assert 'data-outcome="refused" data-key="k-4"' in body and "That persona is not available" in body
    assert not Conversation.objects.exists()
