"""Call OpenAI-compatible APIs with the official SDK: stream a chat completion, complete once, list models.

It streams chat completions with `AsyncOpenAI` and turns every failure into
an `LLMError` (`errors.py`). Provider quirks handled here come
from real captures (tests/fixtures/upstream/SOURCES.md): a chunk without
`delta` (Azure), `content` as an array of parts (Mistral Magistral), usage only
under `x_groq` (Groq) or repeated on several chunks (Groq, OpenRouter),
trailing `choices: []` chunks after the usage chunk (OpenAI moderation),
`refusal` deltas instead of content (OpenAI), and several choices (`n` > 1).

Protocol source: OpenAI API reference, "Chat Completions: create" and
"The chat completion chunk object"; "Error codes" for the status mapping.
"""

import asyncio
import contextvars
import json
import re
import weakref
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import aiohttp
import httpx2
import openai
from django.utils.translation import gettext as _
from django.views.decorators.debug import sensitive_variables
from openai.types.chat import ChatCompletionMessageParam, ChatCompletionUserMessageParam

from llm.errors import ErrorKind, LLMError, map_error
from llm.types import ChatRequest, Content, Delta, Finish, UpstreamConfig


# The clients of each event loop: one HTTP client shared by every reply streamed
# on it (creating one costs ~50 ms, its TLS context, which would land on every
# time to first token; sharing keeps its connection pool warm), and the SDK
# clients on it, one per upstream config. Weak keys: they go away with their
# loop. Process-local, so safe with many workers.
@dataclass
class _LoopClients:
    http: httpx2.AsyncClient
    sdk: dict[UpstreamConfig, openai.AsyncOpenAI] = field(default_factory=dict)


# The `on_sending` of the stream this task is opening (`stream_chat`); the HTTP client's request hook calls it.
_on_sending: contextvars.ContextVar[Callable[[], None] | None] = contextvars.ContextVar("on_sending", default=None)


async def _request_sending(_request: httpx2.Request) -> None:
    """The HTTP client's request hook (it runs in the task that sends): call the task's `on_sending` once."""
    on_sending = _on_sending.get()
    if on_sending is not None:
        _on_sending.set(None)
        on_sending()


_loop_clients: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopClients]" = weakref.WeakKeyDictionary()
# SDK clients kept per loop, the oldest dropped first: a site has a few providers, and a changed key is a new config.
SDK_CLIENTS_KEPT = 32


def _loop_clients_now() -> _LoopClients:
    loop = asyncio.get_running_loop()
    clients = _loop_clients.get(loop)
    if clients is None or clients.http.is_closed:
        # No redirects: a provider's key goes to its base URL only, never to wherever a
        # response points (the SDK's default client follows them, Authorization header included).
        # The SDK's aiohttp transport reads a streamed chunk for a third of the CPU of its default
        # httpx transport (5.6 against 15.6 ms a reply of 230 chunks, 50 streams at once).
        clients = _loop_clients[loop] = _LoopClients(
            http=openai.DefaultAioHttpClient(follow_redirects=False, event_hooks={"request": [_request_sending]})
        )
    return clients


# The SDK's own frames below this one hold the key as a plain string: error reports hide them all.
@sensitive_variables()
def _client(config: UpstreamConfig) -> openai.AsyncOpenAI:
    """Return the SDK client for `config` on this loop's HTTP client; never close it: that would close the shared one.

    Kept per loop and config (`SDK_CLIENTS_KEPT`): building one for each
    request cost 0.35 of the 1.05 ms of CPU that starting a stream took
    (bench/README.md, the seventh round). The SDK's clients hold no state
    between requests but their settings.
    """
    clients = _loop_clients_now()
    client = clients.sdk.get(config)
    if client is None:
        timeout = openai.Timeout(config.total_timeout_s, connect=config.connect_timeout_s, read=config.read_timeout_s)
        # Retries are the caller's policy, not the SDK's: a retry after text has
        # been shown would duplicate it.
        client = openai.AsyncOpenAI(
            api_key=config.api_key or "none",
            base_url=config.base_url,
            timeout=timeout,
            max_retries=0,
            http_client=clients.http,
        )
        if len(clients.sdk) >= SDK_CLIENTS_KEPT:
            del clients.sdk[next(iter(clients.sdk))]
        clients.sdk[config] = client
    return client


