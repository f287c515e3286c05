import re
from datetime import UTC, date, datetime, timedelta

import pytest
from django.core.exceptions import ValidationError
from django.db import OperationalError, connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from conversations import selectors, services
from conversations.models import Conversation, DailyUsage, Message
from personas.models import ChatModel

pytestmark = pytest.mark.django_db


def test_conversation_create_without_greeting_has_no_messages(alice, make_persona):
    conversation = services.conversation_create(owner=alice, persona=make_persona(greeting="  "))
    assert conversation.messages.count() == 0 and conversation.title == ""


def test_conversation_greeting_is_rendered_markdown(alice, make_persona):
    conversation = services.conversation_create(owner=alice, persona=make_persona(greeting="Hi **there** <b>x</b>"))
    assert conversation.messages.get().content_html == "<p>Hi <strong>there</strong> &lt;b&gt;x&lt;/b&gt;</p>\n"


@pytest.mark.parametrize(
    ("text", "code"),
    [(None, "invalid"), (5, "invalid"), ("", "empty"), (" \n\t ", "empty"), ("a" * 32_001, "too_long")],
)
def test_message_text_clean_refuses_bad_text(text, code):
    with pytest.raises(ValidationError) as excinfo:
        services.message_text_clean(text=text)
    assert excinfo.value.code == code


def test_message_text_clean_strips_and_respects_the_setting(settings):
    assert services.message_text_clean(text="  hi \n") == "hi"
    settings.CHAT_MAX_MESSAGE_CHARS = 3
    with pytest.raises(ValidationError):
        services.message_text_clean(text="abcd")


@pytest.mark.parametrize(
    ("text", "title"),
    [
        ("Hello", "Hello"),
        ("\n\n  First line  \nsecond", "First line"),
        ("x" * 100, "x" * 79 + "…"),
        ("你好，帮我写一首关于秋天的诗", "你好，帮我写一首关于秋天的诗"),
    ],
)
def test_title_from_text(text, title):
    assert services.title_from_text(text) == title


def test_message_send_saves_user_message_empty_reply_and_title(conversation):
    sent = services.message_send(conversation=conversation, text="What is 2+2?", idempotency_key="k1")
    assert (sent.user_message.role, sent.user_message.content, sent.user_message.status) == (
        "user",
        "What is 2+2?",
        "complete",
    )
    assert (sent.assistant_message.status, sent.assistant_message.content) == ("streaming", "")
    assert sent.assistant_message.model_id == "fake-echo"
    conversation.refresh_from_db()
    assert conversation.title == "What is 2+2?"
    services.message_send(conversation=conversation, text="Another question")
    conversation.refresh_from_db()
    assert conversation.title == "What is 2+2?"  # the first message names the chat


def test_message_send_with_a_used_idempotency_key_saves_nothing(conversation):
    services.message_send(conversation=conversation, text="once", idempotency_key="same")
    count = Message.objects.count()
    with pytest.raises(services.DuplicateSend):
        services.message_send(conversation=conversation, text="once", idempotency_key="same")
    assert Message.objects.count() == count


def test_reply_finish_stores_rendered_reply_and_metadata_in_one_write_and_counts_its_tokens(conversation):
    reply = services.message_send(conversation=conversation, text="hi").assistant_message
    with CaptureQueriesContext(connection) as queries:
        services.reply_finish(
            message=reply,
            content="**done**",
            status="complete",
            finish_reason="stop",
            model_id="gpt-x",
            prompt_tokens=3,
            completion_tokens=2,
            ttft_ms=12,
            duration_ms=40,
        )
    message_writes = [q["sql"] for q in queries if "conversations_message" in q["sql"]]
    assert len(message_writes) == 1 and message_writes[0].startswith("UPDATE")
    # The day's usage gets the reply's tokens in the same transaction: the quota reads that one row.
    assert DailyUsage.objects.get(user=conversation.owner).tokens == 5
    reply.refresh_from_db()
    assert reply.content_html == "<p><strong>done</strong></p>\n"
    assert (reply.status, reply.finish_reason, reply.model_id) == ("complete", "stop", "gpt-x")
    assert (reply.prompt_tokens, reply.completion_tokens, reply.ttft_ms, reply.duration_ms) == (3, 2, 12, 40)


