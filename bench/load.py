"""A class pressing Enter at once: N people each send one message at the same moment; what each of them sees.

The site runs as `make run` serves it: daphne on uvloop (`python -m
chatsite.serve`) on a fresh SQLite database in a temporary CHAT_VAR_DIR,
the in-memory channel layer, per-user limits lifted
(`bench/environment.py`); `--database-url` and `--redis` switch to
PostgreSQL and channels-redis, `--workers 2` starts two daphne processes and
gives each person one of them in turn. The upstream is the fake OpenAI server
(`tests/fakes/openai_server.py`) in its own process, paced like gpt-4o by the
model string `--model` (300 ms before the response headers, 16 ms before each
streamed event, 230 content chunks). A subclass of the fake (`StampedServer`)
stamps, with the machine's monotonic clock, when each request arrived and
when each chunk was written; the clients here stamp with the same clock
(`time.perf_counter` is CLOCK_MONOTONIC on Linux), so upstream and client
stamps compare across processes.

For each N of `--sizes`, in the same run:

1. Baseline: N `openai.AsyncOpenAI` streams read the upstream directly, all
   started at once, from this process.
2. Site: N users, each with a fresh conversation, open their websocket; once
   all are open, each sends one message at the same moment and reads frames
   until the final bubble of its reply.

Figures per N (milliseconds, p50 / p99 over the people or over every chunk):

- own message shown: send → the frame with the person's own bubble;
- send → upstream request: send → the fake received the reply's request;
- first token: start (the SDK call, or the send) → the first text;
- per-chunk delay: the fake wrote a chunk → the client holds its text (for
  the site, the first delta frame whose text covers the chunk's end);
- daphne CPU: user + system seconds of the daphne process(es) opening and
  loading the N sockets (before the sends), then from the sends to the
  last final write, in all and per reply (a reply's own work: its send,
  stream, frames to the tab, final write and title);
- completeness: replies whose final bubble came, whose streamed text (deltas,
  and the snapshot a tab asks for after a gap) equals the upstream's, and
  whose stored text equals it.

Then two black-box scenarios (`--scenarios`, both by default; `none` skips them):

- flood: one user opens 200 websockets and sends 5 malformed frames on each
  (1,000 frames); another user's send → first token, alone (median of 3)
  and while the flood runs;
- import: one user uploads a ChatGPT export of `--import-mb` MB (47,
  synthetic: conversations of 4 to 40 messages of Markdown) through the
  data page while 10 other users keep sending messages and renaming their
  conversations: their own-message and rename latencies before the upload
  (after a round that warms the site up) and during the import, any
  failure, the import's duration and daphne's memory.

Asserts nothing; prints figures. Usage (from the repository root):

    .venv/bin/python bench/load.py                              # N = 1, 10, 50, 100, then the scenarios
    .venv/bin/python bench/load.py --sizes 50 --scenarios none
    .venv/bin/python bench/load.py --sizes 50 --scenarios none --history 40    # sends in longer chats
    .venv/bin/python bench/load.py --redis redis://127.0.0.1:6379/0 \\
        --database-url postgres://chat@127.0.0.1/chat_bench --workers 2
"""

from __future__ import annotations

import argparse
import asyncio
import contextvars
import html
import json
import os
import random
import re
import secrets
import signal
import statistics
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))

from bench.environment import bench_site, earlier_turns
from bench.procfs import cpu_seconds, proc_status
from conversations.coalescing import FULL_RATE_REPLIES
from tests.fakes.openai_server import FakeOpenAIServer
from tests.servers import DaphneServer, database_url, free_port, session_cookie

DEFAULT_MODEL = "long:230+ttfb:300+delay:16"
TAG = re.compile(r"\[load:([\w-]+)\]")
ARTICLE = re.compile(r'<article id="message-([0-9a-f-]{36})"([^>]*)>')
DELTA = re.compile(r'<div id="message-([0-9a-f-]{36})-body" hx-swap-oob="(beforeend|innerHTML)">(.*?)</div>', re.S)
ALERT = re.compile(r'<div id="composer-alert"[^>]*>(.*?)</div>', re.S)
_stamps: contextvars.ContextVar[list[float]] = contextvars.ContextVar("stamps")