def _message_params(messages: list[dict[str, Any]]) -> list[ChatCompletionMessageParam]:
    """Return `messages` ({"role", "content"} dicts) as the SDK's typed message params, one per role.

    Only a user message may carry content parts (text and image_url); the others are text.
    """
    return [_message_param(message["role"], message["content"]) for message in messages]


def _completion_body(request: ChatRequest, *, stream: bool) -> dict[str, Any]:
    """Return the JSON body of a Chat Completions create request for `request` (OpenAI API reference).

    Built here and sent through the SDK's `post` (its way to call any
    endpoint: it still adds the key and the SDK's headers, applies the
    timeouts and raises its status errors), not its `chat.completions.create`,
    which walks all of its forty-odd parameters against their TypedDict
    annotations (`async_maybe_transform`) to rename and reformat fields of a
    body already in the wire format: opening and reading a stream of two
    chunks took 2.16 ms of CPU through `create`, 1.70 through `post`
    (`bench/stream_read.py --model long:2+delay:16`, bench/README.md, the
    sixteenth round). Parameters left as None are not sent: the provider's
    defaults apply. A stream asks for the usage chunk
    (`stream_options.include_usage`).

    Raises:
        ValueError: a message has a role the site never sends, or content parts outside a user message.
    """
    body: dict[str, Any] = {"model": request.model, "messages": _message_params(request.messages)}
    for name in ("temperature", "top_p", "max_tokens"):
        value = getattr(request, name)
        if value is not None:
            body[name] = value
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return body


def _message_param(role: str, content: Content) -> ChatCompletionMessageParam:
    if role == "user":
        user: ChatCompletionUserMessageParam = {"role": "user", "content": content}  # type: ignore[typeddict-item]
        return user
    if not isinstance(content, str):
        raise ValueError(f"Only user messages carry content parts, not {role!r} ones")
    if role == "system":
        return {"role": "system", "content": content}
    if role == "assistant":
        return {"role": "assistant", "content": content}
    raise ValueError(f"Unknown chat message role {role!r}: the site sends system, user and assistant messages only")


