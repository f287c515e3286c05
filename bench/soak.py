"""Soak the site: many conversations at once for a fixed time, with upstream faults; then check nothing was lost.

The site runs in one daphne process (`tests/servers.py`) on a fresh SQLite
database in a temporary CHAT_VAR_DIR (migrated first; the channel layer from
--redis if given, else in-memory), with the per-user usage limits lifted
(CHAT_DEFAULT_* = 0). Every conversation is one websocket client; all of
them run in this process's event loop. Each client, until --seconds have
passed: sends a message with an idempotency key, waits for the final bubble
of its reply (at most --reply-timeout), waits a little (--think-ms), again.

Faults are per reply: the persona's model stays the same, and the fake
upstream (`tests/fakes/openai_server.py`, in a thread of this process) takes
the behaviour of each request from a `[upstream: MODEL-STRING]` tag in the
last user message (a subclass, `TaggedFakeServer`); the title request after
each conversation's first reply has no tag and gets the default reply. A
reply is one of:

- ok        `long:L+delay:D`: complete, the L deltas stored exactly;
- stop      the same, longer; the client sends `stop` after the first delta:
            stopped (or complete when the stop came too late), text kept;
- cut       `cut:K`: the TCP connection drops after K deltas: error, K deltas kept;
- error     `error:K`: a mid-stream error event after K deltas: error, K kept;
- nofinish  `nofinish:K`: [DONE] without a finish reason: error, K kept;
- stall     `stall:S` after the first delta, S above the provider's read
            timeout (--read-timeout): error, the first delta kept;
- retry503  `status:503+fail:1+nonce:KEY`: a 503 before the first token, retried
            by the site: complete, two upstream requests;
- retry429  `status:429+retry-after:0.2+fail:1+nonce:KEY`: the same with a 429;
- exhausted `status:500+nonce:KEY`: every attempt fails: error, nothing kept,
            CHAT_UPSTREAM_RETRIES + 1 upstream requests.

--fault-rate of the replies get one of the faults (equal shares), --stop-rate
are stopped; --duplicate-rate of the sends are sent twice with the same
idempotency key (half at once, half after the reply ended).

Then the clients stop sending and wait for the replies in flight; the
database is polled until no reply streams (at most --settle-s) and checked:
every acknowledged send is stored exactly once, every reply ended (complete,
stopped, error or interrupted; none streaming), each reply's status and text
match its fault, the clients saw the same final status, and the deltas a
client received are the start of the stored text. Prints figures and one
PASS/FAIL line per check; exits 1 if any check failed. Usage (from the
repository root):

    .venv/bin/python bench/soak.py [--conversations 100] [--seconds 60] [--fault-rate 0.1] [--redis URL]
"""

from __future__ import annotations

import argparse
import asyncio
import html
import json
import os
import random
import re
import secrets
import statistics
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))

from bench.environment import bench_site
from bench.procfs import cpu_seconds, proc_status
from tests.fakes.openai_server import FakeOpenAIServer
from tests.servers import DaphneServer, database_url, free_port, session_cookie

TAG = re.compile(r"\[upstream: ([^\]\s]+)\]")
ARTICLE = re.compile(r'<article id="message-([0-9a-f-]{36})"([^>]*)>')
BODY = r'<div id="message-{id}-body"[^>]*>(.*?)</div>'
DELTA = re.compile(r'<div id="message-([0-9a-f-]{36})-body" hx-swap-oob="beforeend">(.*?)</div>', re.S)
ALERT = re.compile(r'<div id="composer-alert"[^>]*>(.*?)</div>', re.S)
FAULT_KINDS = ("cut", "error", "nofinish", "stall", "retry503", "retry429", "exhausted")
ENDED = ("complete", "stopped", "error", "interrupted")
DELAY_MS = 15


def words(n: int) -> str:
    """Return the text of the fake's `long:n` reply."""
    return "".join(f"w{i} " for i in range(n))


class TaggedFakeServer(FakeOpenAIServer):
    """The fake upstream, taking each request's behaviour from a tag in its last user message.

    `[upstream: long:40+delay:15+cut:7]` in the last user message replaces the
    request's model string before the fake reads it, so one persona gets a
    different fault on every reply. Requests without a tag (title generation)
    keep the persona's model. The recorded requests keep the replaced string.
    Coupled to the fake's private `_record` hook on purpose: the fake stays
    free of bench code.
    """

    async def _record(self, request):
        body = await super()._record(request)
        if isinstance(body, dict) and isinstance(body.get("messages"), list):
            users = [m for m in body["messages"] if isinstance(m, dict) and m.get("role") == "user"]
            content = users[-1].get("content") if users else None
            if isinstance(content, str) and (tag := TAG.search(content)):
                body["model"] = tag.group(1)
        return body


