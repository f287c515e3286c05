"""Statements compiled once (conversations/compiled.py): a select by a list of values, the insert of many rows."""

from datetime import UTC, datetime
from unittest import mock

import pytest
from django.db import IntegrityError, connection, transaction
from django.db.models.sql.compiler import SQLCompiler, SQLInsertCompiler

from conversations import services
from conversations.compiled import InsertMany, SelectIn
from conversations.models import Conversation, Message
from personas.models import ChatModel

pytestmark = pytest.mark.django_db

RELATED = ("persona__model__provider", "chat_model__provider")


def _fields(instance) -> dict:
    return {field.attname: getattr(instance, field.attname) for field in type(instance)._meta.concrete_fields}


def _graph(conversation: Conversation) -> list[dict | None]:
    """The fields of `conversation` and of each object it was selected with."""
    persona, chat_model = conversation.persona, conversation.chat_model
    return [
        _fields(conversation),
        *(_fields(o) if o else None for o in (persona, persona and persona.model, persona and persona.model.provider)),
        *(_fields(o) if o else None for o in (chat_model, chat_model and chat_model.provider)),
    ]


def test_its_instances_are_the_orms_with_every_related_object_selected(
    alice, bob, make_persona, provider, django_assert_num_queries
):
    with_model = services.conversation_create(owner=alice, persona=make_persona())
    with_model.chat_model = ChatModel.objects.create(provider=provider, model_id="other", enabled=True)
    with_model.title = "Ünïcode 标题"
    with_model.save()
    without_persona = Conversation.objects.create(owner=bob, persona=None)
    ids = [with_model.public_id, without_persona.public_id]
    select = SelectIn(Conversation.objects.select_related(*RELATED), "public_id")

    with django_assert_num_queries(1):
        got = {c.public_id: c for c in select(ids)}
        graphs = {public_id: _graph(c) for public_id, c in got.items()}  # No query for a related object.

    expected = Conversation.objects.select_related(*RELATED).filter(public_id__in=ids)
    assert graphs == {c.public_id: _graph(c) for c in expected}
    assert graphs[without_persona.public_id][1:] == [None] * 5
    assert all(not c._state.adding and c._state.db == "default" for c in got.values())


def test_it_compiles_once_for_each_number_of_values(alice, persona):
    chats = [services.conversation_create(owner=alice, persona=persona) for _ in range(3)]
    select = SelectIn(Conversation.objects.select_related(*RELATED), "public_id")
    compiled = []
    as_sql = SQLCompiler.as_sql

    def counted(compiler, *args, **kwargs):
        compiled.append(compiler.query.model)
        return as_sql(compiler, *args, **kwargs)

    with mock.patch.object(SQLCompiler, "as_sql", counted):
        assert [c.pk for c in select([chats[0].public_id])] == [chats[0].pk]
        assert [c.pk for c in select([chats[1].public_id, chats[1].public_id])] == [chats[1].pk]  # One value.
        assert {c.pk for c in select([chats[1].public_id, chats[2].public_id])} == {chats[1].pk, chats[2].pk}
        assert {c.pk for c in select([chats[0].public_id, chats[2].public_id])} == {chats[0].pk, chats[2].pk}
        assert select([]) == []
    assert compiled == [Conversation, Conversation]  # For one value, then for two.


def test_it_refuses_a_queryset_whose_sql_would_not_serve_other_values(alice):
    with pytest.raises(ValueError, match="ordering"):
        SelectIn(Conversation.objects.order_by("title"), "public_id")
    select = SelectIn(Conversation.objects.filter(owner=alice), "public_id")
    with pytest.raises(ValueError, match="parameters of their own"):
        select([services.conversation_create(owner=alice, persona=None).public_id])


def _messages(conversation: Conversation, count: int, **fields) -> list[Message]:
    return [
        Message(conversation=conversation, role=Message.Role.USER, content=f"Frage {i} 问题 ✓", **fields)
        for i in range(count)
    ]


