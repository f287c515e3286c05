"""What the model is sent: images as image_url parts, documents inside delimiters, the user's custom
instructions in the system message, the model the chat was switched to; and what is refused before
anything is saved."""

import base64

import pytest
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile

from accounts.services import custom_instructions_set
from attachments import selectors as attachment_selectors
from attachments import services as attachment_services
from attachments.models import Attachment
from conversations import services, upstream
from conversations.models import Message
from personas.models import ChatModel
from tests.attachments import files

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path


def _upload(user, name: str, data: bytes) -> str:
    return str(attachment_services.attachment_upload(owner=user, upload=SimpleUploadedFile(name, data)).public_id)


def _send(user, conversation, text: str, attachments=()):
    return services.reply_request(
        user=user, public_id=conversation.public_id, action="send", text=text, attachments=list(attachments)
    )


def test_an_image_goes_to_a_vision_model_as_an_image_url_part_with_a_data_url(alice, conversation):
    ChatModel.objects.filter(pk=conversation.persona.model_id).update(supports_images=True)
    image = _upload(alice, "cat.png", files.png_bytes(40, 30))

    job = _send(alice, conversation, "What is this?", [image]).job

    content = job.request.messages[-1]["content"]
    assert content[0] == {"type": "text", "text": "What is this?"}
    assert content[1]["type"] == "image_url"
    url = content[1]["image_url"]["url"]
    assert url.startswith("data:image/png;base64,")
    assert base64.b64decode(url.split(",", 1)[1]).startswith(b"\x89PNG")
    assert Attachment.objects.get().message.content == "What is this?"


def test_a_send_with_files_hands_its_request_over_only_once_they_are_attached(alice, conversation):
    """The early request (`reply_request`'s `on_request`) is for sends without files: theirs is built after."""
    handed = []
    document = _upload(alice, "notes.txt", b"The notes.")

    job = services.reply_request(
        user=alice,
        public_id=conversation.public_id,
        action="send",
        text="Read this",
        attachments=[document],
        on_request=lambda config, request: handed.append(request),
    ).job

    assert handed == [] and "The notes." in job.request.messages[-1]["content"]


def test_an_image_for_a_model_without_vision_is_refused_and_nothing_is_saved(alice, conversation):
    image = _upload(alice, "cat.png", files.png_bytes())
    before = Message.objects.count()

    with pytest.raises(ValidationError, match="does not accept images"):
        _send(alice, conversation, "What is this?", [image])

    assert Message.objects.count() == before
    assert Attachment.objects.get().message is None  # Still in the composer, to send elsewhere.


def test_a_document_is_sent_as_text_inside_delimiters(alice, conversation):
    pdf = _upload(alice, 'report "final".pdf', files.pdf_bytes(["Quokkas live on Rottnest Island."]))

    job = _send(alice, conversation, "Summarise", [pdf]).job

    content = job.request.messages[-1]["content"]
    assert content.startswith("Summarise\n\n<document name=\"report 'final'.pdf\">\n")
    assert "Quokkas live on Rottnest Island." in content
    assert content.endswith("\n</document>")


def test_a_document_too_large_for_the_context_window_is_refused_and_the_person_is_told(alice, make_persona):
    persona = make_persona("small-window")
    ChatModel.objects.filter(pk=persona.model_id).update(context_window=2000)
    conversation = services.conversation_create(owner=alice, persona=persona)
    doc = _upload(alice, "long.txt", ("many words here " * 2000).encode())
    before = Message.objects.count()

    with pytest.raises(ValidationError, match="remove a document") as refused:
        _send(alice, conversation, "Read this", [doc])

    assert "files are about" in refused.value.messages[0]
    assert Message.objects.count() == before
    assert Attachment.objects.get().message is None


def test_another_users_upload_cannot_be_sent(alice, bob, conversation):
    bobs = _upload(bob, "bob.txt", b"bob's secret")

    with pytest.raises(ValidationError, match="attach it again"):
        _send(alice, conversation, "Read this", [bobs])

    assert Attachment.objects.get().message is None


