"""Measure "export all": server time and peak memory to stream one user's whole history as a ZIP.

A fresh SQLite database in a temporary CHAT_VAR_DIR (migrated first) gets
one user with `--messages` messages (default 10,000) spread over
conversations of `--per-conversation` messages, texts of 100 to 3,000
characters (about 1.5 KB on average). Then, `--runs` times each:

- time: the Django test client requests /export/all.zip and reads the
  streamed response to its end (`time.perf_counter`, no tracing);
- Python memory: the same with `tracemalloc` on, its peak (Python
  allocations during the request);
- process memory: the peak resident set size during the request above the
  resident set size before it (Linux: VmHWM after resetting it through
  /proc/self/clear_refs, minus VmRSS), which also counts C allocations
  (SQLite, zlib).

Prints figures (medians of the runs); asserts nothing. Usage (from the repository root):

    .venv/bin/python bench/export_all.py [--messages 10000] [--per-conversation 20] [--runs 5]
"""

from __future__ import annotations

import argparse
import io
import json
import random
import secrets
import statistics
import sys
import time
import tracemalloc
import zipfile
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))

from bench.environment import bench_site

PHRASES = (
    "The site streams every reply token by token",
    "while the database keeps the record.",
    "A persona answers questions about code, travel, cooking and maths",
    "with examples in **Markdown** and `inline code`.",
    "Sources: the OpenAI API reference, RFC 6266 and the CommonMark spec.",
)


# Words drawn at random compress about 2:1, like chat text; whole phrases would compress far better.
WORDS = " ".join(PHRASES).split()


def _text(rng: random.Random) -> str:
    words = []
    target = rng.randint(100, 3000)
    length = 0
    while length < target:
        word = rng.choice(WORDS)
        words.append(word)
        length += len(word) + 1
    return " ".join(words)


def _setup(messages: int, per_conversation: int):
    """Create the user and the history in the bench database. Returns the user."""
    from django.contrib.auth import get_user_model

    from conversations.models import Conversation, Message
    from personas.models import ChatModel, Persona, Provider

    rng = random.Random(0)
    user = get_user_model().objects.create_user("bench", password=secrets.token_urlsafe(16))
    provider = Provider.objects.create(name="Bench upstream", base_url="http://127.0.0.1:9/v1")
    model = ChatModel.objects.create(provider=provider, model_id="bench-model", enabled=True)
    persona = Persona.objects.create(name="Bench", slug="bench", model=model, greeting="")
    count = -(-messages // per_conversation)
    conversations = Conversation.objects.bulk_create(
        Conversation(owner=user, persona=persona, title=f"Conversation {i}: {_text(rng)[:40]}") for i in range(count)
    )
    rows = (
        Message(
            conversation=conversation,
            asked_by=user,
            role="user" if i % 2 == 0 else "assistant",
            content=_text(rng),
            model_id="" if i % 2 == 0 else "bench-model",
            prompt_tokens=None if i % 2 == 0 else rng.randint(10, 2000),
            completion_tokens=None if i % 2 == 0 else rng.randint(10, 800),
        )
        for n, conversation in enumerate(conversations)
        for i in range(min(per_conversation, messages - n * per_conversation))
    )
    Message.objects.bulk_create(rows, batch_size=1000)
    return user


def _export(client) -> int:
    """Request the export and read it to the end; return its size in bytes."""
    response = client.get("/export/all.zip")
    if response.status_code != 200 or not response.streaming:
        raise RuntimeError(f"unexpected response {response.status_code}")
    size = 0
    last = b""
    for chunk in response.streaming_content:
        size += len(chunk)
        last = chunk
    response.close()
    if b"PK\x05\x06" not in last:
        raise RuntimeError("the archive does not end with its central directory")
    return size


def _status_kib(field: str) -> int | None:
    """Return a size from /proc/self/status (Linux), e.g. VmRSS or VmHWM, in KiB; None elsewhere."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def _reset_peak_rss() -> bool:
    """Make VmHWM (the peak resident set) start again from the current size (Linux 4.0+)."""
    try:
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")
        return True
    except OSError:
        return False


def _summary(values: list[float], unit: str, scale: float = 1) -> str:
    ordered = sorted(v / scale for v in values)
    median = statistics.median(ordered)
    return f"median {median:8.1f}  min {ordered[0]:8.1f}  max {ordered[-1]:8.1f}  ({unit}, n={len(ordered)})"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=10_000, help="messages in the history (default 10000)")
    parser.add_argument("--per-conversation", type=int, default=20, help="messages per conversation (default 20)")
    parser.add_argument("--runs", type=int, default=5, help="measured exports per figure (default 5)")
    args = parser.parse_args(argv)

    with bench_site():
        user = _setup(args.messages, args.per_conversation)
        from django.test import Client

        from conversations.models import Conversation, Message

        client = Client()
        client.force_login(user)
        text_bytes = sum(len(content.encode()) for content in Message.objects.values_list("content", flat=True))
        conversations = Conversation.objects.count()

        size = _export(client)  # warm-up: imports, template and query compilation
        rss_growth_kib = []
        for _ in range(args.runs):
            if not _reset_peak_rss():
                break
            before = _status_kib("VmRSS")
            _export(client)
            rss_growth_kib.append(_status_kib("VmHWM") - before)

        seconds = []
        for _ in range(args.runs):
            start = time.perf_counter()
            _export(client)
            seconds.append(time.perf_counter() - start)

        peaks = []
        for _ in range(args.runs):
            tracemalloc.start()
            try:
                _export(client)
                peaks.append(tracemalloc.get_traced_memory()[1])
            finally:
                tracemalloc.stop()

        archive = zipfile.ZipFile(io.BytesIO(b"".join(client.get("/export/all.zip").streaming_content)))
        exported = len(json.loads(archive.read("conversations.json"))["conversations"])
        if exported != conversations:
            raise RuntimeError(f"exported {exported} of {conversations} conversations")

    print(
        f"Export all: {args.messages} messages in {conversations} conversations, "
        f"{text_bytes / 1e6:.1f} MB of text -> ZIP of {size / 1e6:.1f} MB ({len(archive.namelist())} files)"
    )
    rows = [
        ("server time, whole response read", _summary(seconds, "ms", 1e-3)),
        ("tracemalloc peak during the request", _summary(peaks, "MB", 1e6)),
    ]
    if rss_growth_kib:
        rows.append(("peak RSS above the RSS before", _summary(rss_growth_kib, "MB", 1024)))
    width = max(len(label) for label, _ in rows) + 1
    for label, figures in rows:
        print(f"  {label + ':':<{width}}  {figures}")


if __name__ == "__main__":
    main()