class StampedServer(FakeOpenAIServer):
    """The fake upstream, stamping each tagged request's arrival and each streamed event's write.

    A request is tagged by `[load:ID]` in its last user message. `GET
    /_bench/stamps` returns {ID: {"arrived": t, "events": [t, ...]}}: event 0
    is the role chunk, events 1..n the content chunks, then the finish chunk.
    Coupled to the fake's private `_record`, `_stream` and `_pace` hooks on
    purpose: the fake stays free of bench code.
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.stamps: dict[str, dict] = {}

    def make_app(self):
        app = super().make_app()
        app.router.add_get("/_bench/stamps", self._stamps_json)
        return app

    async def _stamps_json(self, request):
        from aiohttp import web

        return web.json_response(self.stamps)

    async def _record(self, request):
        arrived = time.perf_counter()
        body = await super()._record(request)
        if tag := _tag(body):
            self.stamps[tag] = {"arrived": arrived, "events": []}
        return body

    async def _stream(self, request, body, behaviour):
        tag = _tag(body)
        token = _stamps.set(self.stamps[tag]["events"] if tag else [])
        try:
            return await super()._stream(request, body, behaviour)
        finally:
            _stamps.reset(token)

    async def _pace(self, behaviour) -> None:
        await super()._pace(behaviour)
        stamps = _stamps.get(None)
        if stamps is not None:
            stamps.append(time.perf_counter())  # The event is written right after the pause.


def _tag(body: object) -> str:
    if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
        return ""
    users = [m for m in body["messages"] if isinstance(m, dict) and m.get("role") == "user"]
    content = users[-1].get("content") if users else None
    match = TAG.search(content) if isinstance(content, str) else None
    return match.group(1) if match else ""


def serve_upstream(port: int) -> None:
    """Run the stamped fake upstream in this process until SIGTERM."""

    async def serve() -> None:
        server = StampedServer(port=port, delay_ms=0)
        await server.start_async()
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        print("listening", flush=True)
        await stop.wait()
        await server.stop_async()

    asyncio.run(serve())


@dataclass
class Reading:
    """What one person (or one raw SDK stream) saw, in perf_counter seconds."""

    tag: str
    started: float = 0.0
    own_message_at: float | None = None
    reply_id: str = ""
    chunks: list[tuple[float, int]] = field(default_factory=list)  # (arrival, text length so far)
    text: str = ""
    final_status: str = ""
    refused: str = ""
    closed: str = ""


async def raw_sdk_round(base_url: str, model: str, size: int, round_id: str) -> list[Reading]:
    """Read `size` streams with the openai SDK directly, all started at once."""
    import openai

    client = openai.AsyncOpenAI(api_key="load", base_url=base_url, max_retries=0, timeout=120)

    async def one(i: int) -> Reading:
        reading = Reading(tag=f"{round_id}-sdk{i}")
        messages = [{"role": "user", "content": f"Question {i} [load:{reading.tag}]"}]
        reading.started = time.perf_counter()
        stream = await client.chat.completions.create(model=model, messages=messages, stream=True)  # type: ignore[arg-type]
        async for chunk in stream:
            text = chunk.choices[0].delta.content if chunk.choices else None
            if text:
                reading.text += text
                reading.chunks.append((time.perf_counter(), len(reading.text)))
            if chunk.choices and chunk.choices[0].finish_reason:
                reading.final_status = "complete"
        return reading

    try:
        return list(await asyncio.gather(*(one(i) for i in range(size))))
    finally:
        await client.close()


# From the last socket opened to the sends.
SETTLE_S = 1.0


async def site_round(
    sites: list[DaphneServer],
    people: list[tuple[str, str]],
    round_id: str,
    timeout_s: float,
    on_send: Callable[[], None] | None = None,
) -> list[Reading]:
    """Open one websocket per (conversation id, cookie), then send one message on all of them at once.

    on_send: called once, when every socket is open and loaded, just before the sends.
    """
    from websockets.asyncio.client import connect

    go = asyncio.Event()
    opened: list[bool] = []

    async def one(i: int, public_id: str, cookie: str) -> Reading:
        reading = Reading(tag=f"{round_id}-site{i}")
        site = sites[i % len(sites)]
        url = site.ws_url(f"/ws/conversations/{public_id}/")
        try:
            async with connect(
                url, origin=site.origin, additional_headers={"Cookie": cookie}, max_size=None, open_timeout=60
            ) as ws:
                opened.append(True)
                if len(opened) == len(people):
                    # The site accepts a socket before it loads the conversation: let it finish the last ones,
                    # or the first sends would wait behind them. People do not send the instant a page opens.
                    await asyncio.sleep(SETTLE_S)
                    if on_send is not None:
                        on_send()
                    go.set()
                await go.wait()
                await _send(ws, reading, f"Question {i}")
                await asyncio.wait_for(_read_reply(ws, reading), timeout_s)
        except TimeoutError:
            reading.closed = (
                f"no final bubble in {timeout_s:g} s ({len(reading.chunks)} deltas, {len(reading.text)} chars)"
            )
        except Exception as exc:  # A closed socket or a refused handshake: recorded, the round goes on.
            reading.closed = f"{type(exc).__name__}: {exc}"
            go.set()
        return reading

    return list(await asyncio.gather(*(one(i, p, c) for i, (p, c) in enumerate(people))))


async def _send(ws, reading: Reading, text: str) -> None:
    """Send `text` tagged for the stamping upstream, keyed by the reading's tag; stamp `reading.started`."""
    frame = {"action": "send", "message": f"{text} [load:{reading.tag}]", "idempotency_key": reading.tag}
    reading.started = time.perf_counter()
    await ws.send(json.dumps(frame))


