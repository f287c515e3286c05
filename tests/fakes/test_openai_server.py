"""The fake OpenAI server, driven by the real ``openai`` SDK and raw HTTP."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import openai
import pytest

from tests.fakes.openai_server import (
    DEMO_MODELS,
    MODELS_CREATED,
    Behaviour,
    FakeOpenAIServer,
    fixtures_dir,
    split_deltas,
    split_events,
)
from tests.waiting import async_wait_until

USER = [{"role": "user", "content": "hello fake"}]
MANIFEST = json.loads((fixtures_dir() / "manifest.json").read_text())
SSE_FIXTURES = sorted(e["file"] for e in MANIFEST if e["file"].endswith(".sse"))
BODY_FIXTURES = sorted(e["file"] for e in MANIFEST if not e["file"].endswith(".sse"))


@pytest.fixture(scope="module")
def running_server():
    with FakeOpenAIServer() as server:
        yield server


@pytest.fixture
def server(running_server):
    running_server.clear()
    running_server.delay_ms = 0
    return running_server


@pytest.fixture
def client(server):
    return openai.AsyncOpenAI(base_url=server.base_url, api_key="test", max_retries=0)


async def collect(client, model, **kwargs):
    """Return the SDK's chunks for one streamed completion."""
    stream = await client.chat.completions.create(model=model, messages=USER, stream=True, **kwargs)
    return [chunk async for chunk in stream]


def contents(chunks):
    return [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]


async def raw_post(server, model, stream=True):
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{server.base_url}/chat/completions",
            json={"model": model, "messages": USER, "stream": stream},
            headers={"Authorization": "Bearer test"},
        ) as response,
    ):
        return response.status, response.headers.copy(), await response.read()


# -- generated streams -------------------------------------------------------


@pytest.mark.asyncio
async def test_default_stream_quotes_the_user_and_ends_with_usage(client):
    chunks = await collect(client, "fake-echo", stream_options={"include_usage": True})

    text = "".join(contents(chunks))
    assert text.startswith("You said: **hello fake**\n\n")
    assert "```python\n" in text and "\n- " in text
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert chunks[-1].choices == []
    assert chunks[-1].usage.prompt_tokens == 2
    assert chunks[-1].usage.completion_tokens == len(contents(chunks)) == len(split_deltas(text))
    assert all(c.model == "fake-echo" and c.id.startswith("chatcmpl-fake") for c in chunks)


@pytest.mark.asyncio
async def test_stream_without_include_usage_has_no_usage_chunk(client):
    chunks = await collect(client, "long:2")

    assert all(c.choices and c.usage is None for c in chunks)


@pytest.mark.asyncio
async def test_wire_format_matches_openai_events(server):
    status, headers, body = await raw_post(server, "long:2")

    assert status == 200
    assert headers["Content-Type"].startswith("text/event-stream")
    assert headers["Transfer-Encoding"] == "chunked"
    events = body.decode().split("\n\n")
    assert events[-2:] == ["data: [DONE]", ""]
    first = json.loads(events[0].removeprefix("data: "))
    assert first["object"] == "chat.completion.chunk"
    assert first["choices"] == [
        {
            "index": 0,
            "delta": {"role": "assistant", "content": "", "refusal": None},
            "logprobs": None,
            "finish_reason": None,
        }
    ]
    finish = json.loads(events[3].removeprefix("data: "))
    assert finish["choices"][0]["delta"] == {} and finish["choices"][0]["finish_reason"] == "stop"


@pytest.mark.asyncio
async def test_long_yields_exactly_n_numbered_deltas(client):
    chunks = await collect(client, "long:25")

    assert contents(chunks) == [f"w{i} " for i in range(25)]


@pytest.mark.asyncio
async def test_echo_raw_streams_the_last_user_message_unchanged_one_character_per_delta(client):
    text = " <b>x</b>\r\n```\n\\u2028\u2028 é "
    messages = [
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": "ok"},
        {"role": "user", "content": text},
    ]
    stream = await client.chat.completions.create(model="echo-raw", messages=messages, stream=True)
    chunks = [chunk async for chunk in stream]
    completion = await client.chat.completions.create(model="echo-raw+delay:1", messages=messages)

    assert contents(chunks) == list(text)
    assert completion.choices[0].message.content == text


@pytest.mark.asyncio
async def test_finish_reason_is_configurable(client):
    chunks = await collect(client, "long:1+finish:length")

    assert [c.choices[0].finish_reason for c in chunks if c.choices[0].finish_reason] == ["length"]


