"""The context budget end to end: what is sent upstream, a too-large message refused, the line under the composer."""

import pytest
from asgiref.sync import sync_to_async

from conversations import generation, selectors, services, upstream
from conversations.models import Conversation, Message
from personas.models import ChatModel
from tests.conftest import streamed_requests


def add_turns(conversation, n, size=1):
    for i in range(n):
        Message.objects.create(conversation=conversation, role="user", content=f"q{i} " + "word " * size)
        Message.objects.create(conversation=conversation, role="assistant", content=f"a{i} " + "word " * size)


@pytest.mark.django_db
def test_budget_counts_what_the_next_message_would_carry(alice, make_persona):
    persona = make_persona("gpt-4o-mini", history_limit=5, system_prompt="", greeting="Hi")
    conversation = services.conversation_create(owner=alice, persona=persona)
    add_turns(conversation, 6)
    budget = upstream.context_budget(conversation=conversation)
    assert (budget.kept, budget.total, budget.budget, budget.exact) == (5, 13, None, True)  # the greeting counts
    assert budget.tokens > 0


@pytest.mark.django_db
def test_budget_drops_the_oldest_messages_that_do_not_fit_the_window(alice, make_persona):
    persona = make_persona("gpt-4o-mini", history_limit=50, system_prompt="", greeting="")
    ChatModel.objects.filter(pk=persona.model_id).update(context_window=1200, max_output_tokens=200)
    persona.model.refresh_from_db()
    conversation = services.conversation_create(owner=alice, persona=persona)
    add_turns(conversation, 10, size=60)  # each message about 65 tokens: not all 20 fit
    budget = upstream.context_budget(conversation=conversation)
    assert budget.budget == 1000
    assert 0 < budget.kept < 20 and budget.total == 20 and budget.tokens <= 1000


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("status", "content"), [("complete", "An answer."), ("stopped", "Half"), ("stopped", ""), ("error", "")]
)
@pytest.mark.parametrize("turns", [1, 6])  # under and over the history limit
def test_a_finished_replys_context_line_is_the_pages_without_reading_the_history_again(
    alice, make_persona, monkeypatch, status, content, turns
):
    persona = make_persona("gpt-4o-mini", history_limit=5, system_prompt="Be brief.", greeting="Hi")
    conversation = services.conversation_create(owner=alice, persona=persona)
    add_turns(conversation, turns)
    job = services.reply_request(user=alice, public_id=conversation.public_id, action="send", text="Next?").job
    read = selectors.message_history_for_upstream

    def read_again(**kwargs):
        raise AssertionError("the final write read the history again")

    monkeypatch.setattr(selectors, "message_history_for_upstream", read_again)
    reply, html = generation._store(job=job, content=content, status=status)
    monkeypatch.setattr(selectors, "message_history_for_upstream", read)

    stored = selectors.message_history_for_upstream(conversation=conversation, limit=5)
    assert job.history is not None
    known = job.history.with_message(reply)
    assert (known.greeting, known.recent, known.total, known.last) == (
        stored.greeting,
        stored.recent,
        stored.total,
        stored.last,
    )
    page = upstream.context_budget(conversation=Conversation.objects.select_related("persona__model").get())
    assert page is not None and f"{page.kept} of {page.total} messages in context" in html


@pytest.mark.django_db
def test_page_shows_the_budget_under_the_composer(client, alice, make_persona):
    persona = make_persona("gpt-4o-mini", history_limit=3)
    conversation = services.conversation_create(owner=alice, persona=persona)
    add_turns(conversation, 3)
    client.force_login(alice)
    page = client.get(conversation.get_absolute_url()).content.decode()
    assert 'id="context-budget"' in page and "3 of 7 messages in context, about" in page  # the greeting counts


@pytest.mark.django_db(transaction=True)
async def test_upstream_gets_only_what_fits_and_the_line_updates(alice, make_persona, open_socket, upstream):
    persona = await sync_to_async(make_persona)("long:2", history_limit=50, system_prompt="", greeting="")
    await ChatModel.objects.filter(pk=persona.model_id).aupdate(context_window=400, max_output_tokens=100)
    conversation = await sync_to_async(services.conversation_create)(owner=alice, persona=persona)
    await sync_to_async(add_turns)(conversation, 10, size=20)
    socket = await open_socket(alice, conversation.public_id)
    await socket.send("latest question")
    frames = await socket.receive_final()
    sent = streamed_requests(upstream)[-1].body["messages"]
    assert sent[-1] == {"role": "user", "content": "latest question"}
    assert 1 < len(sent) < 21 and sent[0]["content"] != "q0 " + "word " * 20  # the oldest were dropped
    assert 'id="context-budget" class="context-budget muted" hx-swap-oob="true"' in frames[-1]


@pytest.mark.django_db(transaction=True)
async def test_a_message_too_large_for_the_window_is_refused_before_anything_is_sent(
    alice, make_persona, open_socket, upstream
):
    persona = await sync_to_async(make_persona)("long:2")
    await ChatModel.objects.filter(pk=persona.model_id).aupdate(context_window=300, max_output_tokens=100)
    conversation = await sync_to_async(services.conversation_create)(owner=alice, persona=persona)
    before = await Message.objects.acount()
    socket = await open_socket(alice, conversation.public_id)
    await socket.send("word " * 500)
    alert = await socket.receive()
    assert "Shorten it or start a new chat" in alert
    assert await Message.objects.acount() == before
    assert streamed_requests(upstream) == []