async def _read_reply(ws, reading: Reading) -> None:
    async for frame in ws:
        now = time.perf_counter()
        if (alert := ALERT.search(frame)) and alert.group(1).strip():
            reading.refused = html.unescape(alert.group(1).strip())
            return
        for match in ARTICLE.finditer(frame):
            message_id, attrs = match.group(1), dict(re.findall(r'([\w-]+)="([^"]*)"', match.group(2)))
            if attrs.get("data-role") == "user" and reading.own_message_at is None:
                reading.own_message_at = now
            elif attrs.get("data-role") == "assistant" and attrs.get("hx-swap-oob") != "true" and not reading.reply_id:
                reading.reply_id = message_id
            elif message_id == reading.reply_id and attrs.get("data-status") != "streaming":
                reading.final_status = attrs.get("data-status", "")
                return
        for match in DELTA.finditer(frame):
            if match.group(1) == reading.reply_id:
                # A snapshot (innerHTML: the text so far, after a gap) replaces what the bubble shows.
                text = html.unescape(match.group(3))
                reading.text = text if match.group(2) == "innerHTML" else reading.text + text
                reading.chunks.append((now, len(reading.text)))


def chunk_delays_ms(reading: Reading, written: list[float], chunk_texts: list[str]) -> list[float]:
    """Return, per upstream content chunk, the ms from its write to the first arrival covering its end."""
    delays, end, k = [], 0, 0
    for written_at, text in zip(written, chunk_texts, strict=False):
        end += len(text)
        while k < len(reading.chunks) and reading.chunks[k][1] < end:
            k += 1
        if k == len(reading.chunks):
            break
        delays.append((reading.chunks[k][0] - written_at) * 1000)
    return delays


def _percentiles(values: list[float]) -> str:
    if not values:
        return "      – /       –"
    ordered = sorted(values)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return f"{statistics.median(ordered):7.0f} / {p99:7.0f}"


