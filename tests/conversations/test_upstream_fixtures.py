"""Every real provider capture in tests/fixtures/upstream goes through the site correctly.

Streams and error bodies are replayed byte for byte by the fake upstream
(model "replay:<file>") to a reply sent through the websocket; the saved reply,
its status and its tokens are checked. Non-streaming bodies go through
`llm.complete_once` (the admin's connection test), the models list through
`llm.list_models` (the admin's "fetch models").
"""

import json

import pytest
from asgiref.sync import sync_to_async

import llm
from conversations import services
from conversations.models import Message
from tests.fakes.openai_server import FakeOpenAIServer, fixtures_dir
from tests.sockets import wait_for_reply

pytestmark = pytest.mark.django_db(transaction=True)

COMPLETE, ERROR = Message.Status.COMPLETE, Message.Status.ERROR

# file: (status, text the reply starts with, finish reason, prompt tokens, completion tokens, error text)
STREAMS = {
    "openai_stream_basic_usage.sse": (COMPLETE, "I'm unable to provide real-time weather updates.", "stop", 14, 30, ""),
    "openai_stream_n3_multichoice.sse": (
        COMPLETE,
        '{"city":"San Francisco","temperature":65,"units":"f"}',
        "stop",
        79,
        42,
        "",
    ),
    "openai_stream_finish_length.sse": (COMPLETE, '{"', "length", 79, 1, ""),
    "openai_stream_refusal.sse": (COMPLETE, "I'm sorry, I can't assist with that request.", "stop", 79, 11, ""),
    "openai_stream_tool_calls_parallel.sse": (COMPLETE, "", "tool_calls", 149, 60, ""),
    "openai_stream_obfuscation_usage.sse": (COMPLETE, "1, 2, 3, 4, 5", "stop", 14, 13, ""),
    "openai_stream_gpt5_moderation_trailing_chunk.sse": (COMPLETE, "Paris.", "stop", 13, 11, ""),
    "azure_openai_stream_prompt_filter.sse": (
        COMPLETE,
        "I'm unable to provide real-time weather updates.",
        "stop",
        None,
        None,
        "",
    ),
    "groq_stream_usage_in_x_groq_only.sse": (COMPLETE, "A joke about OpenTelemetry!", "stop", 18, 73, ""),
    "groq_stream_include_usage.sse": (COMPLETE, "Olá!", "stop", 20, 4, ""),
    "mistral_stream_p_padding.sse": (COMPLETE, "Here's a light-hearted joke", "stop", 11, 80, ""),
    "mistral_stream_magistral_content_array.sse": (COMPLETE, "To cross the street safely", "stop", 10, 232, ""),
    "deepseek_stream_reasoning_content.sse": (COMPLETE, "The product of 17 and 23 is 391.", "stop", 17, 47, ""),
    "together_stream_extra_fields.sse": (COMPLETE, "1, 2, 3, 4, 5.", "stop", 41, 15, ""),
    "xai_stream_usage_cost_ticks.sse": (COMPLETE, "Olá!", "stop", 165, 2, ""),
    "openrouter_stream_comment_usage.sse": (COMPLETE, "test response", "stop", 586, 3, ""),
    "llamacpp_stream_reasoning_timings.sse": (COMPLETE, "Olá!", "stop", 84, 57, ""),
    "vllm_stream_crusoe.sse": (COMPLETE, "1, 2, 3, 4, 5", "stop", 46, 14, ""),
    "error_401_invalid_api_key.json": (ERROR, "", "", None, None, "refused the API key (401)"),
    "error_404_model_not_found_stream_request.json": (ERROR, "", "", None, None, "does not know the model"),
    "error_429_rate_limit_exceeded.json": (ERROR, "", "", None, None, "rate limiting requests. Try again in 20 s"),
    "error_429_insufficient_quota.reconstructed.json": (ERROR, "", "", None, None, "out of quota"),
    "error_429_openrouter_numeric_code.json": (ERROR, "", "", None, None, "rate limiting requests"),
    "error_400_context_length_exceeded.reconstructed.json": (
        ERROR,
        "",
        "",
        None,
        None,
        "too long for the model's context window",
    ),
    "error_400_unsupported_parameter.json": (ERROR, "", "", None, None, "Unsupported parameter: 'stop'"),
    "error_503_upstream_connect_text_plain.txt": (ERROR, "", "", None, None, "unavailable right now (503)"),
    "error_midstream_groq_event_error.sse": (ERROR, "", "", None, None, "Tool call validation failed"),
    "error_midstream_openrouter_error_in_chunk.sse": (ERROR, "", "", None, None, "Token limit reached"),
    # Hand-written, unterminated final event: the SDK sees no chunk and no error.
    "error_midstream_openai_server_error.fixture.sse": (ERROR, "", "", None, None, "The reply is incomplete"),
}

