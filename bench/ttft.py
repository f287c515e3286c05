"""Measure the latency the site adds to the first token: upstream's first content chunk → first delta on a websocket.

The site runs in a daphne process (SQLite in a temporary CHAT_VAR_DIR,
migrated first; the channel layer from REDIS_URL if set, else in-memory). The
fake OpenAI server runs in this process, on the same event loop as the
websocket client, so one clock (`time.perf_counter`) stamps both ends:

- sent: the fake server has just written the first content chunk to its
  socket (a subclass hooks the fake's pacing between events; see TimedFakeServer);
- received: the websocket client holds the first delta fragment.

As a baseline, the same measurement with the `openai` SDK reading the
upstream directly: the difference is what the site adds (the SDK inside the
site, the channel layer, the consumer, the websocket). Prints figures; asserts
nothing. Usage (from the repository root):

    .venv/bin/python bench/ttft.py [--replies 20] [--model long:8+delay:50]
"""

from __future__ import annotations

import argparse
import asyncio
import contextvars
import json
import os
import re
import secrets
import statistics
import sys
import time
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))

from bench.environment import bench_site
from tests.fakes.openai_server import FakeOpenAIServer
from tests.servers import DaphneServer, database_url, free_port, session_cookie

DELTA = re.compile(r'<div id="message-[0-9a-f-]{36}-body" hx-swap-oob="beforeend">')
FINAL = 'data-status="complete" hx-swap-oob="true"'
_paces: contextvars.ContextVar[list[int]] = contextvars.ContextVar("paces")


class TimedFakeServer(FakeOpenAIServer):
    """The fake upstream, stamping when each streamed reply's first content chunk left.

    The fake streams: pace, role chunk, pace, first content chunk, pace, ...
    so entering the third pause of a stream means the first content chunk has
    just been written to the socket. Coupled to the fake's private pacing
    hook on purpose: tests/fakes/openai_server.py stays free of bench code.
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.first_content_sent: list[float] = []

    async def _stream(self, request, body, behaviour):
        token = _paces.set([0])
        try:
            return await super()._stream(request, body, behaviour)
        finally:
            _paces.reset(token)

    async def _pace(self, behaviour) -> None:
        paces = _paces.get(None)
        if paces is not None:
            paces[0] += 1
            if paces[0] == 3:
                self.first_content_sent.append(time.perf_counter())
        await super()._pace(behaviour)

    def take_sent(self) -> float:
        """Return the stamp of the one reply streamed since the last call. Raises: RuntimeError."""
        if len(self.first_content_sent) != 1:
            raise RuntimeError(f"expected one stamped reply, got {len(self.first_content_sent)}")
        return self.first_content_sent.pop()


def _setup_site(var_dir: Path, upstream_url: str, model_id: str) -> tuple[str, str]:
    """Create a user, a persona and a conversation in the bench database.

    Returns (conversation public id, session cookie).
    """
    from django.contrib.auth import get_user_model

    from conversations import services
    from personas import crypto
    from personas.models import ChatModel, Persona, Provider

    user = get_user_model().objects.create_user("bench", password=secrets.token_urlsafe(16))
    provider = Provider.objects.create(
        name="Bench upstream", base_url=upstream_url, api_key_encrypted=crypto.encrypt("bench-key")
    )
    model = ChatModel.objects.create(provider=provider, model_id=model_id, enabled=True)
    persona = Persona.objects.create(name="Bench", slug="bench", model=model, greeting="", history_limit=2)
    conversation = services.conversation_create(owner=user, persona=persona)
    return str(conversation.public_id), session_cookie(user)


async def _through_site(
    server: TimedFakeServer, site: DaphneServer, conversation_id: str, cookie: str, replies: int, warmup: int
) -> list[float]:
    from websockets.asyncio.client import connect

    latencies = []
    url = site.ws_url(f"/ws/conversations/{conversation_id}/")
    async with connect(url, origin=site.origin, additional_headers={"Cookie": cookie}) as ws:
        for i in range(warmup + replies):
            await ws.send(json.dumps({"action": "send", "message": f"bench {i}"}))
            received = None
            while True:
                frame = await asyncio.wait_for(ws.recv(), 30)
                if received is None and DELTA.search(frame):
                    received = time.perf_counter()
                if FINAL in frame:
                    break
            sent = server.take_sent()
            if received is None:
                raise RuntimeError("the reply finished without a delta")
            if i >= warmup:
                latencies.append((received - sent) * 1000)
    return latencies


async def _direct(server: TimedFakeServer, model_id: str, replies: int, warmup: int) -> list[float]:
    from openai import AsyncOpenAI

    latencies = []
    async with AsyncOpenAI(base_url=server.base_url, api_key="bench-key") as client:
        for i in range(warmup + replies):
            stream = await client.chat.completions.create(
                model=model_id, messages=[{"role": "user", "content": f"bench {i}"}], stream=True
            )
            received = None
            async for chunk in stream:
                if received is None and chunk.choices and chunk.choices[0].delta.content:
                    received = time.perf_counter()
            sent = server.take_sent()
            if i >= warmup:
                latencies.append((received - sent) * 1000)
    return latencies


def _summary(latencies: list[float]) -> str:
    ordered = sorted(latencies)
    p90 = statistics.quantiles(ordered, n=10, method="inclusive")[8] if len(ordered) > 1 else ordered[0]
    return (
        f"median {statistics.median(ordered):7.2f}  p90 {p90:7.2f}  "
        f"min {ordered[0]:7.2f}  max {ordered[-1]:7.2f}  (ms, n={len(ordered)})"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replies", type=int, default=20, help="measured replies per path (default 20)")
    parser.add_argument("--warmup", type=int, default=2, help="unmeasured replies first (default 2)")
    parser.add_argument(
        "--model",
        default="long:8+delay:50",
        help="fake upstream behaviour; keep a delay so the next chunk does not compete with the measurement",
    )
    args = parser.parse_args(argv)

    with bench_site(extra={"REDIS_URL": os.environ["REDIS_URL"]} if os.environ.get("REDIS_URL") else None) as tmp:
        var_dir = Path(tmp)
        port = free_port()
        conversation_id, cookie = _setup_site(var_dir, f"http://127.0.0.1:{port}/v1", args.model)
        from django.conf import settings

        layer = settings.CHANNEL_LAYERS["default"]["BACKEND"].rsplit(".", 1)[-1]
        with DaphneServer(database_url=database_url(settings.DATABASES["default"])) as site:

            async def measure() -> tuple[list[float], list[float]]:
                server = TimedFakeServer(port=port)
                await server.start_async()
                try:
                    direct = await _direct(server, args.model, args.replies, args.warmup)
                    through = await _through_site(server, site, conversation_id, cookie, args.replies, args.warmup)
                    return direct, through
                finally:
                    await server.stop_async()

            direct, through = asyncio.run(measure())

    print(f"Upstream's first content chunk -> first delta received, {args.replies} replies, model {args.model!r}")
    rows = [
        ("openai SDK, direct (baseline)", _summary(direct)),
        (f"site: daphne + {layer} + websocket", _summary(through)),
    ]
    width = max(len(label) for label, _ in rows) + 1
    for label, figures in rows:
        print(f"  {label + ':':<{width}}  {figures}")
    added = statistics.median(through) - statistics.median(direct)
    print(f"  {'added by the site:':<{width}}  {added:7.2f} ms (difference of the medians)")


if __name__ == "__main__":
    main()
