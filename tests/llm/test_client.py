"""`llm.client`: the event stream reader, and the requests' messages (against the fake upstream)."""

import asyncio

import openai.resources.chat.completions.completions as sdk_completions
import pytest

import llm
from llm import client as llm_client
from llm.client import sse_data


def events(*chunks: bytes) -> list[str]:
    async def read() -> list[str]:
        async def body():
            for chunk in chunks:
                yield chunk

        return [data async for data in sse_data(body())]

    return asyncio.run(read())


def test_each_event_ends_at_a_blank_line():
    assert events(b'data: {"a": 1}\n\ndata: {"b": 2}\n\ndata: [DONE]\n\n') == ['{"a": 1}', '{"b": 2}', "[DONE]"]


def test_data_lines_of_one_event_are_joined_by_newlines_and_one_leading_space_goes():
    assert events(b"data: first\ndata:second\ndata:  third\n\n") == ["first\nsecond\n third"]


def test_comments_other_fields_and_empty_events_are_skipped():
    assert events(b": keep-alive\n\nevent: message\nid: 7\nretry: 10\ndata: x\n\n\n\n") == ["x"]


def test_an_event_cut_off_by_the_end_of_the_body_is_not_dispatched():
    # WHATWG HTML, server-sent events §9.2.6; the openai SDK reads it the same way.
    assert events(b'data: whole\n\ndata: {"error": {"message": "cut"}}') == ["whole"]


def test_lines_end_at_crlf_lf_or_cr_wherever_the_chunks_split():
    body = b"data: a\r\n\r\ndata: b\r\rdata: c\n\n"
    assert events(body) == ["a", "b", "c"]
    assert events(*(body[i : i + 1] for i in range(len(body)))) == ["a", "b", "c"]  # A CRLF split in two.
    assert events(b"data: a\r", b"\r") == ["a"]  # A CR at the very end ends its line.


def test_unicode_line_separators_inside_the_json_do_not_split_it():
    # JSON strings may hold U+2028, U+2029, U+0085 unescaped; str.splitlines (httpx's aiter_lines) splits there.
    text = '{"content": "a\u2028b\u2029c\u0085d\x1ce"}'
    assert events(f"data: {text}\n\n".encode()) == [text]


def test_a_character_split_across_chunks_arrives_whole():
    body = "data: 你好\n\n".encode()
    assert events(body[:8], body[8:]) == ["你好"]


async def test_the_messages_reach_the_upstream_as_given_without_the_sdks_walk_over_them(upstream, monkeypatch):
    """The SDK's transform of `messages` costs the event loop 0.14 ms a message and changes nothing: it is skipped."""
    transformed = []
    transform = sdk_completions.async_maybe_transform

    async def recording(data, expected_type):
        transformed.append(data.get("messages"))
        return await transform(data, expected_type)

    monkeypatch.setattr(sdk_completions, "async_maybe_transform", recording)
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "assistant", "content": "Hello!"},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Look"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
            ],
        },
    ]
    config = llm.UpstreamConfig(base_url=upstream.base_url, api_key="k")
    request = llm.ChatRequest(model="long:2", messages=messages, max_tokens=5)
    events = [event async for event in llm.stream_chat(config, request)]
    await llm.complete_once(config, request)

    assert isinstance(events[-1], llm.Finish)
    sent = [r.body for r in upstream.requests if r.path.endswith("/chat/completions")]
    assert [body["messages"] for body in sent] == [messages, messages]
    assert sent[0]["stream"] is True and sent[0]["stream_options"] == {"include_usage": True}
    assert transformed == [[], []]


async def test_one_sdk_client_serves_each_config_and_a_changed_key_or_host_gets_its_own(upstream):
    """Built once per loop and config (building one per request cost a third of a stream's start); a new key is used."""
    old = llm.UpstreamConfig(base_url=upstream.base_url, api_key="old-key")
    new = llm.UpstreamConfig(base_url=upstream.base_url, api_key="new-key")
    request = llm.ChatRequest(model="long:1", messages=[{"role": "user", "content": "Hi"}])
    for config in (old, old, new, old):
        assert isinstance([event async for event in llm.stream_chat(config, request)][-1], llm.Finish)

    assert [r.headers["authorization"] for r in upstream.requests] == [
        "Bearer old-key",
        "Bearer old-key",
        "Bearer new-key",
        "Bearer old-key",
    ]
    assert llm_client._client(old) is llm_client._client(old)
    assert llm_client._client(new) is not llm_client._client(old)
    other_host = llm.UpstreamConfig(base_url=upstream.base_url.replace("127.0.0.1", "localhost"), api_key="old-key")
    assert str(llm_client._client(other_host).base_url).startswith("http://localhost:")


async def test_the_sdk_clients_kept_are_bounded_and_start_afresh_with_a_new_http_client(upstream, monkeypatch):
    monkeypatch.setattr(llm_client, "SDK_CLIENTS_KEPT", 2)
    configs = [llm.UpstreamConfig(base_url=upstream.base_url, api_key=f"key-{i}") for i in range(3)]
    first = llm_client._client(configs[0])
    llm_client._client(configs[1])
    llm_client._client(configs[2])  # Drops the oldest, configs[0]'s.

    clients = llm_client._loop_clients_now()
    assert list(clients.sdk) == configs[1:]
    assert llm_client._client(configs[0]) is not first

    await clients.http.aclose()
    renewed = llm_client._client(configs[2])
    assert llm_client._loop_clients_now().http is not clients.http
    assert list(llm_client._loop_clients_now().sdk) == [configs[2]]
    assert isinstance(
        [e async for e in llm.stream_chat(configs[2], llm.ChatRequest(model="long:1", messages=[]))][-1], llm.Finish
    )
    assert renewed is llm_client._client(configs[2])


async def test_on_sending_is_called_once_the_request_is_built_before_the_upstream_has_it_and_only_once(upstream):
    config = llm.UpstreamConfig(base_url=upstream.base_url, api_key="k")
    request = llm.ChatRequest(model="long:2", messages=[{"role": "user", "content": "Hi"}])
    seen: list[int] = []  # The requests the upstream had each time on_sending was called.

    events = [e async for e in llm.stream_chat(config, request, on_sending=lambda: seen.append(len(upstream.requests)))]
    await llm.complete_once(config, request)  # A later request of the same task does not call it again.

    assert isinstance(events[-1], llm.Finish)
    assert seen == [0] and len(upstream.requests) == 2


async def test_on_sending_of_a_request_that_failed_before_it_was_built_is_not_called_by_a_later_one(
    upstream, monkeypatch
):
    config = llm.UpstreamConfig(base_url=upstream.base_url, api_key="k")
    request = llm.ChatRequest(model="long:2", messages=[{"role": "user", "content": "Hi"}])
    seen: list[str] = []

    def refusing(_messages):
        raise ValueError("no such role")

    with monkeypatch.context() as patched:
        patched.setattr(llm_client, "_messages_body", refusing)
        with pytest.raises(ValueError):
            [e async for e in llm.stream_chat(config, request, on_sending=lambda: seen.append("failed"))]
    assert await llm.complete_once(config, request)  # A title's, say, in the same task.
    assert seen == []