@dataclass
class RoundFigures:
    size: int
    own_message: list[float]
    to_upstream: list[float]
    first_token: list[float]
    chunk_delay: list[float]
    complete: int = 0
    text_equal: int = 0
    stored_equal: int = 0
    cpu_s: float | None = None  # From the sends to the last final write.
    connect_cpu_s: float | None = None  # Opening and loading the sockets, before the sends.
    problems: list[str] = field(default_factory=list)


def figures(readings: list[Reading], stamps: dict, expected: str, chunk_texts: list[str]) -> RoundFigures:
    fig = RoundFigures(len(readings), [], [], [], [])
    for r in readings:
        stamp = stamps.get(r.tag)
        if r.own_message_at is not None:
            fig.own_message.append((r.own_message_at - r.started) * 1000)
        if stamp and r.started:
            fig.to_upstream.append((stamp["arrived"] - r.started) * 1000)
        if r.chunks:
            fig.first_token.append((r.chunks[0][0] - r.started) * 1000)
        if stamp:
            fig.chunk_delay += chunk_delays_ms(r, stamp["events"][1:], chunk_texts)
        fig.complete += r.final_status == "complete"
        fig.text_equal += r.text == expected
        if r.refused or r.closed:
            fig.problems.append(f"{r.tag}: {r.refused or r.closed}")
    return fig


def _stored_equal(readings: list[Reading], expected: str) -> int:
    from conversations.models import Message

    ids = [r.reply_id for r in readings if r.reply_id]
    return Message.objects.filter(public_id__in=ids, status="complete", content=expected).count()


def _fetch_stamps(base_url: str) -> dict:
    with urllib.request.urlopen(base_url.removesuffix("/v1") + "/_bench/stamps", timeout=30) as response:
        return json.load(response)


def _setup(upstream_url: str, model: str, users: int) -> tuple[object, list]:
    """Create a provider, a persona on `model`, and `users` users with their session cookies."""
    from django.contrib.auth import get_user_model

    from personas import crypto
    from personas.models import ChatModel, Persona, Provider

    provider = Provider.objects.create(
        name="Load upstream", base_url=upstream_url, api_key_encrypted=crypto.encrypt("load-key"), is_local=True
    )
    chat_model = ChatModel.objects.create(provider=provider, model_id=model, enabled=True)
    persona = Persona.objects.create(name="Load", slug="load", model=chat_model, greeting="Hello! Ask me anything.")
    people = []
    for i in range(users):
        user = get_user_model().objects.create_user(f"load{i}", password=secrets.token_urlsafe(16))
        people.append((user, session_cookie(user)))
    return persona, people


def _new_conversations(persona, people, history: int = 0) -> list[tuple[str, str]]:
    """Return (public id, cookie) of a new conversation for each person, with `history` earlier messages in it.

    The earlier messages alternate question and answer, about 300 characters
    each, as a chat that has gone on for a while.
    """
    from conversations import services

    turns = earlier_turns(history)
    conversations = []
    for user, cookie in people:
        conversation = services.conversation_create(owner=user, persona=persona)
        if turns:
            services.messages_append(conversation=conversation, turns=turns)
        conversations.append((str(conversation.public_id), cookie))
    return conversations


def _title(args: argparse.Namespace, settings) -> str:
    layer = settings.CHANNEL_LAYERS["default"]["BACKEND"].rsplit(".", 1)[-1]
    db = settings.DATABASES["default"]["ENGINE"].rsplit(".", 1)[-1]
    return (
        f"Load: N people send at once{f' in chats of {args.history} messages' if args.history else ''}; "
        f"upstream {args.model!r}; {args.workers} daphne process(es), {layer}, {db}; "
        f"{os.cpu_count()} CPUs, load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}"
    )


