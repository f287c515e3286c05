"""`llm.client`: the event stream reader, and the requests' messages (against the fake upstream)."""

import asyncio
import contextlib
import gzip

import httpx2
import openai.resources.chat.completions.completions as sdk_completions
import pytest
from aiohttp import web

import llm
from llm import client as llm_client
from llm.client import SSEDecoder
from tests.fakes.loopback import LoopbackServer
from tests.fakes.openai_server import fixtures_dir


def events(*chunks: bytes) -> list[str]:
    decoder = SSEDecoder()
    return [data for chunk in chunks for data in decoder.feed(chunk)] + decoder.end()


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
    assert events(b"data: a\n\ndata: b", b"\r\rdata: c\n", b"\n") == ["a", "b", "c"]  # LF only, then CRs.


def test_unicode_line_separators_inside_the_json_do_not_split_it():
    # JSON strings may hold U+2028, U+2029, U+0085 unescaped; str.splitlines (httpx's aiter_lines) splits there.
    text = '{"content": "a\u2028b\u2029c\u0085d\x1ce"}'
    assert events(f"data: {text}\n\n".encode()) == [text]


def test_a_character_split_across_chunks_arrives_whole():
    body = "data: 你好\n\n".encode()
    assert events(body[:8], body[8:]) == ["你好"]


class _FixedBody(LoopbackServer):
    """Answers every chat completion with `body`, an event stream unless `content_type` says, with `headers` besides."""

    def __init__(
        self, body: bytes, headers: dict[str, str] | None = None, *, content_type: str = "text/event-stream"
    ) -> None:
        super().__init__()
        self.body = body
        self.headers = headers or {}
        self.content_type = content_type

    def make_app(self) -> web.Application:
        async def answer(_request: web.Request) -> web.Response:
            return web.Response(body=self.body, content_type=self.content_type, headers=self.headers)

        app = web.Application()
        app.router.add_post("/v1/chat/completions", answer)
        return app


def _texts(events: list) -> str:
    return "".join(event.text for event in events if isinstance(event, llm.Delta))


async def test_a_stream_that_ends_without_done_is_read_to_its_end_a_closing_cr_ending_its_last_line():
    # A real OpenAI stream without its `data: [DONE]`, its lines ended by CRs: the usage event,
    # the last, is complete only once the body ends (its second CR could have been half a CRLF).
    recorded = (fixtures_dir() / "openai_stream_basic_usage.sse").read_bytes()
    body = recorded.replace(b"data: [DONE]\n\n", b"").replace(b"\n", b"\r")
    with _FixedBody(body) as server:
        config = llm.UpstreamConfig(base_url=server.url("/v1"), api_key="k")
        request = llm.ChatRequest(model="gpt-4o", messages=[{"role": "user", "content": "Weather?"}])
        streamed = [event async for event in llm.stream_chat(config, request)]

    assert _texts(streamed) == (
        "I'm unable to provide real-time weather updates. To get the current weather in San Francisco,"
        " I recommend checking a reliable weather website or a weather app."
    )
    assert streamed[-1] == llm.Finish(
        finish_reason="stop", model="gpt-4o-2024-08-06", prompt_tokens=14, completion_tokens=30
    )


async def test_a_compressed_stream_is_decompressed():
    # The body is read from aiohttp directly (three generators fewer a chunk) only when it is not content-encoded.
    recorded = (fixtures_dir() / "openai_stream_refusal.sse").read_bytes()
    asked: list[float] = []
    with _FixedBody(gzip.compress(recorded), {"Content-Encoding": "gzip"}) as server:
        config = llm.UpstreamConfig(base_url=server.url("/v1"), api_key="k")
        request = llm.ChatRequest(model="gpt-4o", messages=[{"role": "user", "content": "Hi"}])
        streamed = [event async for event in llm.stream_chat(config, request, pace_s=lambda: asked.append(1) or 1)]
    with _FixedBody(recorded) as server:
        config = llm.UpstreamConfig(base_url=server.url("/v1"), api_key="k")
        plain = [event async for event in llm.stream_chat(config, request)]

    assert streamed == plain and len(plain) > 2 and isinstance(plain[-1], llm.Finish)
    assert asked == []  # A decoded body is read as it comes: never paced.


