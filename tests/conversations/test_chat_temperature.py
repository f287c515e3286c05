"""A chat's own temperature, set next to its model: sent upstream instead of the persona's; empty goes back to it."""

import pytest
from django.core.exceptions import ValidationError

from conversations import services, upstream

pytestmark = pytest.mark.django_db


def _request_temperature(conversation):
    sent = services.message_send(conversation=conversation, text="question")
    return upstream.reply_job_build(conversation=conversation, message=sent.assistant_message).request.temperature


def test_the_chats_temperature_replaces_the_personas_and_empty_goes_back_to_it(alice, make_persona):
    conversation = services.conversation_create(owner=alice, persona=make_persona(temperature=1.2))
    assert _request_temperature(conversation) == 1.2

    services.conversation_set_temperature(conversation=conversation, temperature="0")
    assert _request_temperature(conversation) == 0.0

    services.conversation_set_temperature(conversation=conversation, temperature="")
    assert conversation.temperature is None
    assert _request_temperature(conversation) == 1.2


@pytest.mark.parametrize("value", ["2.5", "-0.1", "warm", "nan"])
def test_a_temperature_outside_0_to_2_is_refused(conversation, value):
    with pytest.raises(ValidationError, match="from 0 to 2"):
        services.conversation_set_temperature(conversation=conversation, temperature=value)


def test_the_picker_sets_the_temperature_for_its_owner_only(client, alice, bob, conversation):
    url = f"/c/{conversation.public_id}/model/"
    client.force_login(bob)
    assert client.post(url, {"temperature": "0.7"}).status_code == 404
    client.force_login(alice)

    response = client.post(url, {"temperature": "0.7"}, headers={"HX-Request": "true"})

    assert response.status_code == 200
    assert 'name="temperature"' in response.text and 'value="0.7"' in response.text
    conversation.refresh_from_db()
    assert conversation.temperature == 0.7
    refused = client.post(url, {"temperature": "3"})
    assert refused.status_code == 400 and "from 0 to 2" in refused.text
    conversation.refresh_from_db()
    assert conversation.temperature == 0.7


def test_a_refused_model_leaves_the_temperature_posted_with_it_unchanged(client, alice, conversation):
    client.force_login(alice)

    response = client.post(f"/c/{conversation.public_id}/model/", {"temperature": "1.5", "model": "nope"})

    assert response.status_code == 400
    conversation.refresh_from_db()
    assert conversation.temperature is None


def test_the_chat_page_shows_the_personas_temperature_as_the_pickers_placeholder(client, alice, make_persona):
    conversation = services.conversation_create(owner=alice, persona=make_persona(temperature=1.2))
    client.force_login(alice)

    page = client.get(conversation.get_absolute_url()).text

    assert 'name="temperature"' in page and 'placeholder="1.2"' in page