def _print(title: str, rows: list[tuple[RoundFigures, RoundFigures]], window_ms: int, widest_ms: int) -> None:
    print(title)
    print(
        "  N    | raw SDK first token | site first token | own message shown | send → upstream"
        " | per-chunk delay raw | per-chunk delay site | daphne CPU: sockets, replies | complete, text, stored"
    )
    for raw, site in rows:
        sockets = f"{site.connect_cpu_s:4.1f} s" if site.connect_cpu_s is not None else "   – "
        cpu = f"{sockets}, –"
        if site.cpu_s is not None:
            cpu = f"{sockets}, {site.cpu_s:4.1f} s {site.cpu_s / site.size * 1000:4.0f} ms/reply"
        print(
            f"  {site.size:<4} | {_percentiles(raw.first_token)}   | {_percentiles(site.first_token)}  "
            f"| {_percentiles(site.own_message)}   | {_percentiles(site.to_upstream)} "
            f"| {_percentiles(raw.chunk_delay)}   | {_percentiles(site.chunk_delay)}    | {cpu} "
            f"| {site.complete}, {site.text_equal}, {site.stored_equal} of {site.size}"
        )
    print(
        f"  (ms, p50 / p99; the site coalesces deltas over {window_ms} ms after the first, wider with more than"
        f" {FULL_RATE_REPLIES} replies streaming, up to {widest_ms} ms)"
    )
    for _raw, site in rows:
        for problem in site.problems[:5]:
            print(f"  N={site.size} problem: {problem}")


async def flood_round(site: DaphneServer, public_id: str, cookie: str, sockets: int, frames: int) -> Counter:
    """Open `sockets` websockets of one user at once and send `frames` malformed frames on each; count the closes."""
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed, InvalidStatus

    closes: Counter = Counter()

    async def one() -> None:
        url = site.ws_url(f"/ws/conversations/{public_id}/")
        try:
            async with connect(url, origin=site.origin, additional_headers={"Cookie": cookie}, open_timeout=60) as ws:
                for _ in range(frames):
                    await ws.send('{"action": 1}')
                async for _frame in ws:
                    pass
        except ConnectionClosed as exc:
            closes[exc.rcvd.code if exc.rcvd else "no close frame"] += 1
        except (InvalidStatus, OSError, TimeoutError) as exc:
            closes[type(exc).__name__] += 1
        else:
            closes[ws.close_code] += 1

    await asyncio.gather(*(one() for _ in range(sockets)))
    return closes


def run_flood(sites, persona, people, flooder, round_id: str, timeout_s: float) -> None:
    """Print another user's first token alone and while one user floods 1,000 frames."""
    alone = []
    for k in range(3):
        (reading,) = asyncio.run(
            site_round(sites[:1], _new_conversations(persona, people[:1]), f"{round_id}a{k}", timeout_s)
        )
        alone.append((reading.chunks[0][0] - reading.started) * 1000 if reading.chunks else float("nan"))
    victim = _new_conversations(persona, people[:1])
    (flood_conversation,) = _new_conversations(persona, [flooder])

    async def both():
        flood = asyncio.create_task(flood_round(sites[0], *flood_conversation, sockets=200, frames=5))
        await asyncio.sleep(0.05)  # The flood's handshakes and frames are under way.
        readings = await site_round(sites[:1], victim, f"{round_id}f", timeout_s)
        return readings[0], await flood

    reading, closes = asyncio.run(both())
    loaded = (reading.chunks[0][0] - reading.started) * 1000 if reading.chunks else float("nan")
    print("Flood: one user opens 200 sockets and sends 5 malformed frames on each (1,000 frames)")
    print(
        f"  another user's send -> first token: alone {statistics.median(alone):.0f} ms (median of 3), "
        f"during the flood {loaded:.0f} ms ({loaded - statistics.median(alone):+.0f} ms)"
        f"{'; ' + (reading.refused or reading.closed) if reading.refused or reading.closed else ''}"
    )
    print(f"  the flood's sockets closed with: {dict(sorted(closes.items(), key=str))}")