NON_STREAMS = {
    "openai_nonstream_basic.json": "Hello! I'm just a computer program",
    "openai_nonstream_tool_calls.json": "",
    "groq_nonstream_x_groq.json": "A joke about OpenTelemetry! Here's one:",
    "ollama_v1_nonstream.json": "4200 + 42 = 4242",
    "gemini_compat_nonstream_tool_call_empty_id.reconstructed.json": "",
}


def manifest_files() -> list[str]:
    return [entry["file"] for entry in json.loads((fixtures_dir() / "manifest.json").read_text())]


def test_every_capture_in_the_manifest_has_an_expectation():
    assert set(manifest_files()) == set(STREAMS) | set(NON_STREAMS) | {"openai_models_list.json"}


@pytest.mark.parametrize("name", sorted(STREAMS))
async def test_capture_replayed_through_the_site_is_saved_right(name, alice, make_persona, open_socket):
    status, text, finish_reason, prompt_tokens, completion_tokens, error = STREAMS[name]
    persona = await sync_to_async(make_persona)(f"replay:{name}")
    conversation = await sync_to_async(services.conversation_create)(owner=alice, persona=persona)
    socket = await open_socket(alice, conversation.public_id)
    await socket.send("hello")
    frames = await socket.receive_final(status)

    reply = await wait_for_reply()
    assert reply.status == status
    assert reply.content.startswith(text) and (text or reply.content == "")
    assert reply.finish_reason == finish_reason
    if prompt_tokens is None and reply.content:
        # No usage in the stream: the site's own counts, marked as estimated, so quotas still hold.
        assert reply.tokens_estimated and reply.prompt_tokens > 0 and reply.completion_tokens > 0
    else:
        assert (reply.prompt_tokens, reply.completion_tokens) == (prompt_tokens, completion_tokens)
        assert not reply.tokens_estimated
    assert error in reply.error_text and (error or reply.error_text == "")
    assert "sk-test-secret-key-1234" not in "".join(frames) + reply.error_text

    # The conversation stays usable after any of them.
    await sync_to_async(type(persona.model).objects.filter(pk=persona.model_id).update)(model_id="long:2")
    await socket.send("again")
    await socket.receive_final("complete")


@pytest.mark.parametrize("name", sorted(NON_STREAMS))
async def test_non_streaming_capture_gives_its_text(name, upstream):
    config = llm.UpstreamConfig(base_url=upstream.base_url, api_key="k")
    text = await llm.complete_once(
        config, llm.ChatRequest(model=f"replay:{name}", messages=[{"role": "user", "content": "ping"}], max_tokens=1)
    )
    assert text.startswith(NON_STREAMS[name]) and (NON_STREAMS[name] or text == "")


async def test_models_list_capture_shape_is_read():
    ids = [model["id"] for model in json.loads((fixtures_dir() / "openai_models_list.json").read_text())["data"]]
    with FakeOpenAIServer(model_ids=ids) as server:
        listed = await llm.list_models(llm.UpstreamConfig(base_url=server.base_url, api_key="k"))
    assert list(listed) == ids and len(ids) == 112
    assert set(listed.values()) == {""}  # OpenAI's list has no human names
