"""Bad request bodies on /v1/chat/completions: an error object naming the problem, nothing saved, the server fine."""

import json
import re

import httpx2
import pytest
from django.utils import translation

from api.errors import ApiError
from api.wire import parse_completion_request
from conversations.models import Conversation, Message
from tests.conftest import streamed_requests

pytestmark = pytest.mark.django_db(transaction=True)


def post(site, key: str, content: bytes, **headers) -> httpx2.Response:
    return httpx2.post(
        site.url("/v1/chat/completions"),
        content=content,
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json", **headers},
        timeout=30,
    )


def body(**fields) -> bytes:
    return json.dumps({"model": "helper", "messages": [{"role": "user", "content": "hi"}], **fields}).encode()


def many_messages(count: int) -> bytes:
    return json.dumps({"model": "helper", "messages": [{"role": "user", "content": "x"}] * count}).encode()


CASES = [
    ("malformed JSON", b'{"model": "helper", "messages": [', 400, None, "not valid JSON"),
    ("not an object", b'["helper"]', 400, None, "JSON object"),
    ("model of the wrong type", json.dumps({"model": 5, "messages": []}).encode(), 400, "model", "string"),
    ("missing messages", json.dumps({"model": "helper"}).encode(), 400, "messages", "required"),
    ("messages not an array", body(messages="hi"), 400, "messages", "array"),
    ("empty messages", body(messages=[]), 400, "messages", "at least one"),
    ("a message not an object", body(messages=["hi"]), 400, "messages[0]", "object"),
    ("unknown role", body(messages=[{"role": "robot", "content": "hi"}]), 400, "messages[0].role", "robot"),
    ("tool role", body(messages=[{"role": "tool", "content": "hi"}]), 400, "messages[0].role", "not supported"),
    ("content not text", body(messages=[{"role": "user", "content": 7}]), 400, "messages[0].content", "text"),
    ("blank content", body(messages=[{"role": "user", "content": "  "}]), 400, "messages[0].content", "Type"),
    ("last not the user's", body(messages=[{"role": "assistant", "content": "hi"}]), 400, "messages[0].role", "last"),
    ("stream not a boolean", body(stream="yes"), 400, "stream", "true or false"),
    ("temperature out of range", body(temperature=9), 400, "temperature", "0 to 2"),
    ("max_tokens a boolean", body(max_tokens=True), 400, "max_tokens", "integer"),
    ("n above 1", body(n=2), 400, "n", "one choice"),
    ("tools", body(tools=[{"type": "function"}]), 400, "tools", "no tools"),
    ("a conversation id not a UUID", body(metadata={"conversation_id": "42"}), 400, "metadata.conversation_id", "UUID"),
    ("NaN", b'{"model": "helper", "temperature": NaN, "messages": []}', 400, None, "not valid JSON"),
    ("deep nesting", b"[" * 100_000 + b"]" * 100_000, 400, None, "not valid JSON"),
    ("non-UTF-8", b'{"model": "helper", "messages": [{"role": "user", "content": "\xff\xfe"}]}', 400, None, "UTF-8"),
    ("10,000 messages", many_messages(10_000), 400, "messages", "the limit is 1000"),
    ("a 2 MB body", body(messages=[{"role": "user", "content": "x" * 2_000_000}]), 413, None, "larger than"),
]


@pytest.mark.parametrize(("content", "status", "param", "says"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_a_bad_body_is_refused_naming_the_problem_and_saves_nothing(
    site, alice_key, make_persona, upstream, content, status, param, says
):
    make_persona("long:2", slug="helper")
    response = post(site, alice_key, content)
    assert response.status_code == status
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error" and error["param"] == param and says in error["message"]
    assert Conversation.objects.count() == 0 and Message.objects.count() == 0 and not streamed_requests(upstream)
    # The server is unaffected: the next good request is answered.
    assert post(site, alice_key, body()).status_code == 200


# Bodies whose 400 names a type or a JSON syntax error: the message's own words, the field name aside.
TRANSLATED_CASES = [
    ("a string", json.dumps({"model": 5, "messages": []}).encode(), "model"),
    ("true or false", body(stream="yes"), "stream"),
    ("an integer", body(max_tokens=True), "max_tokens"),
    ("an object", body(metadata=[1]), "metadata"),
    ("an array", body(messages="hi"), "messages"),
    ("a value is missing", b'{"model": "helper", "messages": [', ""),
    ("a comma is missing", b'{"model": "helper" "messages": []}', ""),
    ("a string is not closed", b'{"model": "helper', ""),
    ("more text after the JSON value", b"{} {}", ""),
]


def english_words(message: str, param: str) -> list[str]:
    """Return the words of `message` in Latin letters but the field's name and JSON's own (JSON, true, false)."""
    return [
        w
        for w in re.findall("[A-Za-z_]{2,}", message.replace(param, "") if param else message)
        if w not in ("JSON", "true", "false")
    ]


@pytest.mark.parametrize(("english", "content", "param"), TRANSLATED_CASES, ids=[c[0] for c in TRANSLATED_CASES])
def test_a_400_reads_wholly_in_the_callers_language(english, content, param):
    with translation.override("en"), pytest.raises(ApiError) as refused:
        parse_completion_request(content, conversation_header=None)
    assert english in refused.value.message
    with translation.override("zh-hans"), pytest.raises(ApiError) as refused:
        parse_completion_request(content, conversation_header=None)
    assert not english_words(refused.value.message, param), refused.value.message


def test_the_400_over_http_follows_accept_language(site, alice_key):
    response = post(site, alice_key, body(max_tokens=True), **{"Accept-Language": "zh-Hans"})
    message = response.json()["error"]["message"]
    assert response.status_code == 400 and "max_tokens" in message
    assert not english_words(message, "max_tokens"), message


def test_a_body_larger_than_declared_is_still_cut_at_the_limit(site, alice_key, persona):
    huge = body(messages=[{"role": "user", "content": "x" * 2_000_000}])
    response = httpx2.post(
        site.url("/v1/chat/completions"),
        content=iter([huge]),  # Sent chunked: no Content-Length to refuse it by.
        headers={"Authorization": f"Bearer {alice_key}"},
        timeout=30,
    )
    assert response.status_code == 413 and response.json()["error"]["code"] == "request_too_large"


def test_other_methods_are_405_with_an_error_object(site, alice_key):
    response = httpx2.get(site.url("/v1/chat/completions"), headers={"Authorization": f"Bearer {alice_key}"})
    assert response.status_code == 405 and "POST" in response.headers["Allow"]
    assert response.json()["error"]["message"]


def test_an_unknown_path_under_v1_is_a_404_error_object(site, alice_key):
    response = httpx2.post(site.url("/v1/embeddings"), json={}, headers={"Authorization": f"Bearer {alice_key}"})
    assert response.status_code == 404 and response.json()["error"]["code"] == "unknown_url"
    assert "/v1/embeddings" in response.json()["error"]["message"]