def chatgpt_export(megabytes: float, seed: int = 0) -> bytes:
    """Return a synthetic ChatGPT conversations.json of about `megabytes` MB (its documented shape)."""
    rng = random.Random(seed)
    words = ["the", "of", "and", "to", "in", "is", "you", "that", "it", "was", "for", "on", "are", "with", "they"]

    def para(n: int) -> str:
        return " ".join(rng.choice(words) for _ in range(n))

    conversations, size, start = [], 0, 1_700_000_000
    while size < megabytes * 1_000_000:
        mapping: dict = {"root": {"id": "root", "message": None, "parent": None, "children": []}}
        parent = "root"
        for i in range(rng.randint(4, 40)):
            node, role = f"n{i}", "user" if i % 2 == 0 else "assistant"
            body = (
                para(rng.randint(20, 80)) if role == "user" else f"## Step\n\n{para(200)}\n\n```python\nprint({i})\n```"
            )
            message = {"id": node, "author": {"role": role}, "content": {"content_type": "text", "parts": [body]}}
            mapping[node] = {
                "id": node,
                "message": {**message, "create_time": start + i},
                "parent": parent,
                "children": [],
            }
            mapping[parent]["children"].append(node)
            parent = node
        conversation = {
            "title": f"Chat {len(conversations)}",
            "create_time": start,
            "update_time": start + 60,
            "mapping": mapping,
            "current_node": parent,
        }
        conversations.append(conversation)
        size += len(json.dumps(conversation))
    return json.dumps(conversations).encode()


async def _import_upload(site: DaphneServer, cookie: str, data: bytes) -> int:
    import aiohttp

    csrf = secrets.token_hex(16)  # A CSRF secret: 32 letters and digits, in the cookie and the header.
    form = aiohttp.FormData()
    form.add_field("file", data, filename="conversations.json", content_type="application/json")
    headers = {"Cookie": f"{cookie}; csrftoken={csrf}", "X-CSRFToken": csrf, "Origin": site.origin}
    async with (
        aiohttp.ClientSession() as http,
        http.post(site.url("/data/import/"), data=form, headers=headers, allow_redirects=False) as response,
    ):
        return response.status


async def _rename(http, site: DaphneServer, public_id: str, cookie: str, title: str) -> tuple[float, int]:
    csrf = secrets.token_hex(16)
    headers = {"Cookie": f"{cookie}; csrftoken={csrf}", "X-CSRFToken": csrf, "Origin": site.origin}
    started = time.perf_counter()
    async with http.post(
        site.url(f"/c/{public_id}/rename/"), data={"title": title}, headers=headers, allow_redirects=False
    ) as response:
        await response.read()
        return (time.perf_counter() - started) * 1000, response.status


# Rounds of the import scenario's ten users measured before the upload, after one that warms the site up.
ALONE_ROUNDS = 3