def test_custom_instructions_follow_the_system_prompt_and_count_in_the_budget(alice, conversation):
    before = upstream.context_budget(conversation=conversation).tokens
    custom_instructions_set(user=alice, about_me="I teach biology.", reply_style="Answer in French.")

    job = _send(alice, conversation, "Hello").job

    system = job.request.messages[0]
    assert system["role"] == "system"
    assert system["content"].startswith("Be brief.\n\n")
    assert "I teach biology." in system["content"] and "Answer in French." in system["content"]
    conversation.refresh_from_db()
    custom_instructions_set(user=alice, about_me="", reply_style="")
    cleared = upstream.context_budget(conversation=conversation).tokens
    custom_instructions_set(user=alice, about_me="I teach biology.", reply_style="Answer in French.")
    assert upstream.context_budget(conversation=conversation).tokens > cleared
    assert before < upstream.context_budget(conversation=conversation).tokens


def test_switching_model_changes_the_request_and_the_recorded_model(alice, conversation, provider):
    other = ChatModel.objects.create(provider=provider, model_id="fake-other", display_name="Other", enabled=True)
    conversation.persona.other_models.add(other)

    services.conversation_set_model(conversation=conversation, chat_model_id=other.pk)
    requested = _send(alice, conversation, "Hello")

    assert requested.job.request.model == "fake-other"
    assert requested.job.message.model_id == "fake-other"


def test_a_model_not_offered_for_the_persona_cannot_be_chosen(alice, conversation, provider):
    hidden = ChatModel.objects.create(provider=provider, model_id="fake-hidden", enabled=True)
    disabled = ChatModel.objects.create(provider=provider, model_id="fake-off", offered_to_everyone=True)

    for model in (hidden, disabled):
        with pytest.raises(ValidationError, match="not offered"):
            services.conversation_set_model(conversation=conversation, chat_model_id=model.pk)

    everyone = ChatModel.objects.create(provider=provider, model_id="fake-all", enabled=True, offered_to_everyone=True)
    services.conversation_set_model(conversation=conversation, chat_model_id=everyone.pk)
    assert conversation.chat_model == everyone


def test_a_model_withdrawn_after_the_switch_refuses_the_next_send(alice, conversation, provider):
    other = ChatModel.objects.create(provider=provider, model_id="fake-other", enabled=True, offered_to_everyone=True)
    services.conversation_set_model(conversation=conversation, chat_model_id=other.pk)
    ChatModel.objects.filter(pk=other.pk).update(offered_to_everyone=False)

    with pytest.raises(ValidationError, match="no longer offered"):
        _send(alice, conversation, "Hello")


def test_the_model_switch_view_is_the_owners_only(client, alice, bob, conversation, provider):
    other = ChatModel.objects.create(provider=provider, model_id="fake-other", enabled=True, offered_to_everyone=True)
    url = f"/c/{conversation.public_id}/model/"
    client.force_login(bob)
    assert client.post(url, {"model": other.pk}).status_code == 404
    client.force_login(alice)

    response = client.post(url, {"model": other.pk}, headers={"HX-Request": "true"})

    assert response.status_code == 200
    assert 'id="model-picker"' in response.text and 'id="context-budget"' in response.text
    conversation.refresh_from_db()
    assert conversation.chat_model == other
    assert client.post(url, {"model": "nope"}).status_code == 400


def test_an_edited_question_keeps_its_documents_and_adds_new_ones(alice, conversation):
    first = _upload(alice, "a.txt", b"Alpha document")
    _send(alice, conversation, "Read this", [first])
    Message.objects.filter(status=Message.Status.STREAMING).update(status=Message.Status.COMPLETE, content="ok")
    second = _upload(alice, "b.txt", b"Beta document")

    job = services.reply_request(
        user=alice, public_id=conversation.public_id, action="edit", text="Read these", attachments=[second]
    ).job

    content = job.request.messages[-1]["content"]
    assert content.startswith("Read these")
    assert "Alpha document" in content and "Beta document" in content
    stored = Attachment.objects.filter(owner=alice)
    assert stored.count() == 3 and stored.values("file").distinct().count() == 2
    assert attachment_selectors.user_storage_bytes(user=alice) == len(b"Alpha document") + len(b"Beta document")


def test_a_frame_carries_attachment_ids_as_one_string():
    from conversations.consumers import frame_problem

    assert frame_problem({"action": "send", "message": "hi", "attachments": "a,b"}) is None
    assert frame_problem({"action": "edit", "message": "hi", "attachments": ""}) is None
    assert "attachments" in frame_problem({"action": "send", "message": "hi", "attachments": ["a"]})