@dataclass(frozen=True)
class Plan:
    """What one reply should do, and how it should end."""

    kind: str  # "ok", "stop" or one of FAULT_KINDS
    spec: str  # the fake's model string
    length: int  # deltas of the whole reply
    kept: int | None  # deltas a failed reply keeps; None: it does not fail
    upstream_requests: int | None  # requests the fake should see (retry kinds; their spec carries a nonce)
    duplicate: str  # send the frame twice: "now", "after" (the reply ended) or "" (once)

    @property
    def stop(self) -> bool:
        return self.kind == "stop"

    @property
    def statuses(self) -> set[str]:
        """The stored statuses this plan allows."""
        if self.stop:
            return {"stopped", "complete"}  # complete: the reply ended before the stop reached it
        return {"complete"} if self.kept is None else {"error"}

    @property
    def text(self) -> str | None:
        """The exact text the reply must store; None for a stop, which stores a start of it."""
        return None if self.stop else words(self.length if self.kept is None else self.kept)


def plan_reply(rng: random.Random, key: str, args: argparse.Namespace, retries: int) -> Plan:
    """Draw the next reply's kind and its model string; `key` (the send's idempotency key) makes it unique."""
    roll = rng.random()
    if roll < args.fault_rate:
        kind = rng.choice(FAULT_KINDS)
    elif roll < args.fault_rate + args.stop_rate:
        kind = "stop"
    else:
        kind = "ok"
    length = rng.randint(20, 40) * (3 if kind == "stop" else 1)  # Long enough for the stop to come mid-stream.
    base = f"long:{length}+delay:{DELAY_MS}"
    k = rng.randint(1, length - 1)
    spec, kept, requests = {
        "ok": (base, None, None),
        "stop": (base, None, None),
        "cut": (f"{base}+cut:{k}", k, None),
        "error": (f"{base}+error:{k}", k, None),
        "nofinish": (f"{base}+nofinish:{k}", k, None),
        "stall": (f"{base}+stall:{args.read_timeout + 1:g}", 1, None),
        "retry503": (f"{base}+status:503+fail:1+nonce:{key}", None, 2),
        "retry429": (f"{base}+status:429+retry-after:0.2+fail:1+nonce:{key}", None, 2),
        "exhausted": (f"{base}+status:500+nonce:{key}", 0, retries + 1),
    }[kind]
    duplicate = rng.choice(("now", "after")) if rng.random() < args.duplicate_rate else ""
    return Plan(kind, spec, length, kept, requests, duplicate)


@dataclass
class Reply:
    """One send as its client saw it; times from `time.perf_counter`, in seconds."""

    key: str
    text: str
    plan: Plan
    sent_at: float
    acked: bool = False
    reply_id: str = ""
    refused: str = ""  # the alert's text, when the send was refused
    deltas: list[str] = field(default_factory=list)
    first_delta_at: float | None = None
    last_delta_at: float | None = None
    max_gap_s: float = 0.0  # the longest wait between two deltas of this reply
    final_at: float | None = None
    final_status: str = ""
    stop_sent_at: float | None = None
    timed_out: bool = False


@dataclass
class Client:
    """One conversation's websocket client."""

    index: int
    public_id: str
    cookie: str
    replies: list[Reply] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)  # bubbles nobody sent
    closed: str = ""


def _attributes(attrs: str) -> dict[str, str]:
    return dict(re.findall(r'([\w-]+)="([^"]*)"', attrs))