@pytest.mark.parametrize("action", ["send", "edit"])
def test_a_resent_message_is_a_duplicate_while_its_reply_streams_and_after_it(alice, conversation, action):
    def ask(key, action=action):
        return services.reply_request(
            user=alice, public_id=conversation.public_id, action=action, text="once", idempotency_key=key
        )

    if action == "edit":
        services.reply_finish(message=ask("first", "send").job.message, content="hello", status="complete")
    reply = ask("same").job.message
    count = Message.objects.count()
    with pytest.raises(services.DuplicateSend):  # Its reply streams: the streaming check refuses, the key wins.
        ask("same")
    services.reply_finish(message=reply, content="hello", status="complete")
    with pytest.raises(services.DuplicateSend) as duplicate:  # The checks pass; the key's unique constraint refuses.
        ask("same")
    assert Message.objects.count() == count and duplicate.value.conversation == conversation


def test_a_send_without_files_neither_looks_up_its_key_nor_loads_its_bubbles_files(alice, conversation):
    services.messages_append(conversation=conversation, turns=[("user", "Earlier"), ("assistant", "Answer")])
    with CaptureQueriesContext(connection) as queries:
        requested = services.reply_request(
            user=alice, public_id=conversation.public_id, action="send", text="hi", idempotency_key="k"
        )
    sqls = [q["sql"] for q in queries.captured_queries]
    assert not [sql for sql in sqls if sql.startswith("SELECT") and "idempotency_key" in sql.split("WHERE")[-1]]
    # The earlier question's files (what the model reads) are loaded once; the new question's are known.
    assert len([sql for sql in sqls if sql.startswith('SELECT "attachments_attachment"')]) == 1
    assert 'id="' in requested.changed["html"]


@pytest.mark.parametrize(("status", "content"), [("complete", "An answer."), ("error", ""), ("stopped", "")])
@pytest.mark.parametrize(
    ("turns", "reads"), [(0, 1), (1, 1), (6, 2)]
)  # a new chat, under and over the limit (and a count)
def test_a_sends_question_follows_the_last_shown_message_read_with_the_history_it_is_asked_with(
    alice, make_persona, status, content, turns, reads
):
    """The history is read before the question is written: its last message, an error bubble too, is the parent."""
    conversation = services.conversation_create(owner=alice, persona=make_persona(history_limit=5, greeting="Hi"))
    last = conversation.messages.get()
    for i in range(turns):
        (question,) = services.messages_append(conversation=conversation, turns=[("user", f"q{i}")])
        # The latest three replies have the status.
        reply = (status, content) if i >= turns - 3 else ("complete", f"a{i}")
        last = Message.objects.create(
            conversation=conversation, parent=question, role="assistant", status=reply[0], content=reply[1]
        )
    with CaptureQueriesContext(connection) as queries:
        job = services.reply_request(user=alice, public_id=conversation.public_id, action="send", text="Next?").job
    message_reads = [
        q["sql"]
        for q in queries.captured_queries
        if 'FROM "conversations_message"' in q["sql"] and not q["sql"].startswith("SELECT COUNT")
    ]
    # The history's own reads (the streaming check reads no rows when none streams): one more when failed
    # replies leave fewer than the limit finished among the latest limit + 2 shown.
    assert len(message_reads) == reads + (turns == 6 and status != "complete")
    question = Message.objects.get(content="Next?")
    assert question.parent == last and job.history is not None and job.history.last == question
    stored = selectors.message_history_for_upstream(conversation=conversation, limit=5)
    assert (job.history.greeting, job.history.recent, job.history.total) == (
        stored.greeting,
        stored.recent,
        stored.total,
    )
    assert job.request.messages[-1] == {"role": "user", "content": "Next?"}