async def test_a_plain_stream_is_read_from_aiohttp_not_through_httpx_generators(monkeypatch):
    # Fails if the SDK's vendored transport no longer holds the aiohttp response where `_aiohttp_response` looks.
    def through_httpx(*_args, **_kwargs):
        raise AssertionError("read through httpx's generators")

    monkeypatch.setattr(httpx2.Response, "aiter_raw", through_httpx)
    monkeypatch.setattr(httpx2.Response, "aiter_bytes", through_httpx)
    recorded = (fixtures_dir() / "openai_stream_refusal.sse").read_bytes()
    with _FixedBody(recorded) as server:
        config = llm.UpstreamConfig(base_url=server.url("/v1"), api_key="k")
        request = llm.ChatRequest(model="gpt-4o", messages=[{"role": "user", "content": "Hi"}])
        streamed = [event async for event in llm.stream_chat(config, request)]

    assert isinstance(streamed[-1], llm.Finish) and streamed[-1].finish_reason == "stop"
    assert _texts(streamed)


async def test_a_paced_stream_leaves_its_connection_unread_between_reads_and_reads_a_windows_chunks_together(
    upstream, upstream_reads
):
    config = llm.UpstreamConfig(base_url=upstream.base_url, api_key="k")
    request = llm.ChatRequest(model="long:20+delay:20", messages=[{"role": "user", "content": "Hi"}])
    events: list = []
    asked: list[int] = []  # The deltas streamed so far, each time the reader asks how long to wait.

    def pace_s() -> float:
        asked.append(len(events))
        return 0.1

    async for event in llm.stream_chat(config, request, pace_s=pace_s):
        events.append(event)

    assert _texts(events) == "".join(f"w{i} " for i in range(20)) and isinstance(events[-1], llm.Finish)
    assert len(asked) >= 2 and asked[0] >= 1  # Asked once text has come, before each read after.
    # The headers, the first delta, then 22 events 20 ms apart read about every 100 ms (each alone without pace_s).
    assert upstream_reads.count <= 12


async def test_text_sent_before_the_connection_closed_during_a_pause_is_still_read(upstream):
    # aiohttp's reader raises a connection's error before the data it holds; the socket gives its data first.
    config = llm.UpstreamConfig(base_url=upstream.base_url, api_key="k")
    request = llm.ChatRequest(model="long:20+delay:10+cut:12", messages=[{"role": "user", "content": "Hi"}])
    events: list = []
    with pytest.raises(llm.LLMError) as raised:
        async for event in llm.stream_chat(config, request, pace_s=lambda: 0.1):
            events.append(event)

    assert raised.value.kind == llm.ErrorKind.CONNECTION_DROPPED
    assert _texts(events) == "".join(f"w{i} " for i in range(12))


async def test_a_pause_lasts_at_most_half_the_read_timeout(upstream):
    # Longer, and aiohttp's read timeout, counting from the last data, would end the stream during the pause.
    config = llm.UpstreamConfig(base_url=upstream.base_url, api_key="k", read_timeout_s=0.2)
    request = llm.ChatRequest(model="long:5+delay:10", messages=[{"role": "user", "content": "Hi"}])
    events = [event async for event in llm.stream_chat(config, request, pace_s=lambda: 5.0)]

    assert _texts(events) == "w0 w1 w2 w3 w4 " and isinstance(events[-1], llm.Finish)


@pytest.mark.parametrize(
    "body, expected",
    [
        (b'{"choices": [{"index": 0, "message": {"role": "assistant", "content": "A title"}}]}', "A title"),
        (b'{"choices": [{"message": {"content": [{"type": "text", "text": "Parts"}]}}]}', "Parts"),
        (b'{"choices": [{"message": {"content": null, "refusal": "No."}}]}', "No."),
        (b'{"choices": [{"finish_reason": "stop"}]}', ""),
        (b"<html>502 Bad Gateway</html>", "could not be read"),
        (b"[1, 2]", "could not be read"),
        (b'{"choices": []}', "had no choices"),
        (b'{"choices": "none"}', "had no choices"),
        (b'{"choices": [null]}', "had no choices"),
    ],
)
async def test_a_completion_is_read_from_its_json_body(body, expected):
    # Read as JSON, not as the SDK's pydantic object: any other body is a clear error, never a crash.
    with _FixedBody(body, content_type="application/json") as server:
        config = llm.UpstreamConfig(base_url=server.url("/v1"), api_key="k")
        request = llm.ChatRequest(model="gpt-4o", messages=[{"role": "user", "content": "Hi"}], max_tokens=8)
        try:
            text = await llm.complete_once(config, request)
        except llm.LLMError as exc:
            assert exc.kind == llm.ErrorKind.BAD_RESPONSE and expected in str(exc)
        else:
            assert text == expected


