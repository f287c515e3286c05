"""Measure what the OpenAI-compatible API adds: time to first token and per-delta delay, at N concurrent streams.

For each N (default 1, 10, 100), in the same run:

- raw SDK: N `openai` SDK streams read the fake upstream directly, all started
  at once (the baseline, `bench.load.raw_sdk_round`);
- API: N `openai` SDK streams read the site's /v1/chat/completions (stream
  true, store true: saved to history like a page's reply), each from its own
  user with its own key, all started at once.

The fake upstream is bench/load.py's stamping one, in its own process: it
stamps when each content chunk is written (`time.perf_counter`, a system-wide
monotonic clock on Linux, so the two processes' stamps compare). Figures:
time to first token, from starting the request to the first content delta;
to upstream, from starting the request to the upstream receiving its request;
per-delta delay, from the upstream writing a content chunk to the client
holding it (the API relays every delta as it comes, uncoalesced, so chunk k
of the upstream is delta k of the API). p50 / p99 in ms. Prints figures;
asserts nothing. Usage (from the repository root):

    .venv/bin/python bench/api.py [--sizes 1,10,100] [--model long:40+ttfb:200+delay:16]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))

from bench.environment import bench_site
from bench.load import Reading, _fetch_stamps, _percentiles, chunk_delays_ms, raw_sdk_round
from bench.procfs import cpu_seconds
from tests.servers import DaphneServer, database_url, free_port

DEFAULT_MODEL = "long:40+ttfb:200+delay:16"


def _setup(upstream_url: str, model: str, users: int) -> list[str]:
    """Create a provider and the persona "bench" on `model`, and `users` users; return one API key of each."""
    from django.contrib.auth import get_user_model

    from api import services
    from personas import crypto
    from personas.models import ChatModel, Persona, Provider

    provider = Provider.objects.create(
        name="API bench upstream", base_url=upstream_url, api_key_encrypted=crypto.encrypt("bench"), is_local=True
    )
    chat_model = ChatModel.objects.create(provider=provider, model_id=model, enabled=True)
    Persona.objects.create(name="Bench", slug="bench", model=chat_model, greeting="", history_limit=2)
    keys = []
    for i in range(users):
        user = get_user_model().objects.create_user(f"api{i}")
        keys.append(services.api_key_create(user=user, name="bench")[1])
    return keys


async def api_round(
    site: DaphneServer, keys: list[str], round_id: str, timeout_s: float, *, store: bool = True
) -> list[Reading]:
    """Start one /v1 stream per key at once, through the openai SDK; record each content delta's arrival."""
    import openai

    clients = [
        openai.AsyncOpenAI(api_key=key, base_url=site.url("/v1"), max_retries=0, timeout=timeout_s) for key in keys
    ]

    async def one(i: int, client: openai.AsyncOpenAI) -> Reading:
        reading = Reading(tag=f"{round_id}-api{i}")
        messages = [{"role": "user", "content": f"Question {i} [load:{reading.tag}]"}]
        reading.started = time.perf_counter()
        try:
            stream = await client.chat.completions.create(  # type: ignore[call-overload]
                model="bench", messages=messages, stream=True, store=store
            )
            async for chunk in stream:
                text = chunk.choices[0].delta.content if chunk.choices else None
                if text:
                    reading.text += text
                    reading.chunks.append((time.perf_counter(), len(reading.text)))
                if chunk.choices and chunk.choices[0].finish_reason:
                    reading.final_status = "complete"
        except openai.APIError as exc:
            reading.refused = f"{type(exc).__name__}: {exc}"
        return reading

    try:
        return list(await asyncio.gather(*(one(i, c) for i, c in enumerate(clients))))
    finally:
        for client in clients:
            await client.close()


def _figures(
    readings: list[Reading], stamps: dict, chunk_texts: list[str]
) -> tuple[list[float], list[float], list[float], int]:
    """Return (first-token ms, request → upstream ms, per-delta delay ms, complete replies with the whole text)."""
    expected = "".join(chunk_texts)
    first, to_upstream, delays, whole = [], [], [], 0
    for r in readings:
        if r.chunks:
            first.append((r.chunks[0][0] - r.started) * 1000)
        if stamp := stamps.get(r.tag):
            to_upstream.append((stamp["arrived"] - r.started) * 1000)
            delays += chunk_delays_ms(r, stamp["events"][1:], chunk_texts)
        whole += r.final_status == "complete" and r.text == expected
    return first, to_upstream, delays, whole


