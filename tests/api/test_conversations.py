"""/v1/conversations: the key's user's own history, listed, read and exported, never anyone else's."""

import json

import pytest
from django.test import Client

from api import services as api_services
from conversations import services

# The views run the ORM through channels' database_sync_to_async, which closes connections: committed rows.
pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def web():
    """Django's test client (this folder's `client` is the openai SDK on a daphne server)."""
    return Client()


@pytest.fixture
def bearer(alice):
    return {"HTTP_AUTHORIZATION": f"Bearer {api_services.api_key_create(user=alice, name='cli')[1]}"}


@pytest.fixture
def chat(alice, persona):
    """Alice's conversation: the greeting, a question and its answer."""
    conversation = services.conversation_create(owner=alice, persona=persona)
    services.messages_append(conversation=conversation, turns=[("user", "你好，第一个问题"), ("assistant", "**答案**")])
    conversation.title = "第一个问题"
    conversation.save(update_fields=["title"])
    return conversation


def test_list_holds_the_users_conversations_newest_first(web, bearer, chat, alice, bob, persona):
    services.conversation_create(owner=bob, persona=persona)
    newer = services.conversation_create(owner=alice, persona=persona)
    response = web.get("/v1/conversations", **bearer)
    assert response.status_code == 200
    body = response.json()
    assert [item["id"] for item in body["data"]] == [str(newer.public_id), str(chat.public_id)]
    assert body["data"][1] == {
        "id": str(chat.public_id),
        "object": "conversation",
        "title": "第一个问题",
        "persona": persona.slug,
        "created": body["data"][1]["created"],
        "updated": body["data"][1]["updated"],
    }
    assert body["has_more"] is False


def test_list_pages_with_limit_and_after(web, bearer, alice, persona):
    made = [services.conversation_create(owner=alice, persona=persona) for _ in range(3)]
    first = web.get("/v1/conversations", {"limit": 2}, **bearer).json()
    assert first["has_more"] is True
    second = web.get("/v1/conversations", {"limit": 2, "after": first["data"][-1]["id"]}, **bearer).json()
    ids = [item["id"] for item in first["data"] + second["data"]]
    assert sorted(ids) == sorted(str(c.public_id) for c in made)
    assert second["has_more"] is False


@pytest.mark.parametrize(
    ("query", "param"), [({"limit": "0"}, "limit"), ({"limit": "x"}, "limit"), ({"after": "nope"}, "after")]
)
def test_list_refuses_bad_paging_naming_the_parameter(web, bearer, query, param):
    response = web.get("/v1/conversations", query, **bearer)
    assert response.status_code == 400
    assert response.json()["error"]["param"] == param


def test_detail_is_the_export_record_with_the_messages(web, bearer, chat):
    response = web.get(f"/v1/conversations/{chat.public_id}", **bearer)
    assert response.status_code == 200
    record = response.json()
    assert record["id"] == str(chat.public_id)
    assert record["persona"]["slug"] == chat.persona.slug
    assert [(m["role"], m["content"]) for m in record["messages"]] == [
        ("assistant", "Hello! How can I help?"),
        ("user", "你好，第一个问题"),
        ("assistant", "**答案**"),
    ]


def test_export_is_the_pages_markdown(web, bearer, chat):
    response = web.get(f"/v1/conversations/{chat.public_id}/export", **bearer)
    assert response.status_code == 200
    assert response["Content-Type"] == "text/markdown; charset=utf-8"
    text = response.content.decode()
    assert text.startswith("# 第一个问题\n")
    assert "### User\n\n你好，第一个问题\n" in text
    json_export = web.get(f"/v1/conversations/{chat.public_id}/export", {"format": "json"}, **bearer)
    assert json.loads(json_export.content)["conversations"][0]["id"] == str(chat.public_id)
    refused = web.get(f"/v1/conversations/{chat.public_id}/export", {"format": "pdf"}, **bearer)
    assert refused.status_code == 400
    assert refused.json()["error"]["param"] == "format"


@pytest.mark.parametrize("suffix", ["", "/export"])
def test_another_users_conversation_is_not_found(web, bob, persona, bearer, suffix):
    bobs = services.conversation_create(owner=bob, persona=persona)
    for public_id in (bobs.public_id, "not-a-uuid"):
        response = web.get(f"/v1/conversations/{public_id}{suffix}", **bearer)
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "conversation_not_found"


@pytest.mark.parametrize("path", ["/v1/conversations", "/v1/conversations/{id}", "/v1/conversations/{id}/export"])
def test_a_session_cookie_is_not_a_key(web, alice, chat, path):
    web.force_login(alice)
    response = web.get(path.format(id=chat.public_id))
    assert response.status_code == 401
    assert response.json()["error"]["type"] == "authentication_error"


def test_only_get_is_allowed(web, bearer):
    assert web.post("/v1/conversations", **bearer).status_code == 405


def test_list_and_detail_take_a_fixed_number_of_queries(web, bearer, chat, alice, persona, django_assert_num_queries):
    for _ in range(3):
        services.conversation_create(owner=alice, persona=persona)
    web.get("/v1/conversations", **bearer)  # The key's first use is recorded once.
    # The key with its user and the site's and groups' API switches, then the page (personas joined).
    with django_assert_num_queries(2):
        assert len(web.get("/v1/conversations", **bearer).json()["data"]) == 4
    # The key with the switches, the conversation (persona, model, provider joined), its messages.
    with django_assert_num_queries(3):
        assert len(web.get(f"/v1/conversations/{chat.public_id}", **bearer).json()["messages"]) == 3
