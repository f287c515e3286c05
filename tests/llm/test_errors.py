"""What an upstream failure shows: the provider's message, cut and scrubbed; and no redirect is followed."""

import asyncio

import pytest
from aiohttp import web

import llm
from llm.errors import UPSTREAM_MESSAGE_MAX_CHARS, _scrub

KEY = "sk-proj-Zq3VbN8rT2wLmK5pXy7Hd4Fg"


@pytest.mark.parametrize(
    "leak",
    [
        KEY,
        "sk-ant-api03-AbCdEfGhIjKlMnOp",
        "gsk_AbCdEfGhIjKlMnOpQrStUvWx",
        "xai-AbCdEfGhIjKlMnOpQrSt",
        "AIzaSyA1b2C3d4E5f6G7h8I9j0KlMnOpQrStU",
        "Bearer eyJhbGciOiJIUzI1NiJ9.payload.signature",
        "0123456789abcdef0123456789abcdef01234567",
    ],
)
def test_anything_like_a_key_is_scrubbed_from_an_upstream_message(leak):
    scrubbed = _scrub(f"Incorrect API key provided: {leak}. Find yours at the dashboard.", "sk-another-key-entirely")
    assert leak not in scrubbed and leak[8:20] not in scrubbed
    assert scrubbed.startswith("Incorrect API key provided: ***") and "Find yours at the dashboard." in scrubbed


def test_the_configured_key_is_scrubbed_whatever_it_looks_like():
    assert _scrub("echo: plain-words-key", "plain-words-key") == "echo: ***"


def test_ordinary_words_model_ids_and_numbers_stay():
    text = "The model `accounts/fireworks/models/llama-v3p1-405b-instruct` does not exist (code 404, 2048 tokens)."
    assert _scrub(text, "") == text


def test_a_long_message_is_cut_after_scrubbing():
    text = "x " * 400 + KEY
    scrubbed = _scrub(text, "")
    assert len(scrubbed) == UPSTREAM_MESSAGE_MAX_CHARS and scrubbed.endswith("…")
    straddling = "y" * (UPSTREAM_MESSAGE_MAX_CHARS - 10) + " " + KEY
    assert "sk-proj" not in _scrub(straddling, "")


async def stream_error(handler, text: str) -> llm.LLMError:
    """Stream a chat completion of `text` from a server answering with `handler`; return the LLMError raised."""
    app = web.Application()
    app.router.add_post("/v1/chat/completions", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    config = llm.UpstreamConfig(base_url=f"http://127.0.0.1:{runner.addresses[0][1]}/v1", api_key=KEY)
    request = llm.ChatRequest(model="local", messages=[{"role": "user", "content": text}])
    try:
        with pytest.raises(llm.LLMError) as raised:
            async for _event in llm.stream_chat(config, request):
                pass
    finally:
        await runner.cleanup()
    return raised.value


async def test_a_redirect_is_not_followed_and_the_key_stays_home(upstream):
    async def redirect(request: web.Request) -> web.Response:
        raise web.HTTPTemporaryRedirect(f"{upstream.base_url}/chat/completions")

    error = await stream_error(redirect, "hi")
    assert error.status == 307
    assert upstream.requests == []  # the redirect's target never saw the key


OVERFLOWS = {
    # (status, body): how providers say the prompt overflowed the model's context window.
    "openai": (
        400,
        {
            "error": {
                "message": "This model's maximum context length is 128000 tokens. However, "
                "your messages resulted in 130512 tokens.",
                "type": "invalid_request_error",
                "param": "messages",
                "code": "context_length_exceeded",
            }
        },
    ),
    "llama.cpp server": (
        400,
        {
            "error": {
                "code": 400,
                "message": "the request exceeds the available context size, try increasing it",
                "type": "exceed_context_size_error",
            }
        },
    ),
    "llama-cpp-python": (
        400,
        {
            "error": {
                "message": "Requested tokens (4050) exceed context window of 4096",
                "type": "internal_server_error",
                "param": None,
                "code": None,
            }
        },
    ),
    "anthropic compatible": (
        400,
        {"error": {"message": "prompt is too long: 210000 tokens > 200000 maximum", "type": "invalid_request_error"}},
    ),
    "llama-cpp-python, in the stream": (
        200,
        {
            "error": {
                "message": "Requested tokens (4050) exceed context window of 4096",
                "type": "internal_server_error",
            }
        },
    ),
}


@pytest.mark.parametrize("provider", OVERFLOWS)
async def test_an_overflowing_prompt_is_reported_as_too_long_for_the_context_window(provider):
    import json

    status, body = OVERFLOWS[provider]

    async def answer(request: web.Request) -> web.StreamResponse:
        if status != 200:
            return web.json_response(body, status=status)
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await response.write(f"data: {json.dumps(body)}\n\n".encode())
        return response

    error = await stream_error(answer, "长" * 5000)
    assert error.kind == llm.ErrorKind.CONTEXT_TOO_LONG
    assert "too long for the model's context window" in error.message


async def _stream_from_socket_server(handle) -> llm.LLMError:
    """Stream from a bare TCP server running `handle(reader, writer)`; return the LLMError raised."""
    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    config = llm.UpstreamConfig(base_url=f"http://127.0.0.1:{port}/v1", api_key=KEY)
    request = llm.ChatRequest(model="local", messages=[{"role": "user", "content": "hi"}])
    try:
        with pytest.raises(llm.LLMError) as raised:
            async for _event in llm.stream_chat(config, request):
                pass
    finally:
        server.close()
        await server.wait_closed()
    return raised.value


async def test_a_server_that_hangs_up_before_answering_is_unreachable_not_a_timeout():
    # The SDK's aiohttp transport reports any closed connection as a connect timeout: that would
    # tell the admin to raise a timeout that never ran out.
    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(100)
        writer.close()

    error = await _stream_from_socket_server(hang_up)
    assert error.kind == llm.ErrorKind.UNAVAILABLE
    assert "Could not connect to the provider." in error.message and "within" not in error.message


async def test_a_server_that_hangs_up_mid_stream_dropped_the_connection():
    async def cut(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(65536)
        head = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
        event = b'data: {"choices":[{"index":0,"delta":{"content":"Hel"}}]}\n\n'
        writer.write(head + b"%x\r\n%s\r\n" % (len(event), event))
        await writer.drain()
        writer.close()

    error = await _stream_from_socket_server(cut)
    assert error.kind == llm.ErrorKind.CONNECTION_DROPPED


async def test_a_completion_answered_with_a_body_that_is_not_json_is_a_bad_response():
    # The SDK returns such a body as a str (a proxy's HTML page, or an SSE stream to a plain request).
    async def page(request: web.Request) -> web.Response:
        return web.Response(text="<html>Welcome to nginx!</html>", content_type="text/html")

    app = web.Application()
    app.router.add_post("/v1/chat/completions", page)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    config = llm.UpstreamConfig(base_url=f"http://127.0.0.1:{runner.addresses[0][1]}/v1", api_key=KEY)
    request = llm.ChatRequest(model="local", messages=[{"role": "user", "content": "hi"}])
    try:
        with pytest.raises(llm.LLMError) as raised:
            await llm.complete_once(config, request)
    finally:
        await runner.cleanup()
    assert raised.value.kind == llm.ErrorKind.BAD_RESPONSE