def _added(api: list[float], raw: list[float]) -> str:
    return f"{statistics.median(api) - statistics.median(raw):+7.1f}" if api and raw else "      –"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1,10,100", help="comma-separated N (default 1,10,100)")
    parser.add_argument("--model", default=DEFAULT_MODEL, help=f"the fake's model string (default {DEFAULT_MODEL})")
    parser.add_argument("--timeout", type=float, default=120, help="per stream, seconds (default 120)")
    parser.add_argument("--no-store", action="store_true", help='send "store": false (nothing saved but the usage)')
    args = parser.parse_args(argv)
    sizes = [int(n) for n in args.sizes.split(",")]
    chunk_texts = [f"w{i} " for i in range(int(re.search(r"long:(\d+)", args.model).group(1)))]

    port = free_port()
    upstream = subprocess.Popen(
        [sys.executable, str(BASE_DIR / "bench" / "load.py"), "--serve-upstream", str(port)],
        stdout=subprocess.PIPE,
        cwd=BASE_DIR,
    )
    assert upstream.stdout is not None
    upstream.stdout.readline()  # "listening"
    base_url = f"http://127.0.0.1:{port}/v1"
    try:
        with bench_site("chat-api-bench-"):
            from django.conf import settings

            keys = _setup(base_url, args.model, max(sizes))
            with DaphneServer(database_url=database_url(settings.DATABASES["default"])) as site:
                # Warm-up, not counted: the first request of a process imports and builds what later ones reuse.
                asyncio.run(raw_sdk_round(base_url, args.model, 1, "warm"))
                asyncio.run(api_round(site, keys[:1], "warm", args.timeout))
                rows = []
                for n, size in enumerate(sizes):
                    raw = asyncio.run(raw_sdk_round(base_url, args.model, size, f"r{n}"))
                    cpu_before = cpu_seconds(site.process.pid)
                    api = asyncio.run(api_round(site, keys[:size], f"r{n}", args.timeout, store=not args.no_store))
                    cpu = cpu_seconds(site.process.pid) - cpu_before
                    stamps = _fetch_stamps(base_url)
                    rows.append(
                        (size, _figures(raw, stamps, chunk_texts), _figures(api, stamps, chunk_texts), cpu, api)
                    )
                errors = [line for line in site.log().splitlines() if "ERROR" in line or "Traceback" in line]
    finally:
        upstream.send_signal(signal.SIGTERM)
        upstream.wait(timeout=10)

    print(
        f"API: N openai SDK streams at once on /v1 (store {not args.no_store}) vs on the upstream directly; "
        f"upstream {args.model!r}; "
        f"1 daphne process, SQLite; {os.cpu_count()} CPUs, load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}"
    )
    print(
        "  N    | first token raw   | first token API   | added   | to upstream raw   | to upstream API   "
        "| per-delta raw     | per-delta API     | added   | daphne CPU        | whole replies"
    )
    for size, (raw_first, raw_up, raw_delays, _), (api_first, api_up, api_delays, whole), cpu, api in rows:
        print(
            f"  {size:<4} | {_percentiles(raw_first)} | {_percentiles(api_first)} | {_added(api_first, raw_first)} "
            f"| {_percentiles(raw_up)} | {_percentiles(api_up)} "
            f"| {_percentiles(raw_delays)} | {_percentiles(api_delays)} | {_added(api_delays, raw_delays)} "
            f"| {cpu:5.1f} s {cpu / size * 1000:5.0f} ms/reply | {whole} of {size}"
        )
        for reading in [r for r in api if r.refused][:3]:
            print(f"  N={size} problem: {reading.tag}: {reading.refused}")
    print("  (ms, p50 / p99; added: difference of the medians)")
    print(f"  daphne log: {len(errors)} ERROR/Traceback lines" + (f"; first: {errors[0]}" if errors else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