def test_its_rows_are_bulk_creates_with_the_keys_set(alice, persona):
    chat = services.conversation_create(owner=alice, persona=persona)
    parent = Message.objects.create(conversation=chat, role=Message.Role.ASSISTANT, content="Hello!")
    ours = _messages(chat, 3, parent=parent, asked_by=alice, content_tokens=7, tokens_estimated=True)
    theirs = _messages(chat, 3, parent=parent, asked_by=alice, content_tokens=7, tokens_estimated=True)

    assert InsertMany(Message)(ours) == ours
    Message.objects.bulk_create(theirs)

    assert all(m.pk is not None and not m._state.adding and m._state.db == "default" for m in ours)
    assert all(m.created_at is not None for m in ours)  # Set as it was written (`auto_now_add`).
    varying = {"id", "public_id", "created_at"}
    for mine, bulk in zip(ours, theirs, strict=True):
        stored = Message.objects.get(pk=mine.pk)
        assert (stored.public_id, stored.created_at) == (mine.public_id, mine.created_at)
        assert {k: v for k, v in _fields(stored).items() if k not in varying} == {
            k: v for k, v in _fields(Message.objects.get(pk=bulk.pk)).items() if k not in varying
        }


def test_the_values_are_prepared_without_a_query_and_the_foreign_keys_taken_at_the_insert(
    alice, persona, django_assert_num_queries
):
    then = datetime(2021, 2, 3, 4, 5, 6, 789000, tzinfo=UTC)
    chat = Conversation(owner=alice, persona=persona, title="Not saved yet")
    stamped, kept = _messages(chat, 2, created_at=then), _messages(chat, 2, created_at=then)

    with django_assert_num_queries(0):
        prepared = InsertMany(Message).prepare(stamped)
        prepared_as_set = InsertMany(Message, as_set=("created_at",)).prepare(kept)
    chat.save()  # After the values were prepared: the insert takes its key.
    InsertMany(Message).insert(prepared)
    InsertMany(Message, as_set=("created_at",)).insert(prepared_as_set)

    stored = {m.pk: m for m in Message.objects.filter(conversation=chat)}
    assert set(stored) == {m.pk for m in stamped + kept}
    assert {stored[m.pk].created_at for m in kept} == {then}  # as the instances held it
    assert all(stored[m.pk].created_at > then for m in stamped)  # the time of `prepare` (`auto_now_add`)
    assert [stored[m.pk].content for m in stamped + kept] == [m.content for m in stamped + kept]


def test_the_insert_compiles_once_for_each_number_of_rows_in_as_many_statements_as_bulk_create(
    alice, persona, monkeypatch, django_assert_num_queries
):
    chat = services.conversation_create(owner=alice, persona=persona)
    insert = InsertMany(Message)
    compiled = []
    as_sql = SQLInsertCompiler.as_sql

    def counted(compiler, *args, **kwargs):
        compiled.append(len(compiler.query.objs))
        return as_sql(compiler, *args, **kwargs)

    monkeypatch.setattr(SQLInsertCompiler, "as_sql", counted)
    monkeypatch.setattr(connection.ops, "bulk_batch_size", lambda fields, objs: 2)
    with django_assert_num_queries(3):
        five = insert(_messages(chat, 5))
    insert(_messages(chat, 2))
    insert(_messages(chat, 1))
    assert compiled == [2, 1]  # Two statements of two rows and one of one row, then none compiled again.
    assert len({m.pk for m in five}) == 5
    assert Message.objects.filter(pk__in=[m.pk for m in five]).count() == 5


def test_the_insert_refuses_instances_with_a_key_or_an_unsaved_related_object_and_raises_integrity_errors(
    alice, persona
):
    chat = services.conversation_create(owner=alice, persona=persona)
    insert = InsertMany(Message)
    saved = Message.objects.create(conversation=chat, role=Message.Role.USER, content="saved")
    with pytest.raises(ValueError, match="without a key"):
        insert([saved])
    with pytest.raises(ValueError, match="unsaved related object"):
        insert([Message(conversation=Conversation(owner=alice), role=Message.Role.USER)])
    with pytest.raises(IntegrityError), transaction.atomic():
        insert(_messages(chat, 2, idempotency_key="same", asked_by=alice))