async def run_client(client: Client, site: DaphneServer, args: argparse.Namespace, rng: random.Random, end: float):
    """Send, wait for the final bubble, repeat until `end`; record everything in `client`."""
    from django.conf import settings
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed

    retries = settings.CHAT_UPSTREAM_RETRIES  # The daphne process reads the same environment.

    await asyncio.sleep(rng.uniform(0, 1))  # Spread the first sends.
    url = site.ws_url(f"/ws/conversations/{client.public_id}/")
    try:
        async with connect(url, origin=site.origin, additional_headers={"Cookie": client.cookie}) as ws:
            n = 0
            while time.perf_counter() < end:
                key = f"soak-c{client.index:04d}-{n:05d}"
                plan = plan_reply(rng, key, args, retries)
                text = f"Message {n} of conversation {client.index} [upstream: {plan.spec}]"
                frame = json.dumps({"action": "send", "message": text, "idempotency_key": key})
                reply = Reply(key, text, plan, sent_at=time.perf_counter())
                client.replies.append(reply)
                await ws.send(frame)
                if plan.duplicate == "now":
                    await ws.send(frame)
                await _await_reply(ws, client, reply, args.reply_timeout)
                if plan.duplicate == "after":
                    await ws.send(frame)
                n += 1
                await asyncio.sleep(rng.uniform(0, args.think_ms / 1000))
    except ConnectionClosed as exc:
        client.closed = f"closed: {exc}"
    except OSError as exc:
        client.closed = f"could not connect: {exc}"


async def _await_reply(ws, client: Client, reply: Reply, timeout_s: float) -> None:
    """Read frames until `reply`'s final bubble, a refusal or `timeout_s` after the send; send its stop."""
    deadline = reply.sent_at + timeout_s
    while True:
        try:
            frame = await asyncio.wait_for(ws.recv(), max(deadline - time.perf_counter(), 0.001))
        except TimeoutError:
            reply.timed_out = True
            return
        now = time.perf_counter()
        if (alert := ALERT.search(frame)) and alert.group(1).strip():
            reply.refused = html.unescape(alert.group(1).strip())
            return
        for match in ARTICLE.finditer(frame):
            message_id, attrs = match.group(1), _attributes(match.group(2))
            role, status, oob = attrs.get("data-role"), attrs.get("data-status"), attrs.get("hx-swap-oob") == "true"
            if role == "user":
                body = re.search(BODY.format(id=message_id), frame, re.S)
                if body and html.unescape(body.group(1)) == reply.text and not reply.acked:
                    reply.acked = True
                else:
                    client.unexpected.append(f"user bubble {message_id}")
            elif role == "assistant" and not oob:
                if reply.acked and not reply.reply_id:
                    reply.reply_id = message_id
                else:
                    client.unexpected.append(f"reply bubble {message_id}")
            elif role == "assistant" and message_id == reply.reply_id and status != "streaming":
                reply.final_status, reply.final_at = status or "", now
                return
        for match in DELTA.finditer(frame):
            if match.group(1) != reply.reply_id:
                continue
            reply.deltas.append(html.unescape(match.group(2)))
            if reply.last_delta_at is not None:
                reply.max_gap_s = max(reply.max_gap_s, now - reply.last_delta_at)
            reply.last_delta_at = now
            if reply.first_delta_at is None:
                reply.first_delta_at = now
                if reply.plan.stop:
                    await ws.send(json.dumps({"action": "stop"}))
                    reply.stop_sent_at = time.perf_counter()


def _setup_site(upstream_url: str, args: argparse.Namespace) -> list[tuple[str, str]]:
    """Create users, one persona and the conversations in the bench database.

    Returns [(conversation public id, session cookie of its owner)].
    """
    from django.contrib.auth import get_user_model

    from conversations import services
    from personas import crypto
    from personas.models import ChatModel, Persona, Provider

    provider = Provider.objects.create(
        name="Soak upstream",
        base_url=upstream_url,
        api_key_encrypted=crypto.encrypt("soak-key"),
        read_timeout_s=args.read_timeout,
    )
    model = ChatModel.objects.create(provider=provider, model_id="soak-default", enabled=True)
    persona = Persona.objects.create(name="Soak", slug="soak", model=model, greeting="", history_limit=2)
    users = max(1, min(args.users, args.conversations))
    owners = []
    for i in range(users):
        user = get_user_model().objects.create_user(f"soak{i}", password=secrets.token_urlsafe(16))
        owners.append((user, session_cookie(user)))
    conversations = []
    for i in range(args.conversations):
        user, cookie = owners[i % users]
        conversation = services.conversation_create(owner=user, persona=persona)
        conversations.append((str(conversation.public_id), cookie))
    return conversations


def _load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def _settle(timeout_s: float) -> float:
    """Poll until no reply streams; return the seconds waited."""
    from conversations.models import Message

    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        if not Message.objects.filter(status=Message.Status.STREAMING).exists():
            break
        time.sleep(0.2)
    return time.monotonic() - started