async def stream_chat(
    config: UpstreamConfig,
    request: ChatRequest,
    *,
    on_sending: Callable[[], None] | None = None,
    pace_s: Callable[[], float] | None = None,
) -> AsyncIterator[Delta | Finish]:
    """Stream one chat completion: yield `Delta`s, then exactly one `Finish`.

    Sends `stream=True` with `stream_options.include_usage` so the usage chunk
    arrives at the end. Only choice index 0 is read. `on_sending` is called
    once the SDK has built the HTTP request and hands it to the transport to
    connect and send: the CPU of opening the stream is spent (about 1 ms of
    the event loop, bench/README.md, the ninth round); not called if the
    request fails before.

    pace_s: once text has come, called before each further read of the body;
        for the seconds it returns (at most half the read timeout), the
        connection is left unread (`_unread_for`), so the chunks that come
        meanwhile are read together: one wake-up of this loop for a
        window's chunks rather than one a chunk (bench/README.md, the
        twenty-third round). Their deltas then come one after another. Not
        called for a content-encoded body, which is read as it comes.

    Raises:
        LLMError: for every upstream failure, before or during the stream; a
            stream that ends without a finish reason raises kind INCOMPLETE.
    """
    finish_reason = ""
    model = request.model
    usage: Mapping[str, Any] | None = None
    started = False
    loop = asyncio.get_running_loop()
    # The read timeout bounds each wait for a chunk; the total bound is checked as each chunk comes
    # (a stream of keep-alive comments alone, which never completes an event, ends there too).
    deadline = loop.time() + config.total_timeout_s
    json_body = _completion_body(request, stream=True)
    client = _client(config)
    _on_sending.set(on_sending)
    try:
        # The raw event stream, not the SDK's chunk objects: building a pydantic model per chunk
        # was a third of the server's CPU under load (bench/load.py). The SDK still sends the
        # request, applies the timeouts and raises its status errors; with `httpx2.Response` to
        # cast to, it hands back the response with its body unread.
        http_response = await client.post("/chat/completions", cast_to=httpx2.Response, body=json_body, stream=True)
        try:
            # Each async generator between the socket and this loop costs every chunk a resumption
            # (bench/README.md, the thirteenth and eighteenth rounds): aiohttp's body reader itself
            # unless the body is content-encoded (httpx's `aiter_bytes` decodes it), and a decoder
            # called in this loop rather than a generator around the body.
            encoded = http_response.headers.get("content-encoding", "identity") != "identity"
            aiohttp_response = None if encoded else _aiohttp_response(http_response)
            # The next piece of the body, b"" once it has ended.
            if aiohttp_response is not None:
                read = aiohttp_response.content.readany
            else:
                read = partial(anext, http_response.aiter_bytes(), b"")
            events = SSEDecoder()
            while True:
                if started and pace_s is not None and aiohttp_response is not None:
                    await _unread_for(aiohttp_response, min(pace_s(), config.read_timeout_s / 2))
                body = await read()
                if loop.time() > deadline:
                    raise TimeoutError
                for data in events.feed(body) if body else events.end():
                    if data.startswith("[DONE]"):
                        body = b""
                        break
                    chunk = _chunk(data, http_response.request)
                    usage = _chunk_usage(chunk) or usage
                    model = chunk.get("model") or model
                    for choice in chunk.get("choices") or ():
                        if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                            continue
                        text = _delta_text(choice.get("delta"))
                        if text:
                            started = True
                            yield Delta(text)
                        if choice.get("finish_reason"):
                            finish_reason = str(choice["finish_reason"])
                if not body:
                    break
        finally:  # On stop (cancellation) or error too.
            await http_response.aclose()
    except (openai.APIError, httpx2.HTTPError, aiohttp.ClientError, TimeoutError) as exc:
        raise map_error(exc, config=config, model=request.model, started=started) from exc
    finally:
        _on_sending.set(None)  # Failed before the hook: a later request of this task must not call it.
    if not finish_reason:
        raise LLMError(
            ErrorKind.INCOMPLETE,
            _("The reply is incomplete: the provider ended the stream before the model finished."),
        )
    yield Finish(
        finish_reason=finish_reason,
        model=model if isinstance(model, str) else request.model,
        prompt_tokens=_int_or_none(usage, "prompt_tokens"),
        completion_tokens=_int_or_none(usage, "completion_tokens"),
    )


def _aiohttp_response(response: httpx2.Response) -> aiohttp.ClientResponse | None:
    """Return the aiohttp response under `response`, or None when the SDK's aiohttp transport did not answer it.

    Its body is read directly (`content`, an `aiohttp.StreamReader`): a 16 ms
    chunk of a stream then wakes one coroutine, not the three async
    generators in between as well (httpx's `aiter_raw`, its
    `BoundAsyncStream`, the transport's `AiohttpResponseStream`): 50 streams
    of 230 chunks at once read for 12.1 ms of CPU a stream instead of 15.3
    on uvloop (bench/README.md, the eighteenth round). The reader yields the
    body's raw bytes (the transport asks aiohttp not to decompress) and
    raises aiohttp's own errors, which `map_error` knows. It sits in private
    attributes of the SDK's vendored transport (openai/_vendor/httpx_aiohttp):
    if they move, this returns None and streams are read through httpx
    again, which tests/llm/test_client.py notices.
    """
    stream = getattr(response.stream, "_stream", None)
    aiohttp_response = getattr(stream, "_aiohttp_response", None)
    return aiohttp_response if isinstance(aiohttp_response, aiohttp.ClientResponse) else None


