"""Measure the CPU of reading streamed replies: `llm.stream_chat` against the openai SDK's own chunk objects.

N streams at once, in this process, from the fake upstream in a process of
its own (`tests/fakes/openai_server.py`), paced like gpt-4o's deltas
(`long:230+delay:16`: 230 content chunks, 16 ms apart; no wait for the
headers, which costs no CPU). Each round reads the N streams through
`llm.stream_chat` (the site's reader: the SDK sends the request, the site
decodes the events) and, alternating, through the SDK's typed stream
(`chat.completions.create(stream=True)`, a pydantic object per chunk) on
the same HTTP client, the baseline; and through `llm.stream_chat` paced as a
page's reply reads it (`pace_s`: the connection left unread `--pace-ms`
between reads, 80 ms being the coalescing window with 50 replies
streaming). Every stream's text is checked against the upstream's (the only
assertion). Prints the CPU time of this process per stream, median and
range over `--rounds`, and the ratios of the medians to the baseline's.
Usage (from the repository root):

    .venv/bin/python bench/stream_read.py [--streams 50] [--rounds 6] [--model long:230+delay:16] [--uvloop]
        [--pace-ms 80]
    .venv/bin/python bench/stream_read.py --model long:2+delay:16 --rounds 16   # mostly opening the streams
"""

from __future__ import annotations

import argparse
import asyncio
import re
import statistics
import subprocess
import sys
import time
from functools import partial
from pathlib import Path

import uvloop

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))

from bench.environment import bench_site
from tests.servers import free_port


async def _site(config, model: str, pace_s: float | None = None) -> str:
    import llm

    request = llm.ChatRequest(model=model, messages=[{"role": "user", "content": "Hi"}])
    stream = llm.stream_chat(config, request, pace_s=(lambda: pace_s) if pace_s is not None else None)
    return "".join([event.text async for event in stream if isinstance(event, llm.Delta)])


async def _sdk(config, model: str) -> str:
    from llm import client as llm_client

    stream = await llm_client._client(config).chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": "Hi"}],
        stream=True,
        stream_options={"include_usage": True},  # As the site asks: the same chunks.
    )
    texts = []
    async for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            texts.append(chunk.choices[0].delta.content)
    return "".join(texts)


async def _rounds(base_url: str, args: argparse.Namespace) -> dict[str, list[float]]:
    """Return the CPU ms per stream of each round, per reader."""
    import llm

    config = llm.UpstreamConfig(base_url=base_url, api_key="bench")
    expected = "".join(f"w{i} " for i in range(int(re.search(r"long:(\d+)", args.model).group(1))))
    paced = partial(_site, pace_s=args.pace_ms / 1000)
    readers = {"SDK chunk objects": _sdk, "llm.stream_chat": _site, f"paced, {args.pace_ms:g} ms": paced}
    cpu: dict[str, list[float]] = {name: [] for name in readers}
    for read in readers.values():  # Warm: the connection pool, the SDK client, the imports.
        assert await read(config, args.model) == expected
    for _ in range(args.rounds):
        for name, read in readers.items():
            started = time.process_time()
            texts = await asyncio.gather(*(read(config, args.model) for _ in range(args.streams)))
            cpu[name].append((time.process_time() - started) * 1000 / args.streams)
            assert texts == [expected] * args.streams, f"{name} read another text"
    return cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=50, help="streams read at once (default 50)")
    parser.add_argument("--rounds", type=int, default=6, help="rounds, each reader once a round (default 6)")
    parser.add_argument("--model", default="long:230+delay:16", help="the fake's model string (long:N needed)")
    parser.add_argument("--uvloop", action="store_true", help="on uvloop's event loop, as the site's server runs")
    parser.add_argument("--pace-ms", type=float, default=80, help="the paced reader's wait between reads (default 80)")
    args = parser.parse_args()

    port = free_port()
    upstream = subprocess.Popen(
        [sys.executable, "-m", "tests.fakes.openai_server", "--port", str(port)],
        cwd=BASE_DIR,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,  # Its access log.
    )
    assert upstream.stdout is not None
    upstream.stdout.readline()  # "fake OpenAI server on ...": listening
    try:
        with bench_site("chat-bench-read-"):
            run = uvloop.run if args.uvloop else asyncio.run
            cpu = run(_rounds(f"http://127.0.0.1:{port}/v1", args))
    finally:
        upstream.terminate()
        upstream.wait(timeout=10)

    loop = "uvloop's" if args.uvloop else "asyncio's"
    print(
        f"Reading {args.streams} streams at once, {args.model!r}, {args.rounds} rounds, on {loop} event loop;"
        " CPU of this process a stream"
    )
    medians = {}
    for name, figures in cpu.items():
        medians[name] = statistics.median(figures)
        print(f"  {name:18} median {medians[name]:6.2f} ms  (range {min(figures):.2f} to {max(figures):.2f})")
    sdk = medians.pop("SDK chunk objects")
    for name, median in medians.items():
        print(f"  {name} / SDK chunk objects: {median / sdk:.2f}")


if __name__ == "__main__":
    main()