def test_usage_is_added_to_the_days_row_in_one_statement_and_never_for_a_deleted_user(
    alice, bob, django_assert_num_queries
):
    noon = timezone.make_aware(datetime(2026, 3, 1, 12, 0))
    with django_assert_num_queries(1):
        services.usage_add(user_id=alice.pk, started_at=noon, tokens=5)  # The day's first reply: the row is created.
    with django_assert_num_queries(1):
        services.usage_add(user_id=alice.pk, started_at=noon + timedelta(hours=1), tokens=7)
    services.usage_add(user_id=alice.pk, started_at=noon + timedelta(days=1), tokens=1)
    gone = bob.pk
    bob.delete()
    services.usage_add(user_id=gone, started_at=noon, tokens=3)

    rows = DailyUsage.objects.order_by("day").values_list("user", "day", "tokens")
    assert list(rows) == [(alice.pk, date(2026, 3, 1), 12), (alice.pk, date(2026, 3, 2), 1)]


def test_a_send_an_edit_and_a_regeneration_record_the_user_who_asked(alice, conversation):
    sent = services.reply_request(user=alice, public_id=conversation.public_id, action="send", text="hi").job.message
    services.reply_finish(message=sent, content="hello", status="complete")
    edited = services.reply_request(user=alice, public_id=conversation.public_id, action="edit", text="hey").job.message
    services.reply_finish(message=edited, content="hello", status="complete")
    again = services.reply_request(user=alice, public_id=conversation.public_id, action="regenerate", text="").job

    askers = set(Message.objects.exclude(parent=None).values_list("asked_by", flat=True))
    assert askers == {alice.pk} and again.message.asked_by_id == alice.pk
    assert Message.objects.filter(parent=None).get().asked_by is None  # the greeting: nobody asked it


def test_a_group_members_send_is_checked_and_charged_against_their_quota_not_the_owners(
    alice, bob, make_persona, settings
):
    settings.CHAT_DEFAULT_SENDS_PER_MINUTE = 1
    group_chat = services.conversation_create(owner=bob, persona=make_persona(greeting=""))  # the group's account

    reply = services.reply_request(
        user=bob, public_id=group_chat.public_id, action="send", text="first", asked_by=alice
    ).job.message
    services.reply_finish(message=reply, content="ok", status="complete", prompt_tokens=4, completion_tokens=3)

    assert (reply.asked_by_id, reply.parent.asked_by_id) == (alice.pk, alice.pk)
    assert list(DailyUsage.objects.values_list("user", "tokens")) == [(alice.pk, 7)]
    with pytest.raises(ValidationError, match="in the last minute"):
        services.reply_request(user=bob, public_id=group_chat.public_id, action="send", text="again", asked_by=alice)
    assert Message.objects.filter(role="user").count() == 1
    services.reply_request(user=bob, public_id=group_chat.public_id, action="send", text="bob's own")  # his quota


def test_a_reply_whose_asker_was_deleted_while_it_streamed_is_stored_and_charged_to_nobody(
    alice, bob, django_user_model, persona
):
    member = django_user_model.objects.create_user("feishu-user-1")  # linked to alice meanwhile: deleted
    group_chat = services.conversation_create(owner=bob, persona=persona)
    reply = services.message_send(conversation=group_chat, text="hi", asked_by=member).assistant_message
    member.delete()

    services.reply_finish(message=reply, content="ok", status="complete", prompt_tokens=4, completion_tokens=3)

    connection.check_constraints()  # what a commit checks: no usage row for a user who is gone
    assert Message.objects.get(pk=reply.pk).status == "complete"
    assert not DailyUsage.objects.exists()


def test_the_checkpoints_of_many_replies_are_one_statement_and_spare_a_reply_no_longer_streaming(alice, bob, persona):
    """The replies streaming in a process check in together (`generation._checkpoint_hop`): one write for all."""
    replies = [
        services.message_send(
            conversation=services.conversation_create(owner=owner, persona=persona), text="q"
        ).assistant_message
        for owner in (alice, bob, alice)
    ]
    services.reply_finish(message=replies[2], content="Done.", status="complete")
    beats = dict(Message.objects.filter(pk__in=[r.pk for r in replies]).values_list("pk", "heartbeat_at"))
    with CaptureQueriesContext(connection) as queries:
        services.replies_checkpoint(checkpoints=[(reply, f"so far {i}") for i, reply in enumerate(replies)])
    # One statement for the three ("3 times: UPDATE ...", as Django logs an executemany), in one transaction.
    assert [q["sql"].split(": UPDATE")[0] for q in queries.captured_queries if "UPDATE" in q["sql"]] == ["3 times"]
    saved = {m.pk: m for m in Message.objects.filter(pk__in=[r.pk for r in replies])}
    assert [saved[r.pk].content for r in replies] == ["so far 0", "so far 1", "Done."]
    assert [saved[r.pk].status for r in replies] == ["streaming", "streaming", "complete"]
    assert [saved[r.pk].heartbeat_at > (beats[r.pk] or datetime.min.replace(tzinfo=UTC)) for r in replies] == [
        True,
        True,
        False,
    ]


