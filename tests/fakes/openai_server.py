"""A fake OpenAI chat completions server on loopback, for tests and the demo.

A real aiohttp HTTP server speaking the OpenAI wire format, so the official
``openai`` SDK runs against it unchanged and nothing reaches the internet.
Formats follow the OpenAI API reference:

* chat completions and their streamed chunk objects:
  https://platform.openai.com/docs/api-reference/chat/create and
  https://platform.openai.com/docs/api-reference/chat-streaming
* error envelopes and status codes:
  https://platform.openai.com/docs/guides/error-codes

Error bodies and replayed streams are real recorded provider responses from
``tests/fixtures/upstream`` in this repository (see its ``SOURCES.md`` and
``manifest.json``), served byte for byte.

A streamed reply whose client hangs up before its end is logged in
``server.hangups`` (a ``Hangup``: the model string, the content deltas sent
and those the reply had), so a test can check that a stop reached the upstream.

Endpoints: ``GET /v1/models``, ``POST /v1/chat/completions`` (streaming and
not), and ``GET /_fake/requests`` (the recorded requests, for debugging
across processes). The models list holds ``model_ids`` (default
``DEFAULT_MODEL_IDS``; run by hand, ``DEMO_MODELS``: one model per kind of
reply and fault below, for the admin's "Fetch models" in ``make demo``); a
model given a label carries it as ``display_name``, the field Together and
Anthropic use for a human name. With ``api_key`` set, any other bearer token
gets the real 401 body; without it any non-empty bearer token is accepted.

Behaviour is chosen by the request's ``model`` string, so a test in another
process can pick it without shared state. Segments are joined by ``+``, each
``name`` or ``name:arg``; unknown names are ignored, so ``gpt-4o-mini`` and
``fake-echo`` give the default reply:

=================  ==========================================================
(default)          Markdown reply quoting the last user message, word deltas.
``long:N``         exactly N content deltas, delta i being ``f"w{i} "``.
``echo-raw``       reply exactly the last user message's text, unchanged, one
                   character per delta (every position is a delta boundary).
``delay:MS``       sleep MS ms before each streamed event (overrides delay_ms).
``ttfb:MS``        sleep MS ms before sending the response headers.
``stall:S``        after the first content delta, sleep S seconds (float).
``finish:REASON``  finish_reason REASON (``length``, ...) instead of ``stop``.
``cut:N``          N content deltas, then abort the TCP connection.
``nofinish:N``     N content deltas, then ``data: [DONE]``; no finish chunk.
``error:N``        N content deltas, then a mid-stream ``server_error`` event
                   and ``data: [DONE]``.
``replay:FILE``    serve fixture FILE with its recorded status and headers;
                   an ``.sse`` file is streamed one event at a time.
``status:CODE``    the recorded error for 400, 401, 404, 429 (``retry-after:
                   20``), 503 (text/plain); 500 and other 4xx/5xx codes get
                   an error envelope.
``quota``          the recorded 429 ``insufficient_quota`` error.
``retry-after:S``  ``retry-after`` (and ``retry-after-ms``) for ``status:429``.
``fail:N``         the status fault hits only the first N requests with this
                   exact model string (counted per server); later ones succeed.
=================  ==========================================================

``cut``, ``nofinish`` and ``error`` take the first N deltas of the reply
(``long:M``, ``echo-raw`` or the default). Non-streaming requests get the same status
faults; ``cut`` drops the connection, ``error`` answers 500, ``stall`` waits,
and otherwise the body is a ``chat.completion`` holding the text the stream
would have produced. A bad argument is answered 400 saying which.

Run by hand (Ctrl-C stops it; it lists ``DEMO_MODELS``)::

    python -m tests.fakes.openai_server --port 9999 [--delay-ms 30] [--api-key KEY]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import re
import threading
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from http import HTTPStatus
from pathlib import Path
from typing import Any

from aiohttp import web

DEFAULT_MODEL_IDS = ("fake-echo", "fake-long", "gpt-4o-mini")
# What the demo's models list offers (id: label): every kind of reply and fault, and a few real captures.
DEMO_MODELS = {
    "fake-echo": "Demo: Markdown reply quoting your message",
    "long:400+delay:30": "Demo: long reply (400 words, 30 ms apart)",
    "finish:length": "Demo: reply cut by the token limit (finish_reason length)",
    "status:429": "Demo fault: rate limited (429, retry after 20 s)",
    "quota": "Demo fault: quota used up (429 insufficient_quota)",
    "status:401": "Demo fault: API key refused (401)",
    "status:503": "Demo fault: upstream unavailable (503, plain text)",
    "cut:20": "Demo fault: connection cut after 20 words",
    "error:20": "Demo fault: server error mid-stream after 20 words",
    "stall:90": "Demo fault: stalls 90 s after the first word (past the default 60 s idle timeout)",
    "nofinish:10": "Demo fault: stream ends after 10 words without a finish reason",
    "replay:deepseek_stream_reasoning_content.sse": "Demo capture: DeepSeek with reasoning_content",
    "replay:mistral_stream_magistral_content_array.sse": "Demo capture: Mistral Magistral (thinking parts)",
    "replay:groq_stream_include_usage.sse": "Demo capture: Groq stream with usage",
    "replay:openai_stream_refusal.sse": "Demo capture: OpenAI refusal",
    "replay:error_midstream_openrouter_error_in_chunk.sse": "Demo capture: OpenRouter error mid-stream",
}
SERVER_ERROR = {
    "error": {
        "message": "The server had an error while processing your request. Sorry about that!",
        "type": "server_error",
        "param": None,
        "code": None,
    }
}
STATUS_FIXTURES = {
    400: "error_400_context_length_exceeded.reconstructed.json",
    401: "error_401_invalid_api_key.json",
    404: "error_404_model_not_found_stream_request.json",
    429: "error_429_rate_limit_exceeded.json",
    503: "error_503_upstream_connect_text_plain.txt",
}
QUOTA_FIXTURE = "error_429_insufficient_quota.reconstructed.json"
CONTENT_TYPES = {".sse": "text/event-stream", ".json": "application/json", ".txt": "text/plain"}
# Recorded headers worth replaying; length and encoding describe the original wire only.
REPLAYED_HEADERS = ("content-type", "retry-after", "retry-after-ms", "x-request-id", "openai-version")
MODELS_CREATED = 1700000000


def fixtures_dir() -> Path:
    """Return the upstream fixtures folder, ``tests/fixtures/upstream`` (env ``CHAT_FIXTURES_DIR`` overrides)."""
    if override := os.environ.get("CHAT_FIXTURES_DIR"):
        return Path(override)
    return Path(__file__).resolve().parents[1] / "fixtures" / "upstream"


def _dumps(obj: Any) -> str:
    # OpenAI's compact separators, so generated events look like recorded ones.
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def _envelope(message: str, type_: str = "invalid_request_error", code: str | None = None) -> dict:
    return {"error": {"message": message, "type": type_, "param": None, "code": code}}


class BadModelSpec(ValueError):
    """A behaviour segment in the model string has a malformed argument."""


@dataclass(frozen=True)
class Behaviour:
    """The parsed behaviour segments of one request's ``model`` string."""

    long: int | None = None
    delay_ms: float | None = None
    ttfb_ms: float = 0
    stall_s: float = 0
    finish: str = "stop"
    cut: int | None = None
    nofinish: int | None = None
    error: int | None = None
    replay: str | None = None
    status: int | None = None
    quota: bool = False
    echo_raw: bool = False
    retry_after_s: float = 20  # as recorded in error_429_rate_limit_exceeded.json
    fail: int | None = None  # status/quota faults apply to the first N requests of this model only

    @classmethod
    def parse(cls, model: str) -> Behaviour:
        """Parse ``name[:arg]`` segments joined by ``+``. Raises: BadModelSpec."""
        converters = {
            "long": int,
            "delay": float,
            "ttfb": float,
            "stall": float,
            "finish": str,
            "cut": int,
            "nofinish": int,
            "error": int,
            "replay": str,
            "status": int,
            "retry-after": float,
            "fail": int,
        }
        fields = {"delay": "delay_ms", "ttfb": "ttfb_ms", "stall": "stall_s", "retry-after": "retry_after_s"}
        values: dict[str, Any] = {}
        for segment in model.split("+"):
            name, _, arg = segment.partition(":")
            if name == "quota":
                values["quota"] = True
            elif name == "echo-raw":
                values["echo_raw"] = True
            elif name in converters:
                try:
                    value = converters[name](arg)
                except ValueError:
                    raise BadModelSpec(f"bad argument {arg!r} in model segment {segment!r}") from None
                out_of_range = isinstance(value, (int, float)) and value < 0
                if not arg or out_of_range or (name == "status" and not 400 <= value <= 599):
                    raise BadModelSpec(f"bad argument {arg!r} in model segment {segment!r}")
                values[fields.get(name, name)] = value
        return cls(**values)

    @property
    def fault_deltas(self) -> int | None:
        """Return how many content deltas a cut/nofinish/error fault lets through."""
        counts = [n for n in (self.cut, self.nofinish, self.error) if n is not None]
        return min(counts) if counts else None


