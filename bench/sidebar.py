"""Measure the server time of the sidebar with 10,000 conversations, and of a conversation with 1,000 messages.

Builds a fresh SQLite database in a temporary CHAT_VAR_DIR (migrated first,
static files collected so pages render as in production, DJANGO_DEBUG=0),
with one user owning 10,000 conversations spread over two years and one
conversation of 1,000 messages (a question/reply chain; replies carry
rendered Markdown with a code block). The conversation page shows its latest
messages only (`selectors.MESSAGE_PAGE_SIZE`); older pages come as htmx
fragments from the sentinel at the top, and a search hit opens the page at
its message (`?around=`), however far back. Requests go through
`django.test.Client`: the whole Django stack (middleware, session, views,
templates) without a socket, so the figures are server time only. Each
figure is the median of --runs requests after --warmup unmeasured ones.
Prints figures; asserts nothing. Usage (from the repository root):

    .venv/bin/python bench/sidebar.py [--runs 30] [--conversations 10000] [--messages 1000]
"""

from __future__ import annotations

import argparse
import itertools
import secrets
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))

from bench.environment import bench_site

HTMX = {"HTTP_HX_REQUEST": "true"}
REPLY = """Here is one way to do it:

```python
def mean(values: list[float]) -> float:
    return sum(values) / len(values)
```

It **raises** `ZeroDivisionError` on an empty list; check first if that can happen.
"""


def _setup(conversations: int, messages: int):
    """Create the user and the data in the bench database. Returns (user, big conversation)."""
    from django.contrib.auth import get_user_model
    from django.utils import timezone

    from conversations import rendering, services
    from conversations.models import Conversation, Message
    from personas.models import ChatModel, Persona, Provider

    user = get_user_model().objects.create_user("bench", password=secrets.token_urlsafe(16))
    provider = Provider.objects.create(name="Bench upstream", base_url="http://127.0.0.1:9/v1")
    model = ChatModel.objects.create(provider=provider, model_id="bench-model", enabled=True)
    persona = Persona.objects.create(name="Bench", slug="bench", model=model, greeting="")

    now = timezone.now()
    created = Conversation.objects.bulk_create(
        [Conversation(owner=user, persona=persona, title=f"Conversation number {i}") for i in range(conversations)],
        batch_size=1000,
    )
    # Spread over two years, newest first, so every date group shows up in the list.
    step = timedelta(days=730) / max(conversations, 1)
    for i, conversation in enumerate(created):
        conversation.updated_at = now - i * step
    Conversation.objects.bulk_update(created, ["updated_at"], batch_size=1000)

    big = services.conversation_create(owner=user, persona=persona)
    Conversation.objects.filter(pk=big.pk).update(title="A long conversation", updated_at=now + timedelta(seconds=1))
    reply_html = rendering.render_markdown(REPLY)
    texts = [f"Question {i}: how do I compute a mean?" if i % 2 == 0 else REPLY for i in range(messages)]
    rows = Message.objects.bulk_create(
        [
            Message(
                conversation=big,
                role="user" if i % 2 == 0 else "assistant",
                content=text,
                content_html="" if i % 2 == 0 else reply_html,
                model_id="" if i % 2 == 0 else "bench-model",
                # What each message costs in a prompt, as the site stores it when it saves one.
                **services.content_tokens(text, model_id=model.model_id),
            )
            for i, text in enumerate(texts)
        ],
        batch_size=500,
    )
    for previous, message in itertools.pairwise(rows):
        message.parent = previous
    Message.objects.bulk_update(rows[1:], ["parent"], batch_size=500)
    return user, big


def _measure(client, path: str, runs: int, warmup: int, **headers) -> tuple[list[float], int, int]:
    """Return the server times (ms) of `runs` GETs of `path`, the response size (bytes) and the query count."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    for _ in range(warmup):
        response = client.get(path, **headers)
        if response.status_code != 200:
            raise RuntimeError(f"GET {path} answered {response.status_code}")
    with CaptureQueriesContext(connection) as queries:
        client.get(path, **headers)
    query_count = len(queries)  # Now: the next request clears the log that `queries` reads.
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        response = client.get(path, **headers)
        times.append((time.perf_counter() - started) * 1000)
    return times, len(response.content), query_count


def _summary(times: list[float]) -> str:
    ordered = sorted(times)
    p90 = statistics.quantiles(ordered, n=10, method="inclusive")[8] if len(ordered) > 1 else ordered[0]
    return f"median {statistics.median(ordered):7.2f}  p90 {p90:7.2f}  min {ordered[0]:7.2f}  (ms, n={len(ordered)})"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30, help="measured requests per figure (default 30)")
    parser.add_argument("--warmup", type=int, default=3, help="unmeasured requests first (default 3)")
    parser.add_argument("--conversations", type=int, default=10_000, help="conversations of the user (default 10000)")
    parser.add_argument("--messages", type=int, default=1_000, help="messages of the long conversation (default 1000)")
    args = parser.parse_args(argv)

    with bench_site(static=True):
        started = time.perf_counter()
        user, big = _setup(args.conversations, args.messages)
        setup_s = time.perf_counter() - started

        from django.test import Client
        from django.urls import reverse

        from conversations import selectors, sidebar

        client = Client()
        client.force_login(user)
        deep = sidebar.conversation_page(user=user)
        for _ in range(args.conversations // 2 // 50):  # Walk to the middle of the list for a deep cursor.
            deep = sidebar.conversation_page(user=user, cursor=deep.next_cursor)
        rows = [
            ('new chat page "/" (sidebar first page inside)', "/", {}),
            ("sidebar first page alone (htmx fragment)", "/conversations/", HTMX),
            (
                f"sidebar page at row {args.conversations // 2} (htmx fragment)",
                f"/conversations/?before={deep.next_cursor}",
                HTMX,
            ),
            (f"conversation page, {args.messages} messages (latest page)", big.get_absolute_url(), {}),
        ]
        path = list(selectors.message_list_for_conversation(conversation=big))
        if len(path) > selectors.MESSAGE_PAGE_SIZE:
            middle = path[len(path) // 2]
            older_url = reverse("conversations:message-page", args=[big.public_id])
            rows += [
                (
                    f"older messages before message {len(path) // 2} (htmx fragment)",
                    f"{older_url}?before={middle.public_id.hex}",
                    HTMX,
                ),
                (
                    "conversation page opened at its first message (?around=)",
                    f"{big.get_absolute_url()}?around={path[0].public_id}",
                    {},
                ),
            ]
        results = [(label, *_measure(client, path, args.runs, args.warmup, **headers)) for label, path, headers in rows]

    print(
        f"Server time through django.test.Client, SQLite, {args.conversations} conversations "
        f"(setup {setup_s:.1f} s), median of {args.runs} runs after {args.warmup} warm-up:"
    )
    width = max(len(label) for label, *_ in results) + 1
    for label, times, size, queries in results:
        print(f"  {label + ':':<{width}}  {_summary(times)}  {size / 1024:6.1f} KiB  {queries} queries")


if __name__ == "__main__":
    main()