def run_import(sites, persona, people, importer, megabytes: float, timeout_s: float) -> None:
    """Print other users' write latencies while one user imports a large ChatGPT export, and before it.

    Ten users each send a message, wait for its reply, rename their
    conversation, and again. Their first round warms the site (its first
    HTTP requests import and build what later ones reuse: 300 to 480 ms on
    this machine, with no import); the next `ALONE_ROUNDS` are measured
    before the upload, as the baseline; the rest while the import runs.
    """
    import aiohttp
    from websockets.asyncio.client import connect

    from transfer.models import ImportJob

    data = chatgpt_export(megabytes)
    site = sites[0]
    victims = _new_conversations(persona, people[:10])
    sends: dict[str, list[float]] = {"alone": [], "import": []}
    renames: dict[str, list[float]] = {"alone": [], "import": []}
    rounds = [0] * len(victims)
    importing = asyncio.Event()
    failures: list[str] = []
    pid = site.process.pid
    rss_before = proc_status(pid)["VmRSS"].strip()

    async def victim(i: int, public_id: str, cookie: str, done: asyncio.Event) -> None:
        url = site.ws_url(f"/ws/conversations/{public_id}/")
        async with (
            aiohttp.ClientSession() as http,
            connect(url, origin=site.origin, additional_headers={"Cookie": cookie}, max_size=None) as ws,
        ):
            while not done.is_set():
                n = rounds[i]
                phase = "warm" if n == 0 else "import" if importing.is_set() else "alone"
                reading = Reading(tag=f"imp{i}-{n}")
                await _send(ws, reading, "Still there?")
                try:
                    await asyncio.wait_for(_read_reply(ws, reading), timeout_s)
                except TimeoutError:
                    failures.append(f"{reading.tag}: no final bubble in {timeout_s:g} s")
                if reading.own_message_at is not None and phase in sends:
                    sends[phase].append((reading.own_message_at - reading.started) * 1000)
                if reading.refused or reading.final_status not in ("complete", ""):
                    failures.append(f"{reading.tag}: {reading.refused or reading.final_status}")
                elapsed, status = await _rename(http, site, public_id, cookie, f"Renamed {n}")
                if phase in renames:
                    renames[phase].append(elapsed)
                if status not in (200, 302):
                    failures.append(f"rename {public_id}: HTTP {status}")
                rounds[i] = n + 1

    async def scenario() -> tuple[float, str]:
        done = asyncio.Event()
        tasks = [asyncio.create_task(victim(i, p, c, done)) for i, (p, c) in enumerate(victims)]
        while min(rounds) < 1 + ALONE_ROUNDS and not all(task.done() for task in tasks):
            await asyncio.sleep(0.05)
        importing.set()
        started = time.perf_counter()
        status = await _import_upload(site, importer[1], data)
        job_status = f"upload answered {status}"
        deadline = started + 600
        while time.perf_counter() < deadline:
            job = await asyncio.to_thread(
                lambda: ImportJob.objects.filter(owner=importer[0]).values_list("status", "done", "total").last()
            )
            if job and job[0] in ("done", "failed"):
                job_status = f"{job[0]}, {job[1]} of {job[2]} conversations"
                break
            await asyncio.sleep(0.5)
        elapsed = time.perf_counter() - started
        done.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        return elapsed, job_status

    elapsed, job_status = asyncio.run(scenario())
    status = proc_status(pid)
    print(f"Import: one user uploads a {len(data) / 1e6:.0f} MB ChatGPT export while 10 others send and rename")
    print(f"  the import: {job_status} in {elapsed:.1f} s (upload included)")
    for label, samples in (("own message shown", sends), ("renames (HTTP)", renames)):
        for phase, during in (("alone", "before it"), ("import", "during it")):
            values = samples[phase]
            print(
                f"  others' {label:<17} {during}: {_percentiles(values)} ms p50 / p99, "
                f"max {max(values, default=0):.0f} ms (n={len(values)})"
            )
    print(f"  failures: {len(failures)}" + (f"; first: {failures[0]}" if failures else ""))
    print(
        f"  daphne memory: RSS {rss_before} before, {status['VmRSS'].strip()} after, "
        f"peak (VmHWM) {status['VmHWM'].strip()}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1,10,50,100", help="comma-separated N (default 1,10,50,100)")
    parser.add_argument("--model", default=DEFAULT_MODEL, help=f"the fake's model string (default {DEFAULT_MODEL})")
    parser.add_argument("--workers", type=int, default=1, help="daphne processes (default 1)")
    parser.add_argument("--redis", default="", help="channel layer URL, e.g. redis://127.0.0.1:6379/0")
    parser.add_argument("--database-url", default="", help="an empty database instead of a fresh SQLite file")
    parser.add_argument("--timeout", type=float, default=120, help="per reply, seconds (default 120)")
    parser.add_argument(
        "--history", type=int, default=0, help="earlier messages in each round's conversations (default 0: new chats)"
    )
    parser.add_argument("--scenarios", default="flood,import", help="flood, import, both (default) or none")
    parser.add_argument("--import-mb", type=float, default=47, help="size of the import scenario's file (default 47)")
    parser.add_argument("--log-lines", type=int, default=0, help="print this many lines of daphne's first error")
    parser.add_argument("--serve-upstream", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_upstream:
        serve_upstream(args.serve_upstream)
        return 0
    sizes = [int(n) for n in args.sizes.split(",")]
    extra = {"REDIS_URL": args.redis} if args.redis else {}
    if args.database_url:
        extra["DATABASE_URL"] = args.database_url

    port = free_port()
    upstream = subprocess.Popen(
        [sys.executable, __file__, "--serve-upstream", str(port)], stdout=subprocess.PIPE, cwd=BASE_DIR
    )
    assert upstream.stdout is not None
    upstream.stdout.readline()  # "listening"
    base_url = f"http://127.0.0.1:{port}/v1"
    try:
        with bench_site("chat-load-", extra):
            from django.conf import settings

            persona, people = _setup(base_url, args.model, max([*sizes, 10]) + 2)
            flooder, importer = people.pop(), people.pop()
            chunk_texts = [f"w{i} " for i in range(int(re.search(r"long:(\d+)", args.model).group(1)))]
            expected = "".join(chunk_texts)
            sites = [
                DaphneServer(database_url=database_url(settings.DATABASES["default"])).start()
                for _ in range(args.workers)
            ]

            def sites_cpu_s() -> float:
                return sum(cpu_seconds(s.process.pid) for s in sites)

            try:
                # Warm-up, not counted: the first reply of a process imports and builds what later ones reuse.
                asyncio.run(raw_sdk_round(base_url, args.model, 1, "warm"))
                asyncio.run(site_round(sites, _new_conversations(persona, people[:1]), "warm", args.timeout))
                rows = []
                for n, size in enumerate(sizes):
                    raw_readings = asyncio.run(raw_sdk_round(base_url, args.model, size, f"r{n}"))
                    conversations = _new_conversations(persona, people[:size], args.history)
                    cpu_at = [sites_cpu_s()]
                    site_readings = asyncio.run(
                        site_round(
                            sites,
                            conversations,
                            f"r{n}",
                            args.timeout,
                            on_send=lambda stamps=cpu_at: stamps.append(sites_cpu_s()),
                        )
                    )
                    time.sleep(0.5)  # The last final writes.
                    cpu_at.append(sites_cpu_s())
                    stamps = _fetch_stamps(base_url)
                    raw = figures(raw_readings, stamps, expected, chunk_texts)
                    site = figures(site_readings, stamps, expected, chunk_texts)
                    if len(cpu_at) == 3:
                        site.connect_cpu_s, site.cpu_s = cpu_at[1] - cpu_at[0], cpu_at[2] - cpu_at[1]
                    else:  # A socket failed to open: the sends went without the stamp.
                        site.cpu_s = cpu_at[-1] - cpu_at[0]
                    site.stored_equal = _stored_equal(site_readings, expected)
                    rows.append((raw, site))
                _print(_title(args, settings), rows, settings.CHAT_COALESCE_MS, settings.CHAT_COALESCE_MAX_MS)
                scenarios = set(args.scenarios.split(","))
                if "flood" in scenarios:
                    run_flood(sites, persona, people, flooder, "flood", args.timeout)
                if "import" in scenarios:
                    run_import(sites, persona, people, importer, args.import_mb, args.timeout)
                logs = [s.log() for s in sites]
            finally:
                for s in sites:
                    s.stop()
            errors = [line for log in logs for line in log.splitlines() if "ERROR" in line or "Traceback" in line]
            print(f"  daphne log: {len(errors)} ERROR/Traceback lines" + (f"; first: {errors[0]}" if errors else ""))
            if errors and args.log_lines:
                log = next(log for log in logs if errors[0] in log)
                start = log.index(errors[0])
                print("\n".join(log[start:].splitlines()[: args.log_lines]))
    finally:
        upstream.send_signal(signal.SIGTERM)
        upstream.wait(timeout=10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
