"""Regenerate the last reply, edit the last question, and step through versions (‹ 1/2 ›)."""

import pytest
from asgiref.sync import sync_to_async
from django.core.exceptions import ValidationError
from django.urls import reverse

from conversations import selectors, services
from conversations.models import Message
from tests.conftest import streamed_requests
from tests.sockets import wait_for_reply


def finish(message, content):
    return services.reply_finish(message=message, content=content, status="complete", finish_reason="stop")


@pytest.fixture
def chat(alice, persona):
    """A conversation with greeting, question "q1" and its finished reply "r1"."""
    conversation = services.conversation_create(owner=alice, persona=persona)
    sent = services.message_send(conversation=conversation, text="q1")
    finish(sent.assistant_message, "r1")
    return conversation


def shown(conversation) -> list[str]:
    return [m.content for m in selectors.message_list_for_conversation(conversation=conversation)]


@pytest.mark.django_db
class TestServices:
    def test_regenerate_hides_the_last_reply_and_starts_a_sibling(self, chat):
        old = chat.messages.get(content="r1")
        new = services.reply_regenerate(conversation=chat)
        assert (new.parent_id, new.status, new.is_current) == (old.parent_id, "streaming", True)
        old.refresh_from_db()
        assert not old.is_current
        finish(new, "r2")
        assert shown(chat) == ["Hello! How can I help?", "q1", "r2"]
        versions = selectors.message_versions(conversation=chat, messages=[old, new])
        assert (versions[old.pk].index, versions[old.pk].total, versions[old.pk].next) == (1, 2, new.public_id)
        assert (versions[new.pk].index, versions[new.pk].previous, versions[new.pk].next) == (2, old.public_id, None)

    def test_history_for_the_new_reply_leaves_the_old_version_out(self, chat):
        services.reply_regenerate(conversation=chat)
        history = selectors.message_history_for_upstream(conversation=chat, limit=10)
        assert [m.content for m in history.recent] == ["q1"]

    @pytest.mark.parametrize("state", ["only-greeting", "streaming", "question-last"])
    def test_regenerate_is_refused_without_a_finished_last_reply(self, alice, persona, state):
        conversation = services.conversation_create(owner=alice, persona=persona)
        if state != "only-greeting":
            sent = services.message_send(conversation=conversation, text="q")
            if state == "question-last":
                sent.assistant_message.delete()
        before = Message.objects.count()
        with pytest.raises(ValidationError):
            services.reply_regenerate(conversation=conversation)
        assert Message.objects.count() == before

    def test_edit_replaces_the_last_question_and_its_reply(self, chat):
        sent = services.message_edit(conversation=chat, text="q1 edited")
        finish(sent.assistant_message, "r1'")
        assert shown(chat) == ["Hello! How can I help?", "q1 edited", "r1'"]
        old = chat.messages.get(content="q1")
        assert sent.user_message.parent_id == old.parent_id
        versions = selectors.message_versions(conversation=chat, messages=[sent.user_message])
        assert (versions[sent.user_message.pk].index, versions[sent.user_message.pk].total) == (2, 2)

    def test_edit_without_a_question_is_refused(self, alice, persona):
        conversation = services.conversation_create(owner=alice, persona=persona)
        with pytest.raises(ValidationError):
            services.message_edit(conversation=conversation, text="x")

    def test_showing_an_earlier_question_brings_back_its_reply(self, chat):
        sent = services.message_edit(conversation=chat, text="q1 edited")
        finish(sent.assistant_message, "r1'")
        services.message_version_show(message=chat.messages.get(content="q1"))
        assert shown(chat) == ["Hello! How can I help?", "q1", "r1"]
        services.message_version_show(message=sent.user_message)
        assert shown(chat) == ["Hello! How can I help?", "q1 edited", "r1'"]

    def test_showing_an_earlier_reply(self, chat):
        finish(services.reply_regenerate(conversation=chat), "r2")
        services.message_version_show(message=chat.messages.get(content="r1"))
        assert shown(chat) == ["Hello! How can I help?", "q1", "r1"]

    def test_versions_cannot_change_while_a_reply_streams(self, chat):
        services.message_send(conversation=chat, text="q2")
        with pytest.raises(ValidationError):
            services.message_version_show(message=chat.messages.get(content="r1"))