@dataclass(frozen=True)
class RecordedRequest:
    """One request as received: header names lower-cased, ``body`` parsed JSON or None."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any


@dataclass(frozen=True)
class Hangup:
    """A streamed reply's client that went away before the end: ``sent`` of its ``deltas`` content deltas written."""

    model: str
    sent: int
    deltas: int


def _message_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts: [{"type": "text", "text": ...}, ...]
        return " ".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


def echo_reply(messages: list[dict]) -> str:
    """Return the default Markdown reply quoting the last user message."""
    users = [m for m in messages if isinstance(m, dict) and m.get("role") == "user"]
    said = _message_text(users[-1].get("content")).strip() if users else ""
    return (
        f"You said: **{said or '(nothing)'}**\n\n"
        "Here is a little Markdown, streamed word by word:\n\n"
        "- a bullet with `inline code`\n"
        "- some *emphasis* and **bold** text\n"
        "- a [link](https://example.com)\n\n"
        "```python\n"
        "def greet(name: str) -> str:\n"
        '    return f"Hello, {name}!"\n'
        "```\n\n"
        "That is all from the fake OpenAI server."
    )


def split_deltas(text: str) -> list[str]:
    """Split text into word-sized deltas whose concatenation is ``text``."""
    return re.findall(r"\s*\S+|\s+", text)