@pytest.mark.asyncio
@pytest.mark.parametrize("model", ["fake-echo", "long:7+finish:length"])
async def test_non_streaming_returns_the_text_the_stream_would_have(client, model):
    completion = await client.chat.completions.create(model=model, messages=USER)
    chunks = await collect(client, model)

    assert completion.object == "chat.completion"
    assert completion.choices[0].message.content == "".join(contents(chunks))
    finish_reasons = [c.choices[0].finish_reason for c in chunks if c.choices[0].finish_reason]
    assert [completion.choices[0].finish_reason] == finish_reasons
    assert completion.usage.completion_tokens == len(contents(chunks))


# -- replay ------------------------------------------------------------------


@pytest.mark.asyncio
@pytest.mark.parametrize("name", SSE_FIXTURES)
async def test_sse_fixture_replays_byte_for_byte(server, name):
    status, headers, body = await raw_post(server, f"replay:{name}")

    assert status == 200
    assert headers["Content-Type"].startswith("text/event-stream")
    assert body == (fixtures_dir() / name).read_bytes()


@pytest.mark.asyncio
@pytest.mark.parametrize("name", BODY_FIXTURES)
async def test_body_fixture_replays_with_recorded_status(server, name):
    entry = next(e for e in MANIFEST if e["file"] == name)

    status, headers, body = await raw_post(server, f"replay:{name}", stream=False)

    assert status == entry["status"]
    expected_type = "text/plain" if name.endswith(".txt") else "application/json"
    assert headers["Content-Type"].split(";")[0] == expected_type
    assert headers.get("Retry-After") == entry.get("response_headers", {}).get("retry-after")
    assert body == (fixtures_dir() / name).read_bytes()


@pytest.mark.asyncio
async def test_replay_streams_one_event_at_a_time(server):
    name = "openai_stream_finish_length.sse"
    reads = []
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{server.base_url}/chat/completions",
            headers={"Authorization": "Bearer t"},
            json={"model": f"replay:{name}+delay:30", "stream": True},
        ) as response,
    ):
        async for data in response.content.iter_any():
            reads.append(data)

    assert len(reads) > 1
    assert b"".join(reads) == (fixtures_dir() / name).read_bytes()
    assert len(split_events(b"".join(reads))) == 5


@pytest.mark.asyncio
async def test_replay_of_unknown_fixture_is_a_bad_request(client):
    with pytest.raises(openai.BadRequestError, match="no fixture named"):
        await collect(client, "replay:../manifest.json")


# -- errors ------------------------------------------------------------------


@pytest.mark.asyncio
@pytest.mark.parametrize("stream", [True, False])
@pytest.mark.parametrize(
    ("model", "error", "code"),
    [
        ("status:401", openai.AuthenticationError, "invalid_api_key"),
        ("status:404", openai.NotFoundError, "model_not_found"),
        ("status:429", openai.RateLimitError, "rate_limit_exceeded"),
        ("quota", openai.RateLimitError, "insufficient_quota"),
        ("status:400", openai.BadRequestError, "context_length_exceeded"),
        ("status:503", openai.InternalServerError, None),
        ("status:500", openai.InternalServerError, None),
        ("status:502", openai.InternalServerError, None),
    ],
)
async def test_status_fault_raises_the_sdk_error(client, model, error, code, stream):
    with pytest.raises(error) as caught:
        await client.chat.completions.create(model=model, messages=USER, stream=stream)

    assert caught.value.code == code


@pytest.mark.asyncio
async def test_rate_limit_sends_retry_after(server):
    _, headers, _ = await raw_post(server, "status:429")
    _, overridden, _ = await raw_post(server, "status:429+retry-after:0.5")

    assert (headers["Retry-After"], headers["Retry-After-Ms"]) == ("20", "20000")
    assert (overridden["Retry-After"], overridden["Retry-After-Ms"]) == ("0.5", "500")


@pytest.mark.asyncio
async def test_503_is_plain_text(server):
    status, headers, body = await raw_post(server, "status:503")

    assert (status, headers["Content-Type"]) == (503, "text/plain")
    assert body == (fixtures_dir() / "error_503_upstream_connect_text_plain.txt").read_bytes()


@pytest.mark.asyncio
async def test_cut_raises_connection_error_after_n_deltas(client):
    seen = []
    with pytest.raises(openai.APIConnectionError):
        stream = await client.chat.completions.create(model="long:10+cut:3", messages=USER, stream=True)
        async for chunk in stream:
            seen.extend(contents([chunk]))

    assert seen == ["w0 ", "w1 ", "w2 "]