async def _unread_for(response: aiohttp.ClientResponse, seconds: float) -> None:
    """Leave the connection of `response` unread for `seconds`: what comes meanwhile waits in the socket's buffer.

    The transport's reading is paused (asyncio's flow control,
    `Transport.pause_reading`), not the body's reader: aiohttp's reader
    raises a connection's error before the data it holds
    (`StreamReader.readany`), while the socket gives its data before the
    end of the connection, a reset included, so a provider that ends its
    connection right after some text still has that text read. Over TLS on
    uvloop, a connection that ends without TLS's close_notify during the
    pause drops the records the TLS layer had taken in (checked by hand:
    the last 2 of 12 words, bench/README.md, the twenty-third round): text
    that no page was shown, of a reply that then ends with its error as
    before. Call it with the body's reader drained (after `readany`), when
    aiohttp's own flow control holds nothing. Nothing waits when the
    connection was released (the whole body has come) or is paused already.
    """
    connection = response.connection
    transport = connection.transport if connection is not None else None
    if seconds <= 0 or transport is None or not transport.is_reading():
        return
    transport.pause_reading()
    try:
        await asyncio.sleep(seconds)
    finally:
        if not transport.is_closing():
            transport.resume_reading()


class SSEDecoder:
    """Split a response body, fed chunk by chunk (UTF-8 bytes), into the data of its server-sent events.

    The event stream format of the WHATWG HTML standard, "Server-sent
    events" §9.2.6: lines end at CRLF, LF or CR, and only there (httpx's
    `aiter_lines` also splits at U+2028, U+0085 and the like, which JSON
    strings may hold unescaped); `data:` lines (one leading space removed)
    are joined by "\n" and dispatched at a blank line; comments (`:`) and
    other fields are ignored. An event cut off by the end of the body (no
    blank line after it) is not dispatched, as the standard says and the
    openai SDK does.

    A plain object, not an async generator over the body: the caller's loop
    over the body calls it, which spares every chunk a generator's resumption.
    """

    def __init__(self) -> None:
        self._data: list[str] = []
        self._pending = b""  # The start of a line whose end has not come yet.

    def feed(self, chunk: bytes) -> list[str]:
        """Return the data of the events that `chunk` completes, oldest first."""
        buffer = self._pending + chunk if self._pending else chunk
        if b"\r" in buffer:
            # A CR closing the buffer may be half of a CRLF split across chunks: it waits for the next one.
            held = b"\r" if buffer.endswith(b"\r") else b""
            lines = _LINE_END.split(buffer[: len(buffer) - len(held)])
            self._pending = lines.pop() + held
        else:  # Most bodies: LF only, split without the expression.
            lines = buffer.split(b"\n")
            self._pending = lines.pop()
        return self._events(lines)

    def end(self) -> list[str]:
        """Return the data of the events that the end of the body completes: a CR closing it ends its line."""
        lines = _LINE_END.split(self._pending)
        self._pending = b""
        lines.pop()  # A line the body ended inside is dropped.
        return self._events(lines)

    def _events(self, lines: list[bytes]) -> list[str]:
        events = []
        data = self._data
        for line in lines:
            if not line:
                if data:
                    events.append("\n".join(data))
                    data.clear()
            elif line.startswith(b"data:"):
                # ASCII up to here: the value decodes as the whole line would.
                data.append(line[6 if line.startswith(b"data: ") else 5 :].decode("utf-8", errors="replace"))
        return events


_LINE_END = re.compile(rb"\r\n|\r|\n")


