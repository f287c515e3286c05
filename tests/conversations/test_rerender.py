"""`manage.py rerender_replies`: replies stored before a renderer upgrade get today's HTML; nothing else changes."""

import io

import pytest
from django.core.management import call_command

from conversations import rendering, services
from conversations.models import Message

pytestmark = pytest.mark.django_db

OLD_HTML = "<p>$$\\int_0^1 x,dx$$</p>"  # what the renderer made of it before math: the backslash eaten


def test_old_replies_are_rendered_anew_and_questions_and_streaming_replies_are_left(conversation):
    sent = services.message_send(conversation=conversation, text="integrate $x$")
    services.reply_finish(message=sent.assistant_message, content="$$\\int_0^1 x\\,dx$$", status="complete")
    Message.objects.filter(pk=sent.assistant_message.pk).update(content_html=OLD_HTML)
    streaming = services.message_send(conversation=conversation, text="again").assistant_message
    Message.objects.filter(pk=streaming.pk).update(content="partial $x$", content_html="")
    out = io.StringIO()

    call_command("rerender_replies", stdout=out)

    reply = Message.objects.get(pk=sent.assistant_message.pk)
    assert "<math" in reply.content_html
    assert reply.content_html == str(rendering.render_markdown(reply.content))
    assert Message.objects.get(pk=streaming.pk).content_html == ""
    assert Message.objects.get(pk=sent.user_message.pk).content_html == ""
    assert out.getvalue().strip() == "1 message rendered anew."


def test_running_it_again_changes_nothing(conversation):
    sent = services.message_send(conversation=conversation, text="hi")
    services.reply_finish(message=sent.assistant_message, content="**hello**", status="complete")

    assert services.replies_rerender(batch_size=1) == 0
