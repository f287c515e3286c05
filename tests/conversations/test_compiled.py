"""A select by a list of values, compiled once (conversations/compiled.py): the ORM's instances, compiled once."""

from unittest import mock

import pytest
from django.db.models.sql.compiler import SQLCompiler

from conversations import services
from conversations.compiled import SelectIn
from conversations.models import Conversation
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