@pytest.mark.django_db(transaction=True)
class TestOverTheSocket:
    async def test_regenerate_streams_a_new_version_of_the_last_reply(self, alice, make_persona, open_socket, upstream):
        persona = await sync_to_async(make_persona)("long:3")
        conversation = await sync_to_async(services.conversation_create)(owner=alice, persona=persona)
        socket = await open_socket(alice, conversation.public_id)
        await socket.send("question")
        await socket.receive_final()
        await socket.communicator.send_json_to({"action": "regenerate"})
        frames = await socket.receive_final()
        assert any('id="messages" hx-swap-oob="innerHTML"' in f for f in frames)
        assert "2/2" in frames[-1] and 'class="version-previous" hx-post=' in frames[-1]
        replies = [m async for m in Message.objects.filter(role="assistant", parent__isnull=False)]
        assert [(m.content, m.is_current) for m in replies] == [("w0 w1 w2 ", False), ("w0 w1 w2 ", True)]
        requests = streamed_requests(upstream)
        assert requests[-1].body["messages"] == requests[0].body["messages"]

    async def test_edit_sends_the_new_text_and_not_the_old(self, alice, make_persona, open_socket, upstream):
        persona = await sync_to_async(make_persona)("long:2")
        conversation = await sync_to_async(services.conversation_create)(owner=alice, persona=persona)
        socket = await open_socket(alice, conversation.public_id)
        await socket.send("first try")
        await socket.receive_final()
        await socket.communicator.send_json_to({"action": "edit", "message": "second try"})
        await socket.receive_final()
        sent = [m["content"] for m in streamed_requests(upstream)[-1].body["messages"]]
        assert sent[-1] == "second try" and "first try" not in sent

    async def test_edit_with_empty_text_is_refused(self, alice, make_persona, open_socket):
        persona = await sync_to_async(make_persona)("long:2")
        conversation = await sync_to_async(services.conversation_create)(owner=alice, persona=persona)
        socket = await open_socket(alice, conversation.public_id)
        await socket.send("first try")
        await socket.receive_final()
        count = await Message.objects.acount()
        await socket.communicator.send_json_to({"action": "edit", "message": "  "})
        await socket.receive_until("Type a message")
        assert await Message.objects.acount() == count

    async def test_regenerate_refused_while_streaming_says_why(self, alice, make_persona, open_socket):
        persona = await sync_to_async(make_persona)("long:200+delay:20")
        conversation = await sync_to_async(services.conversation_create)(owner=alice, persona=persona)
        socket = await open_socket(alice, conversation.public_id)
        await socket.send("slow")
        await socket.receive_until("beforeend")
        await socket.communicator.send_json_to({"action": "regenerate"})
        await socket.receive_until("Wait for the reply to finish")
        await socket.stop()
        await wait_for_reply()


@pytest.mark.django_db
class TestShowView:
    def url(self, conversation, message):
        return reverse("conversations:message-show", args=[conversation.public_id, message.public_id])

    def test_owner_switches_versions_htmx_and_plain(self, client, alice, chat):
        finish(services.reply_regenerate(conversation=chat), "r2")
        client.force_login(alice)
        old = chat.messages.get(content="r1")
        response = client.post(self.url(chat, old), HTTP_HX_REQUEST="true")
        assert response.status_code == 200
        html = response.content.decode()
        assert 'id="messages" hx-swap-oob="innerHTML"' in html and "<p>r1</p>" in html and "1/2" in html
        response = client.post(self.url(chat, chat.messages.get(content="r2")))
        assert response.status_code == 302 and shown(chat)[-1] == "r2"

    def test_other_user_and_foreign_messages_get_404(self, client, alice, bob, chat, persona):
        target = chat.messages.get(content="r1")
        client.force_login(bob)
        assert client.post(self.url(chat, target)).status_code == 404
        theirs = services.conversation_create(owner=bob, persona=persona)
        # bob's own conversation with alice's message id
        assert client.post(self.url(theirs, target)).status_code == 404
        assert chat.messages.get(content="r1").is_current

    def test_anonymous_is_sent_to_login_and_get_is_refused(self, client, alice, chat):
        target = chat.messages.get(content="r1")
        assert client.post(self.url(chat, target)).status_code == 302
        client.force_login(alice)
        assert client.get(self.url(chat, target)).status_code == 405

    def test_switching_while_streaming_is_a_conflict(self, client, alice, chat):
        services.message_send(conversation=chat, text="q2")
        client.force_login(alice)
        response = client.post(self.url(chat, chat.messages.get(content="r1")))
        assert response.status_code == 409