def test_nul_characters_never_reach_the_database(conversation):
    # PostgreSQL text cannot hold U+0000 (SQLite can): both store U+FFFD instead.
    text = services.message_text_clean(text="java\x00script")
    assert text == "java\ufffdscript"
    sent = services.message_send(conversation=conversation, text=text)
    services.replies_checkpoint(checkpoints=[(sent.assistant_message, "half\x00")])
    reply = services.reply_finish(message=sent.assistant_message, content="out\x00put", status="complete")
    reply.refresh_from_db()
    assert reply.content == "out\ufffdput"
    services.conversation_rename(conversation=conversation, title="a\x00b")
    conversation.refresh_from_db()
    assert conversation.title == "a\ufffdb"


@pytest.mark.skipif(connection.vendor != "sqlite", reason="SQLite's query plan")
def test_the_streaming_check_of_a_send_reads_the_streaming_rows_only(conversation):
    """Every send checks its conversation for a reply still streaming: that must not read the whole history."""
    services.message_send(conversation=conversation, text="hi")
    with connection.cursor() as cursor:
        with CaptureQueriesContext(connection) as queries:
            live = services.replies_streaming_live(conversation=conversation)
        plans = []
        for query in queries.captured_queries:
            cursor.execute("EXPLAIN QUERY PLAN " + query["sql"])
            plans.append(" ".join(row[-1] for row in cursor.fetchall()))
    assert len(live) == 1 and len(plans) == 2  # Whether one streams, then which.
    assert all("message_conversation_streaming (conversation_id=?)" in plan for plan in plans), plans


def test_a_conversation_with_no_reply_streaming_is_checked_in_one_statement(conversation, django_assert_num_queries):
    sent = services.message_send(conversation=conversation, text="hi")
    services.reply_finish(message=sent.assistant_message, content="hello", status="complete")
    with django_assert_num_queries(1) as queries:
        assert services.replies_streaming_live(conversation=conversation) == []
    assert "content_html" not in queries.captured_queries[0]["sql"]  # Whether one streams, not the rows.


def _send(user, conversation, text, **fields):
    return {"user": user, "public_id": conversation.public_id, "action": "send", "text": text, **fields}


def test_a_batch_of_sends_reads_each_kind_of_thing_once(alice, bob, persona, django_user_model):
    """Each kind of read once for the batch (`replies_request`); each send as `reply_request` would save it."""
    users = [alice, bob, *(django_user_model.objects.create_user(name) for name in ("carol", "dave"))]
    chats = [services.conversation_create(owner=user, persona=persona) for user in users]
    for chat in chats:
        services.messages_append(conversation=chat, turns=[("user", "Earlier?"), ("assistant", "Earlier answer.")])
    parents = [chat.messages.order_by("created_at", "id").last() for chat in chats]
    requests = [_send(c.owner, c, f"Question {i}?") for i, c in enumerate(chats)]
    with CaptureQueriesContext(connection) as queries:
        outcomes = services.replies_request(requests)
    # Reads, not the quota's row locks (PostgreSQL's SELECT ... FOR UPDATE: all the batch's users first, in id order).
    reads = [
        q["sql"] for q in queries.captured_queries if q["sql"].startswith("SELECT") and "FOR UPDATE" not in q["sql"]
    ]
    kinds = {
        "conversations": 'FROM "conversations_conversation"',
        "histories": ") AS latest",
        "their files": 'FROM "attachments_attachment"',
        "limits": '"accounts_usagelimit"',
        "usage": "WHERE asked_by_id",
        "a reply streaming": ") AS streaming",
        "custom instructions": '"accounts_custominstructions"',
    }
    assert {kind: len([sql for sql in reads if mark in sql]) for kind, mark in kinds.items()} == dict.fromkeys(kinds, 1)
    assert len(reads) == len(kinds)
    for i, (chat, parent, outcome) in enumerate(zip(chats, parents, outcomes, strict=True)):
        assert isinstance(outcome, services.RequestedReply)
        question, reply = chat.messages.order_by("created_at", "id")[3:]
        assert (question.content, question.parent_id, reply.status) == (f"Question {i}?", parent.pk, "streaming")
        assert outcome.job.message == reply
        assert [m["content"] for m in outcome.job.request.messages[1:]] == [
            "Hello! How can I help?",
            "Earlier?",
            "Earlier answer.",
            f"Question {i}?",
        ]
        assert f"Question {i}?" in outcome.changed["html"]