@pytest.mark.asyncio
async def test_cut_aborts_without_chunked_terminator(server):
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    body = json.dumps({"model": "long:5+cut:2", "messages": USER, "stream": True}).encode()
    writer.write(
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer t\r\n"
        b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
    )
    raw = b""
    try:
        while data := await reader.read(65536):
            raw += data
    except ConnectionResetError:
        pass
    writer.close()

    assert b'"content":"w1 "' in raw
    assert b"[DONE]" not in raw and b'finish_reason":"stop' not in raw
    assert not raw.endswith(b"0\r\n\r\n")


@pytest.mark.asyncio
async def test_nofinish_ends_with_done_and_no_finish_reason(client, server):
    chunks = await collect(client, "long:9+nofinish:4")
    _, _, body = await raw_post(server, "nofinish:2")

    assert contents(chunks) == ["w0 ", "w1 ", "w2 ", "w3 "]
    assert all(c.choices[0].finish_reason is None for c in chunks)
    assert body.endswith(b"data: [DONE]\n\n") and b'"finish_reason":"stop"' not in body


@pytest.mark.asyncio
async def test_error_sends_server_error_event_mid_stream(client, server):
    seen = []
    with pytest.raises(openai.APIError, match="The server had an error"):
        stream = await client.chat.completions.create(model="long:9+error:2", messages=USER, stream=True)
        async for chunk in stream:
            seen.extend(contents([chunk]))
    _, _, body = await raw_post(server, "long:9+error:2")

    assert seen == ["w0 ", "w1 "]
    assert body.endswith(b'"type":"server_error","param":null,"code":null}}\n\ndata: [DONE]\n\n')


@pytest.mark.asyncio
@pytest.mark.parametrize("segment", ["long:many", "delay:-5", "status:200", "cut:"])
async def test_malformed_model_argument_is_a_bad_request(client, segment):
    with pytest.raises(openai.BadRequestError, match=re.escape(segment)):
        await collect(client, f"fake-echo+{segment}")


# -- pacing ------------------------------------------------------------------


@pytest.mark.asyncio
async def test_stall_delays_the_second_delta(client):
    arrivals = []
    stream = await client.chat.completions.create(model="long:3+stall:0.3", messages=USER, stream=True)
    async for chunk in stream:
        if contents([chunk]):
            arrivals.append(time.monotonic())

    assert len(arrivals) == 3
    assert arrivals[1] - arrivals[0] >= 0.2


@pytest.mark.asyncio
async def test_delay_spreads_chunks_over_time(client, server):
    server.delay_ms = 20
    started = time.monotonic()
    chunks = await collect(client, "long:10")

    assert len(chunks) == 12
    assert time.monotonic() - started >= 0.15


@pytest.mark.asyncio
async def test_ttfb_delays_the_response_headers(client):
    started = time.monotonic()
    await client.chat.completions.create(model="ttfb:250+long:1", messages=USER, stream=True)

    assert time.monotonic() - started >= 0.2


@pytest.mark.asyncio
@pytest.mark.parametrize("model", ["long:200+delay:10", "long:5+stall:30"], ids=["between deltas", "stalled"])
async def test_a_client_hanging_up_mid_stream_is_logged_with_the_deltas_sent(client, server, model):
    await collect(client, "long:3")  # a stream read to its end is no hangup
    stream = await client.chat.completions.create(model=model, messages=USER, stream=True)
    async for chunk in stream:
        if contents([chunk]):
            break
    await stream.close()

    [hangup] = await async_wait_until(lambda: server.hangups)
    assert hangup.model == model and 1 <= hangup.sent < hangup.deltas
    server.clear()
    assert server.hangups == []


# -- bookkeeping, models, auth ----------------------------------------------


@pytest.mark.asyncio
async def test_requests_are_recorded_and_cleared(client, server):
    await collect(client, "long:1")

    [recorded] = server.requests
    assert (recorded.method, recorded.path) == ("POST", "/v1/chat/completions")
    assert recorded.headers["authorization"] == "Bearer test"
    assert recorded.body["model"] == "long:1" and recorded.body["messages"] == USER
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{server.port}/_fake/requests") as response,
    ):
        assert (await response.json())[0]["body"]["stream"] is True
    server.clear()
    assert server.requests == []


@pytest.mark.asyncio
async def test_models_lists_configured_ids(client):
    page = await client.models.list()

    assert [m.id for m in page.data] == ["fake-echo", "fake-long", "gpt-4o-mini"]
    assert {m.owned_by for m in page.data} == {"fake"}
    assert all("display_name" not in m.model_extra for m in page.data)