class Checks:
    """PASS/FAIL lines, with a few examples of what failed."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.failed = 0

    def check(self, name: str, problems: list[str], passed_detail: str = "") -> None:
        if problems:
            self.failed += 1
            shown = "; ".join(problems[:5]) + (f"; ... ({len(problems)} in all)" if len(problems) > 5 else "")
            self.lines.append(f"  FAIL  {name}: {shown}")
        else:
            self.lines.append(f"  PASS  {name}" + (f" ({passed_detail})" if passed_detail else ""))


def run_checks(clients: list[Client], server: TaggedFakeServer, log: str) -> tuple[Checks, list]:
    """Compare what the clients saw with the database. Returns the checks and the stored replies (Message)."""
    from conversations.models import Message

    checks = Checks()
    replies = [r for c in clients for r in c.replies]
    by_public_id = {c.public_id: c for c in clients}
    stored_users: dict[str, list[Message]] = {c.public_id: [] for c in clients}
    stored_replies: dict[str, Message] = {}
    assistants_per_conversation: Counter = Counter()
    for message in Message.objects.select_related("conversation").filter(
        conversation__public_id__in=list(by_public_id)
    ):
        conversation_id = str(message.conversation.public_id)
        if message.role == Message.Role.USER:
            stored_users[conversation_id].append(message)
        else:
            stored_replies[str(message.public_id)] = message
            assistants_per_conversation[conversation_id] += 1

    checks.check("every conversation's socket stayed open", [f"c{c.index}: {c.closed}" for c in clients if c.closed])
    checks.check("no send refused (usage limits lifted)", [f"{r.key}: {r.refused}" for r in replies if r.refused])
    checks.check(
        "every send acknowledged (its bubbles came back)",
        [r.key for r in replies if not r.acked and not r.refused],
    )
    checks.check(
        "every acknowledged reply got its final bubble within the reply timeout",
        [
            f"{r.key} ({r.plan.kind}, reply {r.reply_id}, timed out: {r.timed_out})"
            for r in replies
            if r.acked and not r.final_status
        ],
    )
    checks.check("no bubble the clients did not send", [f"c{c.index}: {u}" for c in clients for u in c.unexpected])

    problems = []
    for client in clients:
        acked = {r.key: r for r in client.replies if r.acked}
        stored = stored_users[client.public_id]
        keys = Counter(m.idempotency_key for m in stored)
        if len(stored) != len(acked):
            problems.append(f"c{client.index}: {len(stored)} stored, {len(acked)} acknowledged")
        problems += [f"{k} stored {n} times" for k, n in keys.items() if n > 1]
        problems += [f"{k} stored, never acknowledged" for k in keys if k not in acked]
        problems += [f"{k} acknowledged, not stored" for k in acked if k not in keys]
        problems += [
            f"{m.idempotency_key}: text differs"
            for m in stored
            if m.idempotency_key in acked and m.content != acked[m.idempotency_key].text
        ]
    duplicates = sum(1 for r in replies if r.plan.duplicate)
    checks.check(
        "every acknowledged send stored exactly once (user messages == sends, by idempotency key)",
        problems,
        f"{sum(len(v) for v in stored_users.values())} stored; {duplicates} sends were sent twice",
    )
    checks.check(
        "one reply per stored user message",
        [
            f"c{c.index}: {assistants_per_conversation[c.public_id]} replies, {len(stored_users[c.public_id])} messages"
            for c in clients
            if assistants_per_conversation[c.public_id] != len(stored_users[c.public_id])
        ],
    )
    checks.check("no reply left streaming", [f"{i}" for i, m in stored_replies.items() if m.status == "streaming"])
    checks.check(
        "every reply ended as complete, stopped, error or interrupted",
        [f"{i}: {m.status}" for i, m in stored_replies.items() if m.status not in ENDED],
    )

    status_problems, text_problems, seen_problems, delta_problems = [], [], [], []
    for reply in replies:
        message = stored_replies.get(reply.reply_id)
        if message is None:
            continue
        plan = reply.plan
        if message.status not in plan.statuses:
            status_problems.append(
                f"{reply.key} {plan.kind} [{plan.spec}]: {message.status} ({message.error_text or 'no error'}; "
                f"longest gap between deltas seen by the client {reply.max_gap_s:.2f} s)"
            )
        expected = plan.text
        if expected is not None and message.content != expected:
            text_problems.append(
                f"{reply.key} {plan.kind}: {len(message.content)} chars stored, {len(expected)} expected"
            )
        if expected is None and not words(plan.length).startswith(message.content):
            text_problems.append(f"{reply.key} {plan.kind}: stored text is not a start of the reply")
        if reply.final_status and reply.final_status != message.status:
            seen_problems.append(f"{reply.key}: client saw {reply.final_status}, stored {message.status}")
        if not message.content.startswith("".join(reply.deltas)):
            delta_problems.append(f"{reply.key} {plan.kind}: deltas received are not the start of the stored text")
    checks.check("each reply's status matches its fault", status_problems)
    checks.check("each reply's stored text matches its fault (partial text kept)", text_problems)
    checks.check("the final bubble a client saw has the stored status", seen_problems)
    checks.check("the deltas a client received are the start of the stored text", delta_problems)

    counts = Counter(r.body["model"] for r in server.requests if isinstance(r.body, dict) and "model" in r.body)
    retry_problems = [
        f"{r.key} {r.plan.kind}: {counts[r.plan.spec]} upstream requests, {r.plan.upstream_requests} expected"
        for r in replies
        if r.acked and r.plan.upstream_requests is not None and counts[r.plan.spec] != r.plan.upstream_requests
    ]
    checks.check("retried faults reached the upstream the expected number of times", retry_problems)

    errors = [line for line in log.splitlines() if "Traceback" in line or " ERROR " in line or " CRITICAL " in line]
    checks.check("no error or traceback in daphne's log", errors)
    return checks, list(stored_replies.values())


def _figures(values_ms: list[float]) -> str:
    if not values_ms:
        return "(none)"
    ordered = sorted(values_ms)
    p90 = statistics.quantiles(ordered, n=10, method="inclusive")[8] if len(ordered) > 1 else ordered[0]
    return f"median {statistics.median(ordered):8.1f}  p90 {p90:8.1f}  max {ordered[-1]:8.1f}  (ms, n={len(ordered)})"


def _print_figures(
    header: str, replies: list[Reply], stored: list, run_s: float, settle_s: float, daphne: dict
) -> None:
    """Print what the clients measured, what the database holds and what daphne used."""
    ended = [r for r in replies if r.final_at is not None]
    kinds = Counter(r.plan.kind for r in replies)
    stops = [r for r in replies if r.plan.stop]
    statuses = Counter(m.status for m in stored)
    recovered = sum(1 for r in replies if r.plan.kind in ("retry503", "retry429") and r.final_status == "complete")
    # The database keeps only a reply's last heartbeat, set at the send and by each checkpoint.
    checkpointed = sum(1 for m in stored if m.heartbeat_at and (m.heartbeat_at - m.created_at).total_seconds() > 0.5)
    ms = 1000
    rows = [
        (
            "sends",
            f"{len(replies)} ({sum(r.acked for r in replies)} acknowledged, "
            f"{sum(1 for r in replies if r.plan.duplicate)} sent twice)",
        ),
        (
            "replies ended",
            f"{len(ended)} in {run_s:.1f} s = {len(ended) / run_s:.1f} replies/s "
            f"(no reply streaming {settle_s:.1f} s after)",
        ),
        ("planned kinds", ", ".join(f"{k} {n}" for k, n in sorted(kinds.items()))),
        ("stored by status", ", ".join(f"{k} {n}" for k, n in sorted(statuses.items()))),
        (
            "recovered by retry",
            f"{recovered} of {kinds['retry503'] + kinds['retry429']} (503/429 before the first token)",
        ),
        (
            "stops",
            f"{sum(r.final_status == 'stopped' for r in stops)} stopped, "
            f"{sum(r.final_status == 'complete' for r in stops)} complete before the stop arrived",
        ),
        ("send -> first delta", _figures([(r.first_delta_at - r.sent_at) * ms for r in replies if r.first_delta_at])),
        ("  site's ttft_ms", _figures([m.ttft_ms for m in stored if m.ttft_ms is not None])),
        ("send -> final bubble", _figures([(r.final_at - r.sent_at) * ms for r in ended])),
        ("  of 'ok' replies", _figures([(r.final_at - r.sent_at) * ms for r in ended if r.plan.kind == "ok"])),
        ("longest delta gap", _figures([r.max_gap_s * ms for r in replies if r.last_delta_at]) + " per reply"),
        (
            "stop -> final bubble",
            _figures([(r.final_at - r.stop_sent_at) * ms for r in stops if r.stop_sent_at and r.final_at]),
        ),
        ("checkpointed replies", f"{checkpointed} with at least one checkpoint write (their number is not stored)"),
        (
            "daphne memory",
            f"RSS {daphne['rss_start']} at start, {daphne['rss_end']} at the end, peak (VmHWM) {daphne['peak']}",
        ),
        (
            "daphne CPU",
            f"{daphne['cpu_s']:.1f} s over {run_s + settle_s:.1f} s = "
            f"{daphne['cpu_s'] * ms / max(len(ended), 1):.0f} ms per reply",
        ),
        ("load average", daphne["load"]),
    ]
    print(header)
    width = max(len(label) for label, _ in rows) + 1
    for label, figures in rows:
        print(f"  {label + ':':<{width}}  {figures}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--conversations", type=int, default=100, help="concurrent conversations (default 100)")
    parser.add_argument("--users", type=int, default=10, help="their owners (default 10)")
    parser.add_argument("--seconds", type=float, default=60, help="how long the clients send (default 60)")
    parser.add_argument("--fault-rate", type=float, default=0.1, help="share of replies with a fault (default 0.1)")
    parser.add_argument("--stop-rate", type=float, default=0.05, help="share of replies stopped (default 0.05)")
    parser.add_argument("--duplicate-rate", type=float, default=0.02, help="share of sends sent twice (0.02)")
    parser.add_argument("--think-ms", type=float, default=500, help="pause after a reply, 0 to this (default 500)")
    parser.add_argument("--reply-timeout", type=float, default=30, help="per reply, seconds (default 30)")
    parser.add_argument("--read-timeout", type=float, default=1, help="the provider's idle timeout, s (default 1)")
    parser.add_argument("--settle-s", type=float, default=30, help="most to wait for streaming replies (30)")
    parser.add_argument("--redis", default="", help="channel layer URL, e.g. redis://127.0.0.1:6379/0")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)

    with bench_site("chat-soak-", {"REDIS_URL": args.redis} if args.redis else None):
        server = TaggedFakeServer(port=free_port())
        server.start()
        try:
            setup_started = time.monotonic()
            conversations = _setup_site(server.base_url, args)
            setup_s = time.monotonic() - setup_started
            from django.conf import settings

            layer = settings.CHANNEL_LAYERS["default"]["BACKEND"].rsplit(".", 1)[-1]
            with DaphneServer(database_url=database_url(settings.DATABASES["default"])) as site:
                pid = site.process.pid
                rss_start = proc_status(pid)["VmRSS"].strip()
                cpu_start = cpu_seconds(pid)
                clients = [Client(i, public_id, cookie) for i, (public_id, cookie) in enumerate(conversations)]

                async def soak() -> float:
                    end = time.perf_counter() + args.seconds
                    await asyncio.gather(
                        *(run_client(c, site, args, random.Random(args.seed * 100_003 + c.index), end) for c in clients)
                    )
                    return time.perf_counter()

                load_start = _load_average()
                started = time.perf_counter()
                finished = asyncio.run(soak())
                settle_s = _settle(args.settle_s)
                status = proc_status(pid)
                daphne = {
                    "rss_start": rss_start,
                    "rss_end": status["VmRSS"].strip(),
                    "peak": status["VmHWM"].strip(),
                    "cpu_s": cpu_seconds(pid) - cpu_start,
                    "load": f"{load_start} at start, {_load_average()} at the end ({os.cpu_count()} CPUs)",
                }
                log = site.log()
        finally:
            server.stop()
        checks, stored = run_checks(clients, server, log)

    header = (
        f"Soak: {args.conversations} conversations of {max(1, min(args.users, args.conversations))} users, "
        f"{args.seconds:g} s of sends, fault rate {args.fault_rate:g}, stop rate {args.stop_rate:g}, "
        f"daphne + {layer}, SQLite (setup {setup_s:.1f} s)"
    )
    _print_figures(header, [r for c in clients for r in c.replies], stored, finished - started, settle_s, daphne)
    print("Checks:")
    for line in checks.lines:
        print(line)
    print("RESULT: " + ("PASS" if not checks.failed else f"FAIL ({checks.failed} checks failed)"))
    return 1 if checks.failed else 0


if __name__ == "__main__":
    sys.exit(main())