def test_a_batch_of_sends_writes_its_questions_replies_and_conversations_in_one_statement_each(
    alice, bob, persona, django_user_model
):
    users = [alice, bob, django_user_model.objects.create_user("carol")]
    chats = [services.conversation_create(owner=user, persona=persona) for user in users]
    services.conversation_rename(conversation=chats[2], title="Kept")
    before = {chat.pk: chat.updated_at for chat in Conversation.objects.all()}
    with CaptureQueriesContext(connection) as queries:
        outcomes = services.replies_request(
            [_send(chat.owner, chat, f"Line {i}\nmore", idempotency_key=f"k{i}") for i, chat in enumerate(chats)]
        )
    statements = [re.sub(r"^\d+ times: ", "", q["sql"]) for q in queries.captured_queries]  # executemany's log
    writes = [sql.split(" (")[0].split(" WHERE")[0] for sql in statements if sql.startswith(("INSERT", "UPDATE"))]
    assert writes == ['INSERT INTO "conversations_message"'] * 2 + [
        'UPDATE "conversations_conversation" SET "updated_at" = %s, "title" = %s',  # the chats titled now
        'UPDATE "conversations_conversation" SET "updated_at" = %s',  # a title already there is left alone
    ]
    for i, (chat, outcome) in enumerate(zip(chats, outcomes, strict=True)):
        greeting, question, reply = chat.messages.order_by("created_at", "id")
        assert (question.parent_id, question.role, question.content, question.idempotency_key) == (
            greeting.pk,
            "user",
            f"Line {i}\nmore",
            f"k{i}",
        )
        assert question.asked_by_id == reply.asked_by_id == chat.owner_id and question.content_tokens > 0
        assert (reply.parent_id, reply.status, reply.model_id) == (question.pk, "streaming", "fake-echo")
        assert outcome.job.message == reply and outcome.job.history.recent[-1].pk == question.pk
        assert f"Line {i}" in outcome.changed["html"]
        chat.refresh_from_db()
        assert chat.updated_at > before[chat.pk]
    assert [chat.title for chat in chats] == ["Line 0", "Line 1", "Kept"]


def test_a_resent_key_in_a_batch_is_a_duplicate_and_the_other_sends_are_written(alice, bob, persona):
    mine, theirs = (services.conversation_create(owner=u, persona=persona) for u in (alice, bob))
    sent = services.reply_request(user=alice, public_id=mine.public_id, action="send", text="One", idempotency_key="k1")
    services.reply_finish(message=sent.job.message, content="Done.", status="complete")
    again, other = services.replies_request(
        [_send(alice, mine, "One", idempotency_key="k1"), _send(bob, theirs, "Two", idempotency_key="k1")]
    )
    assert isinstance(again, services.DuplicateSend) and again.conversation == mine
    assert isinstance(other, services.RequestedReply)
    assert list(mine.messages.values_list("content", flat=True)) == ["Hello! How can I help?", "One", "Done."]
    assert list(theirs.messages.values_list("content", flat=True)) == ["Hello! How can I help?", "Two", ""]