# -- the demo's models ---------------------------------------------------------


def test_fixtures_live_in_the_repository(monkeypatch):
    repo = Path(__file__).resolve().parents[2]
    monkeypatch.delenv("CHAT_FIXTURES_DIR", raising=False)

    assert fixtures_dir() == repo / "tests" / "fixtures" / "upstream"
    assert (fixtures_dir() / "manifest.json").is_file()
    assert (repo / "tests" / "fixtures" / "xss" / "payloads.txt").is_file()


@pytest.mark.asyncio
async def test_demo_models_are_listed_with_their_labels():
    with FakeOpenAIServer(model_ids=DEMO_MODELS) as server:
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"{server.base_url}/models", headers={"Authorization": "Bearer t"}) as response,
        ):
            listed = await response.json()

    assert listed["object"] == "list"
    assert listed["data"] == [
        {"id": model_id, "object": "model", "created": MODELS_CREATED, "owned_by": "fake", "display_name": label}
        for model_id, label in DEMO_MODELS.items()
    ]
    assert all(label.startswith("Demo") for label in DEMO_MODELS.values())
    assert {"fake-echo", "long:400+delay:30", "status:429", "status:401", "status:503", "quota"} <= set(DEMO_MODELS)
    kinds = {segment.partition(":")[0] for model_id in DEMO_MODELS for segment in model_id.split("+")}
    assert {"cut", "error", "stall", "nofinish", "finish", "replay"} <= kinds


@pytest.mark.asyncio
@pytest.mark.parametrize("model", list(DEMO_MODELS))
async def test_every_demo_model_is_answered_as_intended(client, model):
    behaviour = Behaviour.parse(model)
    expected_status = 429 if behaviour.quota else behaviour.status

    try:
        stream = await client.chat.completions.create(model=model, messages=USER, stream=True)
    except openai.APIStatusError as exc:
        assert "no fixture" not in str(exc)
        assert exc.status_code == expected_status
        return
    try:
        first = await stream.__anext__()  # the first chunk only: a stall or a fault comes later
    finally:
        await stream.close()

    assert expected_status is None
    assert first.choices is not None


@pytest.mark.asyncio
async def test_configured_api_key_rejects_others():
    with FakeOpenAIServer(api_key="right", model_ids=["only"]) as server:
        wrong = openai.AsyncOpenAI(base_url=server.base_url, api_key="wrong", max_retries=0)
        right = openai.AsyncOpenAI(base_url=server.base_url, api_key="right", max_retries=0)

        with pytest.raises(openai.AuthenticationError) as caught:
            await wrong.chat.completions.create(model="long:1", messages=USER)
        page = await right.models.list()

    assert caught.value.code == "invalid_api_key"
    assert [m.id for m in page.data] == ["only"]


@pytest.mark.asyncio
async def test_missing_bearer_token_gets_401(server):
    async with aiohttp.ClientSession() as session, session.get(f"{server.base_url}/models") as response:
        assert response.status == 401
        assert (await response.json())["error"]["type"] == "invalid_request_error"


def test_command_line_serves_and_prints_its_url():
    repo = Path(__file__).resolve().parents[2]
    env = {k: v for k, v in os.environ.items() if k != "CHAT_FIXTURES_DIR"}  # the repository's own fixtures
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.fakes.openai_server", "--port", "0", "--delay-ms", "0"],
        cwd=repo,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        line = process.stdout.readline().strip()
        match = re.fullmatch(r"fake OpenAI server on (http://127\.0\.0\.1:\d+/v1)", line)
        assert match, line
        client = openai.OpenAI(base_url=match[1], api_key="k", max_retries=0)
        completion = client.chat.completions.create(model="long:2", messages=USER)
        assert completion.choices[0].message.content == "w0 w1 "
        listed = client.models.list().data
        assert [(m.id, m.model_extra["display_name"]) for m in listed] == list(DEMO_MODELS.items())
        replayed = client.chat.completions.create(
            model="replay:openai_stream_finish_length.sse", messages=USER, stream=True
        )
        assert [c.choices[0].finish_reason for c in replayed if c.choices][-1] == "length"
        with pytest.raises(openai.RateLimitError) as caught:
            client.chat.completions.create(model="quota", messages=USER)
        assert caught.value.code == "insufficient_quota"
    finally:
        process.terminate()
        process.wait(timeout=5)
