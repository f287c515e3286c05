"""`manage.py rerender_replies`: messages stored before a renderer upgrade get today's HTML; streaming ones wait."""

import io

import pytest
from django.core.management import call_command

from conversations import rendering, services
from conversations.models import Message

pytestmark = pytest.mark.django_db

OLD_HTML = "<p>$$\\int_0^1 x,dx$$</p>"  # what the renderer made of it before math: the backslash eaten


def test_old_replies_and_questions_are_rendered_anew_and_streaming_replies_are_left(conversation):
    sent = services.message_send(conversation=conversation, text="integrate $x$")
    services.reply_finish(message=sent.assistant_message, content="$$\\int_0^1 x\\,dx$$", status="complete")
    Message.objects.filter(pk=sent.assistant_message.pk).update(content_html=OLD_HTML)
    Message.objects.filter(pk=sent.user_message.pk).update(content_html="integrate $x$")  # as typed, before math
    streaming = services.message_send(conversation=conversation, text="again").assistant_message
    Message.objects.filter(pk=streaming.pk).update(content="partial $x$", content_html="")
    out = io.StringIO()

    call_command("rerender_replies", stdout=out)

    reply = Message.objects.get(pk=sent.assistant_message.pk)
    assert "<math" in reply.content_html
    assert reply.content_html == str(rendering.render_markdown(reply.content))
    assert Message.objects.get(pk=streaming.pk).content_html == ""
    question = Message.objects.get(pk=sent.user_message.pk)
    assert "<math" in question.content_html
    assert question.content_html == str(rendering.render_user_text(question.content))
    assert out.getvalue().strip() == "2 messages rendered anew."


def test_running_it_again_changes_nothing(conversation):
    sent = services.message_send(conversation=conversation, text="hi")
    services.reply_finish(message=sent.assistant_message, content="**hello**", status="complete")

    assert services.replies_rerender(batch_size=1) == 0