def test_a_batch_mixing_sends_written_together_with_other_requests_keeps_each_outcome_in_its_place(
    alice, bob, persona, django_user_model
):
    carol = django_user_model.objects.create_user("carol")
    chats = {user.username: services.conversation_create(owner=user, persona=persona) for user in (alice, bob, carol)}
    done = services.reply_request(user=bob, public_id=chats["bob"].public_id, action="send", text="Before")
    services.reply_finish(message=done.job.message, content="Answered.", status="complete")
    outcomes = services.replies_request(
        [
            _send(alice, chats["alice"], "A1"),  # alice asks twice: both at their turn, in savepoints
            {**_send(bob, chats["bob"], ""), "action": "regenerate"},
            _send(carol, chats["carol"], "C1"),  # written together
            _send(alice, chats["alice"], "A2"),
            _send(carol, chats["alice"], "Not hers"),
        ]
    )
    assert [type(o).__name__ for o in outcomes] == [
        "RequestedReply",
        "RequestedReply",
        "RequestedReply",
        "ValidationError",
        "DoesNotExist",
    ]
    assert outcomes[3].code == "streaming"
    assert [o.job.message.conversation_id for o in outcomes[:3]] == [chats[n].pk for n in ("alice", "bob", "carol")]
    assert "A1" in outcomes[0].changed["html"] and "C1" in outcomes[2].changed["html"]
    assert list(chats["carol"].messages.values_list("content", "status")) == [
        ("Hello! How can I help?", "complete"),
        ("C1", "complete"),
        ("", "streaming"),
    ]


def test_a_conversation_deleted_while_a_batch_is_written_fails_that_send_only(alice, bob, persona, monkeypatch):
    mine, theirs = (services.conversation_create(owner=u, persona=persona) for u in (alice, bob))
    prepare = services._send_prepare

    def deleted_meanwhile(*, conversation, known, request):  # as another tab's delete commits (PostgreSQL)
        prepared = prepare(conversation=conversation, known=known, request=request)
        if conversation.pk == theirs.pk:
            Conversation.objects.filter(pk=theirs.pk).delete()
        return prepared

    monkeypatch.setattr(services, "_send_prepare", deleted_meanwhile)
    kept, lost = services.replies_request([_send(alice, mine, "Kept"), _send(bob, theirs, "Lost")])
    connection.check_constraints()  # what a commit checks: no message of a deleted conversation
    assert isinstance(kept, services.RequestedReply) and isinstance(lost, Exception)
    assert list(mine.messages.values_list("content", flat=True)) == ["Hello! How can I help?", "Kept", ""]
    assert not Message.objects.filter(content="Lost").exists()


def test_a_database_error_checking_a_send_of_a_batch_fails_the_whole_batch(alice, bob, persona, monkeypatch):
    mine, theirs = (services.conversation_create(owner=u, persona=persona) for u in (alice, bob))
    check = services._reply_check

    def broken(**kwargs):  # PostgreSQL's transaction is broken then, and what follows it would not be saved
        if kwargs["conversation"].pk == theirs.pk:
            raise OperationalError("canceling statement due to statement timeout")
        return check(**kwargs)

    monkeypatch.setattr(services, "_reply_check", broken)
    with pytest.raises(OperationalError):
        services.replies_request([_send(alice, mine, "One"), _send(bob, theirs, "Two")])
    assert Message.objects.filter(role="user").count() == 0


def test_a_send_too_long_for_its_model_in_a_batch_is_refused_with_nothing_written(alice, bob, make_persona):
    small = make_persona(model_id="fake-small")
    ChatModel.objects.filter(pk=small.model_id).update(context_window=300, max_output_tokens=100)
    mine = services.conversation_create(owner=alice, persona=small)
    theirs = services.conversation_create(owner=bob, persona=make_persona())
    refused, other = services.replies_request([_send(alice, mine, "word " * 500), _send(bob, theirs, "Short")])
    assert isinstance(refused, ValidationError) and refused.code == "context_too_large"
    assert isinstance(other, services.RequestedReply)
    assert mine.messages.count() == 1 and theirs.messages.count() == 3
    mine.refresh_from_db()
    assert mine.title == ""