def _chunk(data: str, http_request: httpx2.Request) -> Mapping[str, Any]:
    """Return one event's chat completion chunk object.

    Raises:
        openai.APIError: the event is an error object, which providers send inside a 200 stream
            (as the SDK raises it).
        LLMError: the event is not a JSON object (kind BAD_RESPONSE).
    """
    chunk = _json_object(data)
    error = chunk.get("error")
    if error:
        message = error.get("message") if isinstance(error, dict) else None
        raise openai.APIError(
            message if isinstance(message, str) and message else "An error occurred during streaming",
            request=http_request,
            body=error,
        )
    return chunk


def _json_object(data: str | bytes) -> dict[str, Any]:
    """Return `data` parsed as a JSON object.

    Raises:
        LLMError: it is not JSON, or not an object (kind BAD_RESPONSE).
    """
    try:
        parsed = json.loads(data)
    except ValueError:
        parsed = None
    if not isinstance(parsed, dict):
        raise LLMError(ErrorKind.BAD_RESPONSE, _("The provider sent a response that could not be read."))
    return parsed


async def complete_once(config: UpstreamConfig, request: ChatRequest) -> str:
    """Return the text of one non-streaming completion (e.g. a one-token connection test).

    Raises:
        LLMError: as `stream_chat`.
    """
    json_body = _completion_body(request, stream=False)
    client = _client(config)
    try:
        # The raw body, read as JSON here, not the SDK's pydantic object: a new chat's title is one of these.
        response = await client.post("/chat/completions", cast_to=httpx2.Response, body=json_body)
    except (openai.APIError, httpx2.HTTPError, TimeoutError) as exc:
        raise map_error(exc, config=config, model=request.model, started=False) from exc
    choices = _json_object(response.content).get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise LLMError(ErrorKind.BAD_RESPONSE, _("The provider's answer had no choices."))
    return _delta_text(choices[0].get("message"))


async def list_models(config: UpstreamConfig) -> dict[str, str]:
    """Return {model id: label} of GET {base_url}/models, in the provider's order.

    The label is the model object's human name, `display_name` (Together,
    Anthropic) or `name` (OpenRouter); "" when it has none.

    Raises:
        LLMError: as `stream_chat`.
    """
    client = _client(config)
    try:
        return {model.id: _model_label(model) async for model in client.models.list()}
    except (openai.APIError, httpx2.HTTPError, TimeoutError) as exc:
        raise map_error(exc, config=config, model="", started=False) from exc


def _model_label(model: Any) -> str:
    """Return a listed model's human name (`display_name`, else `name`), or ""."""
    extra = model.model_extra or {}
    label = extra.get("display_name") or extra.get("name")
    return label.strip() if isinstance(label, str) else ""


def _delta_text(delta: object) -> str:
    """Return the visible text of a delta or message object: content (a string or text parts) and refusal."""
    if not isinstance(delta, dict):
        return ""  # Azure sends chunks without a delta.
    content = delta.get("content")
    if isinstance(content, list):
        # Mistral's Magistral sends [{"type": "thinking", ...}, {"type": "text", "text": ...}].
        content = "".join(
            part.get("text", "") for part in content if isinstance(part, dict) and part.get("type") == "text"
        )
    refusal = delta.get("refusal")
    return (content if isinstance(content, str) else "") + (refusal if isinstance(refusal, str) else "")


def _chunk_usage(chunk: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """Return the usage a chunk carries; later usages replace earlier ones (never summed)."""
    usage = chunk.get("usage")
    if isinstance(usage, dict):
        return usage
    x_groq = chunk.get("x_groq")
    if isinstance(x_groq, dict) and isinstance(x_groq.get("usage"), dict):
        return x_groq["usage"]
    return None


def _int_or_none(usage: Mapping[str, Any] | None, key: str) -> int | None:
    value = (usage or {}).get(key)
    return value if isinstance(value, int) and value >= 0 else None