class _KeepAliveOnly(LoopbackServer):
    """Answers every chat completion with a stream of keep-alive comments, one every 20 ms, that never ends."""

    def make_app(self) -> web.Application:
        async def answer(request: web.Request) -> web.StreamResponse:
            response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
            await response.prepare(request)
            with contextlib.suppress(ConnectionResetError):
                while True:
                    await response.write(b": keep-alive\n\n")
                    await asyncio.sleep(0.02)

        app = web.Application()
        app.router.add_post("/v1/chat/completions", answer)
        return app


async def test_a_stream_of_keep_alive_comments_alone_ends_at_the_total_timeout():
    # No chunk completes an event and none waits past the read timeout: only the total bound ends it.
    with _KeepAliveOnly() as server:
        config = llm.UpstreamConfig(base_url=server.url("/v1"), api_key="k", read_timeout_s=5, total_timeout_s=0.3)
        request = llm.ChatRequest(model="gpt-4o", messages=[{"role": "user", "content": "Hi"}])
        with pytest.raises(llm.LLMError) as raised:
            await asyncio.wait_for(_drained(llm.stream_chat(config, request)), timeout=10)
    assert raised.value.kind == llm.ErrorKind.TIMEOUT
    assert "longer than 0.3 s in all" in str(raised.value)


async def _drained(stream) -> list:
    return [event async for event in stream]


async def test_the_request_reaches_the_upstream_as_built_without_the_sdks_walk_over_its_parameters(
    upstream, monkeypatch
):
    """The SDK's `create` walks its forty-odd parameters and changes nothing of this body: the site posts it itself."""
    transformed = []
    transform = sdk_completions.async_maybe_transform

    async def recording(data, expected_type):
        transformed.append(data)
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
    streamed = llm.ChatRequest(model="long:2", messages=messages, temperature=0.25, top_p=0.5, max_tokens=5)
    events = [event async for event in llm.stream_chat(config, streamed)]
    await llm.complete_once(config, llm.ChatRequest(model="long:2", messages=messages, max_tokens=8))

    assert isinstance(events[-1], llm.Finish) and events[-1].completion_tokens == 2
    sent = [r for r in upstream.requests if r.path.endswith("/chat/completions")]
    assert [r.body for r in sent] == [
        {
            "model": "long:2",
            "messages": messages,
            "temperature": 0.25,
            "top_p": 0.5,
            "max_tokens": 5,
            "stream": True,
            "stream_options": {"include_usage": True},
        },
        {"model": "long:2", "messages": messages, "max_tokens": 8},  # Unset parameters are not sent: no nulls.
    ]
    assert all(r.headers["authorization"] == "Bearer k" for r in sent)
    assert transformed == []


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


async def test_on_sending_of_a_request_that_failed_before_it_was_built_is_not_called_by_a_later_one(upstream):
    config = llm.UpstreamConfig(base_url=upstream.base_url, api_key="k")
    request = llm.ChatRequest(model="long:2", messages=[{"role": "user", "content": "Hi"}])
    seen: list[str] = []

    # The SDK fails to encode the body (a part that is no JSON), after the task's on_sending was set.
    parts = [{"type": "text", "text": {1}}]
    unsendable = llm.ChatRequest(model="long:2", messages=[{"role": "user", "content": parts}])
    with pytest.raises(TypeError):
        [e async for e in llm.stream_chat(config, unsendable, on_sending=lambda: seen.append("failed"))]
    assert await llm.complete_once(config, request)  # A title's, say, in the same task.
    assert seen == []