def test_a_refused_send_in_a_batch_saves_nothing_and_the_others_go_on(alice, bob, persona):
    mine, theirs, other = (services.conversation_create(owner=u, persona=persona) for u in (alice, bob, alice))
    outcomes = services.replies_request(
        [
            _send(alice, mine, "   "),
            _send(alice, theirs, "Not mine"),
            _send(alice, other, "Fine"),
            _send(alice, mine, "Ok"),
        ]
    )
    assert isinstance(outcomes[0], ValidationError) and outcomes[0].code == "empty"
    assert isinstance(outcomes[1], services.Conversation.DoesNotExist)
    assert isinstance(outcomes[2], services.RequestedReply) and isinstance(outcomes[3], services.RequestedReply)
    assert list(theirs.messages.values_list("content", flat=True)) == ["Hello! How can I help?"]
    assert list(mine.messages.values_list("content", flat=True)) == ["Hello! How can I help?", "Ok", ""]
    assert list(other.messages.values_list("content", flat=True)) == ["Hello! How can I help?", "Fine", ""]


def test_a_second_send_to_one_chat_in_a_batch_sees_the_first(alice, persona):
    chat = services.conversation_create(owner=alice, persona=persona)
    first, second, again = services.replies_request(
        [
            _send(alice, chat, "One", idempotency_key="k1"),
            _send(alice, chat, "Two"),
            _send(alice, chat, "One", idempotency_key="k1"),
        ]
    )
    assert isinstance(first, services.RequestedReply)
    assert isinstance(second, ValidationError) and second.code == "streaming"
    assert isinstance(again, services.DuplicateSend)  # A resend of the first, not a refusal.
    assert chat.messages.count() == 3


def test_two_sends_of_one_user_in_a_batch_count_toward_the_quota_one_after_the_other(alice, persona):
    from accounts.models import UsageLimit

    UsageLimit.objects.create(user=alice, sends_per_minute=1)
    chats = [services.conversation_create(owner=alice, persona=persona) for _ in range(2)]
    first, second = services.replies_request([_send(alice, c, "Hi") for c in chats])
    assert isinstance(first, services.RequestedReply)
    assert isinstance(second, ValidationError) and chats[1].messages.count() == 1


def test_an_unknown_action_in_a_batch_saves_nothing(alice, persona):
    chat = services.conversation_create(owner=alice, persona=persona)
    with pytest.raises(ValueError, match="Unknown reply action"):
        services.replies_request([_send(alice, chat, "Hi"), {**_send(alice, chat, "x"), "action": "fly"}])
    assert chat.messages.count() == 1


def test_a_lone_send_hands_its_request_over_once_the_question_is_written_and_before_the_reply_is(alice, conversation):
    handed = []

    def on_request(config, request):  # Called in the transaction: what is written by then.
        written = conversation.messages.order_by("created_at", "id").values_list("role", "content", "status")
        handed.append((config, request, list(written)))

    requested = services.reply_request(
        user=alice, public_id=conversation.public_id, action="send", text="Hi there", on_request=on_request
    )

    [(config, request, written)] = handed
    assert written == [("assistant", "Hello! How can I help?", "complete"), ("user", "Hi there", "complete")]
    assert (config, request) == (requested.job.config, requested.job.request)
    assert request.messages[-1] == {"role": "user", "content": "Hi there"}
    assert requested.job.message == conversation.messages.get(status="streaming")


def test_no_request_is_handed_over_early_in_a_batch_for_a_regeneration_or_for_a_refused_send(alice, bob, persona):
    handed = []

    def on_request(config, request):
        handed.append(request)

    mine, theirs = (services.conversation_create(owner=user, persona=persona) for user in (alice, bob))
    first, second = services.replies_request(
        [_send(alice, mine, "One", on_request=on_request), _send(bob, theirs, "Two", on_request=on_request)]
    )
    assert isinstance(first, services.RequestedReply) and isinstance(second, services.RequestedReply)
    services.reply_finish(message=first.job.message, content="Done.", status="complete")
    services.reply_request(user=alice, public_id=mine.public_id, action="regenerate", text="", on_request=on_request)
    with pytest.raises(ValidationError) as refused:  # Its reply still streams.
        services.reply_request(user=bob, public_id=theirs.public_id, action="send", text="3", on_request=on_request)
    assert refused.value.code == "streaming"
    assert handed == []