def split_events(data: bytes) -> list[bytes]:
    """Split an SSE body after each blank line; the parts join back to ``data``."""
    return re.findall(rb".*?\n\n|.+\Z", data, re.S)


class FakeOpenAIServer:
    """Serve the fake API from a background thread with its own event loop.

    Usage: ``with FakeOpenAIServer() as server: AsyncOpenAI(base_url=server.base_url, ...)``.
    ``delay_ms`` (ms between streamed events) may be changed while running.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        api_key: str | None = None,
        model_ids: Iterable[str] | Mapping[str, str] = DEFAULT_MODEL_IDS,
        delay_ms: float = 0,
        access_log: bool = False,
    ) -> None:
        self.host = host
        self.api_key = api_key
        # model_ids: ids, or {id: label}; a label is listed as that model's display_name.
        self.model_labels: dict[str, str] = dict(model_ids) if isinstance(model_ids, Mapping) else {}
        self.model_ids = list(model_ids)
        self.delay_ms = delay_ms
        self._fault_counts: dict[str, int] = {}
        self.requests: list[RecordedRequest] = []
        self.hangups: list[Hangup] = []
        self._requested_port = port
        self._port: int | None = None
        self._access_log = access_log
        self._runner: web.AppRunner | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------

    @property
    def port(self) -> int:
        """Return the bound TCP port. Raises: RuntimeError before start."""
        if self._port is None:
            raise RuntimeError("server not started")
        return self._port

    @property
    def base_url(self) -> str:
        """Return the URL to give the SDK, e.g. ``http://127.0.0.1:PORT/v1``."""
        return f"http://{self.host}:{self.port}/v1"

    def clear(self) -> None:
        """Forget the recorded requests and hangups and the ``fail:N`` counts."""
        self.requests.clear()
        self.hangups.clear()
        self._fault_counts.clear()

    def make_app(self) -> web.Application:
        """Return the aiohttp application serving this fake."""
        app = web.Application()
        app.router.add_get("/v1/models", self._models)
        app.router.add_post("/v1/chat/completions", self._chat_completions)
        app.router.add_get("/_fake/requests", self._recorded)
        return app

    async def start_async(self) -> None:
        """Bind and listen on the running loop; sets ``port``."""
        self._runner = web.AppRunner(
            self.make_app(),
            shutdown_timeout=0.25,
            handler_cancellation=True,  # a client that hangs up ends its stalled handler
            **({} if self._access_log else {"access_log": None}),
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self._requested_port)
        await site.start()
        self._port = self._runner.addresses[0][1]

    async def stop_async(self) -> None:
        """Close the listener and drop in-flight responses (after 0.25 s grace)."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def start(self) -> FakeOpenAIServer:
        """Run the server in a background thread; return once it is listening."""
        ready = threading.Event()
        failure: list[BaseException] = []
        loop = asyncio.new_event_loop()

        def run() -> None:
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self.start_async())
            except BaseException as exc:  # reported to start()'s caller
                failure.append(exc)
                ready.set()
                return
            ready.set()
            loop.run_forever()

        self._loop = loop
        self._thread = threading.Thread(target=run, name="fake-openai-server", daemon=True)
        self._thread.start()
        ready.wait()
        if failure:
            self._thread.join()
            loop.close()
            raise failure[0]
        return self

    def stop(self) -> None:
        """Close the server and its thread; in-flight streams are dropped."""
        if self._loop is None or self._thread is None:
            return
        asyncio.run_coroutine_threadsafe(self.stop_async(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()
        self._loop = self._thread = None

    def __enter__(self) -> FakeOpenAIServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- handlers ----------------------------------------------------------

    async def _recorded(self, request: web.Request) -> web.Response:
        return web.json_response([asdict(r) for r in list(self.requests)])

    async def _record(self, request: web.Request) -> Any:
        raw = await request.read()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        headers = {k.lower(): v for k, v in request.headers.items()}
        self.requests.append(RecordedRequest(request.method, request.path, headers, body))
        return body

    def _auth_error(self, request: web.Request) -> web.Response | None:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        token = token.strip() if scheme.lower() == "bearer" else ""
        if not token:
            return web.json_response(
                _envelope(
                    "You didn't provide an API key. You need to provide your API key "
                    "in an Authorization header using Bearer auth."
                ),
                status=401,
            )
        if self.api_key is not None and token != self.api_key:
            return self._fixture_response(STATUS_FIXTURES[401])
        return None

    async def _models(self, request: web.Request) -> web.Response:
        await self._record(request)
        if denied := self._auth_error(request):
            return denied
        data = []
        for model_id in self.model_ids:
            listed = {"id": model_id, "object": "model", "created": MODELS_CREATED, "owned_by": "fake"}
            if label := self.model_labels.get(model_id):
                listed["display_name"] = label
            data.append(listed)
        return web.json_response({"object": "list", "data": data})

    async def _chat_completions(self, request: web.Request) -> web.StreamResponse:
        body = await self._record(request)
        if denied := self._auth_error(request):
            return denied
        if not isinstance(body, dict) or not isinstance(body.get("model"), str):
            message = "Request body must be JSON with a string 'model'."
            return web.json_response(_envelope(message), status=400)
        try:
            behaviour = Behaviour.parse(body["model"])
        except BadModelSpec as exc:
            return web.json_response(_envelope(str(exc)), status=400)
        if behaviour.ttfb_ms:
            await asyncio.sleep(behaviour.ttfb_ms / 1000)
        if self._fault_applies(body["model"], behaviour) and (error := self._status_fault(behaviour)):
            return error
        if behaviour.replay is not None:
            return await self._replay(request, behaviour)
        if body.get("stream"):
            return await self._stream(request, body, behaviour)
        return await self._complete(request, body, behaviour)

    # -- responses ---------------------------------------------------------

    def _fixture_response(self, name: str, headers: dict[str, str] | None = None) -> web.Response:
        data, status, recorded = self._load_fixture(name)
        return web.Response(body=data, status=status, headers={**recorded, **(headers or {})})

    def _load_fixture(self, name: str) -> tuple[bytes, int, dict[str, str]]:
        """Return (bytes, status, headers to replay) for a fixture. Raises: BadModelSpec."""
        folder = fixtures_dir()
        path = folder / name
        if Path(name).name != name or not path.is_file():
            raise BadModelSpec(f"no fixture named {name!r} in {folder}")
        entries = json.loads((folder / "manifest.json").read_text())
        entry = next((e for e in entries if e.get("file") == name), {})
        recorded = {
            k: v
            for k, v in entry.get("response_headers", {}).items()
            if k in REPLAYED_HEADERS or k.startswith("x-ratelimit-")
        }
        recorded.setdefault("content-type", CONTENT_TYPES.get(path.suffix, "application/octet-stream"))
        return path.read_bytes(), int(entry.get("status", 200)), recorded

    def _fault_applies(self, model: str, behaviour: Behaviour) -> bool:
        """Count requests per model string: with ``fail:N`` only the first N get the fault."""
        seen = self._fault_counts[model] = self._fault_counts.get(model, 0) + 1
        return behaviour.fail is None or seen <= behaviour.fail

    def _status_fault(self, behaviour: Behaviour) -> web.Response | None:
        code = behaviour.status
        if behaviour.quota:
            return self._fixture_response(QUOTA_FIXTURE)
        if code is None:
            return None
        if code == 429:
            # The SDK prefers retry-after-ms, so both must carry the override.
            wait_s = behaviour.retry_after_s
            headers = {"retry-after": f"{wait_s:g}", "retry-after-ms": f"{wait_s * 1000:g}"}
            return self._fixture_response(STATUS_FIXTURES[429], headers)
        if code in STATUS_FIXTURES:
            return self._fixture_response(STATUS_FIXTURES[code])
        if code == 500:
            return web.json_response(SERVER_ERROR, status=500)
        try:
            phrase = HTTPStatus(code).phrase
        except ValueError:
            phrase = "Error"
        return web.json_response(_envelope(f"Fake upstream error {code}: {phrase}", "api_error"), status=code)

    async def _replay(self, request: web.Request, behaviour: Behaviour) -> web.StreamResponse:
        try:
            data, status, headers = self._load_fixture(behaviour.replay or "")
        except BadModelSpec as exc:
            return web.json_response(_envelope(str(exc)), status=400)
        if not behaviour.replay.endswith(".sse"):
            return web.Response(body=data, status=status, headers=headers)
        response = web.StreamResponse(status=status, headers=headers)
        await response.prepare(request)
        await response.write(b"")  # flush the headers now, as a real upstream does
        try:
            for event in split_events(data):
                await self._pace(behaviour)
                await response.write(event)
            await response.write_eof()
        except ConnectionResetError:
            pass  # the client hung up
        return response

    async def _pace(self, behaviour: Behaviour) -> None:
        delay_ms = behaviour.delay_ms if behaviour.delay_ms is not None else self.delay_ms
        if delay_ms:
            await asyncio.sleep(delay_ms / 1000)

    def _deltas(self, body: dict, behaviour: Behaviour) -> list[str]:
        if behaviour.long is not None:
            deltas = [f"w{i} " for i in range(behaviour.long)]
        elif behaviour.echo_raw:
            users = [m for m in body.get("messages") or [] if isinstance(m, dict) and m.get("role") == "user"]
            deltas = list(_message_text(users[-1].get("content")) if users else "")
        else:
            deltas = split_deltas(echo_reply(body.get("messages") or []))
        limit = behaviour.fault_deltas
        return deltas if limit is None else deltas[:limit]

    def _usage(self, body: dict, deltas: list[str]) -> dict[str, int]:
        messages = body.get("messages") or []
        prompt = sum(len(_message_text(m.get("content")).split()) for m in messages if isinstance(m, dict))
        return {"prompt_tokens": prompt, "completion_tokens": len(deltas), "total_tokens": prompt + len(deltas)}

    async def _stream(self, request: web.Request, body: dict, behaviour: Behaviour) -> web.StreamResponse:
        deltas = self._deltas(body, behaviour)
        head = {
            "id": f"chatcmpl-fake{uuid.uuid4().hex[:20]}",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": body["model"],
            "system_fingerprint": "fp_fake",
        }

        def chunk(delta: dict, finish_reason: str | None = None) -> bytes:
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
            return f"data: {_dumps({**head, 'choices': [choice]})}\n\n".encode()

        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-cache"}
        )
        await response.prepare(request)
        await response.write(b"")  # flush the headers before the first (maybe delayed) event
        sent = 0
        try:
            await self._pace(behaviour)
            await response.write(chunk({"role": "assistant", "content": "", "refusal": None}))
            for i, text in enumerate(deltas):
                await self._pace(behaviour)
                await response.write(chunk({"content": text}))
                sent += 1
                if i == 0 and behaviour.stall_s:
                    await asyncio.sleep(behaviour.stall_s)
            if behaviour.cut is not None and behaviour.fault_deltas == behaviour.cut:
                request.transport.abort()  # no finish chunk, no [DONE], no chunked terminator
                return response
            if behaviour.error is not None and behaviour.fault_deltas == behaviour.error:
                await response.write(f"data: {_dumps(SERVER_ERROR)}\n\n".encode())
            elif behaviour.nofinish is None:
                await self._pace(behaviour)
                await response.write(chunk({}, behaviour.finish))
                if (body.get("stream_options") or {}).get("include_usage"):
                    usage = {**head, "choices": [], "usage": self._usage(body, deltas)}
                    await response.write(f"data: {_dumps(usage)}\n\n".encode())
            await response.write(b"data: [DONE]\n\n")
            await response.write_eof()
        except (ConnectionResetError, asyncio.CancelledError) as exc:
            # The client hung up: a write fails, or (handler_cancellation) aiohttp cancels this handler.
            self.hangups.append(Hangup(body["model"], sent, len(deltas)))
            if isinstance(exc, asyncio.CancelledError):
                raise
        return response

    async def _complete(self, request: web.Request, body: dict, behaviour: Behaviour) -> web.StreamResponse:
        deltas = self._deltas(body, behaviour)
        if behaviour.stall_s:
            await asyncio.sleep(behaviour.stall_s)
        if behaviour.cut is not None:
            request.transport.abort()
            return web.Response()
        if behaviour.error is not None:
            return web.json_response(SERVER_ERROR, status=500)
        message = {"role": "assistant", "content": "".join(deltas), "refusal": None, "annotations": []}
        finish = None if behaviour.nofinish is not None else behaviour.finish
        return web.json_response(
            {
                "id": f"chatcmpl-fake{uuid.uuid4().hex[:20]}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": body["model"],
                "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
                "usage": self._usage(body, deltas),
                "system_fingerprint": "fp_fake",
            }
        )


async def _serve_forever(server: FakeOpenAIServer) -> None:
    await server.start_async()
    print(f"fake OpenAI server on {server.base_url}", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await server.stop_async()


def main(argv: list[str] | None = None) -> None:
    """Serve the fake API until Ctrl-C."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9999)
    parser.add_argument("--delay-ms", type=float, default=30, help="pause between streamed events")
    parser.add_argument("--api-key", default=None, help="accept only this bearer token")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    server = FakeOpenAIServer(
        host=args.host,
        port=args.port,
        api_key=args.api_key,
        model_ids=DEMO_MODELS,
        delay_ms=args.delay_ms,
        access_log=True,
    )
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve_forever(server))


if __name__ == "__main__":
    main()
