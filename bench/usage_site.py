"""Measure the server time of the site-wide usage page with 1,000,000 messages over 1,000 users.

Builds a fresh SQLite database in a temporary CHAT_VAR_DIR (bench/environment.py:
migrated, static files collected, DJANGO_DEBUG=0) and fills it with bulk
inserts: 1,000 users, 10 conversations each with one of 4 personas (3 models
on 2 providers), and --messages messages (questions and their replies, 2 %
of replies errors, token counts and times to first token drawn at random)
spread evenly over the last 30 days, today included up to now. Requests go
through `django.test.Client` as a staff user: the whole Django stack without
a socket, so the figures are server time only.

Figures: the first request of the page, which rolls up the 29 finished days
(`usage.rollup`); then the median of --runs requests of the default view (the
last 30 days: 29 rolled-up days plus today counted live from its messages);
the same with a 7-day range; the CSV export; and a user's own page. Prints
figures; asserts nothing. Usage (from the repository root):

    .venv/bin/python bench/usage_site.py [--runs 10] [--messages 1000000] [--users 1000]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))

from bench.environment import bench_site

CONVERSATIONS_PER_USER = 10
DAYS = 30
INSERT_BATCH = 20_000


def _setup(users: int, messages: int, seed: int = 1):
    """Fill the bench database; return (a staff user, an ordinary user)."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group
    from django.db import connection, transaction
    from django.utils import timezone

    from conversations.models import Conversation, Message
    from personas.models import ChatModel, Persona, Provider

    rng = random.Random(seed)
    User = get_user_model()
    staff = User.objects.create_user("bench-admin", is_staff=True, is_superuser=True)
    people = User.objects.bulk_create([User(username=f"user{i:04d}", password="!") for i in range(users)])
    teachers, pupils = Group.objects.create(name="Teachers"), Group.objects.create(name="Pupils")
    teachers.user_set.add(*people[: users // 10])
    pupils.user_set.add(*people[users // 10 :])
    providers = [
        Provider.objects.create(name=f"Provider {i}", base_url=f"http://127.0.0.{i + 1}:9/v1") for i in range(2)
    ]
    models = [
        ChatModel.objects.create(provider=providers[i % 2], model_id=f"bench-model-{i}", enabled=True) for i in range(3)
    ]
    personas = [Persona.objects.create(name=f"Persona {i}", slug=f"p{i}", model=models[i % 3]) for i in range(4)]
    conversations = Conversation.objects.bulk_create(
        [
            Conversation(owner=person, persona=personas[rng.randrange(4)], title="Bench")
            for person in people
            for _ in range(CONVERSATIONS_PER_USER)
        ],
        batch_size=5000,
    )
    model_of = {c.pk: c.persona.model.model_id for c in conversations}
    now = timezone.now()
    start = now - timedelta(days=DAYS - 1, hours=now.hour, minutes=now.minute, seconds=now.second)
    span_s = (now - start).total_seconds()
    columns = (
        "public_id, conversation_id, parent_id, is_current, role, content, content_html, status, error_text, "
        "model_id, finish_reason, prompt_tokens, completion_tokens, content_tokens, tokens_counter, "
        "tokens_estimated, ttft_ms, duration_ms, idempotency_key, heartbeat_at, created_at, asked_by_id"
    )
    sql = f"INSERT INTO conversations_message ({columns}) VALUES ({', '.join(['%s'] * 22)})"
    next_id = (Message.objects.order_by("-id").values_list("id", flat=True).first() or 0) + 1
    pairs = messages // 2
    with connection.cursor() as cursor:
        for first in range(0, pairs, INSERT_BATCH // 2):
            rows = []
            for _ in range(first, min(first + INSERT_BATCH // 2, pairs)):
                conversation = conversations[rng.randrange(len(conversations))]
                asked = start + timedelta(seconds=rng.random() * span_s)
                error = rng.random() < 0.02
                rows.append(
                    (uuid.uuid4().hex, conversation.pk, None, True, "user", "q", "", "complete", "", "", "",
                     None, None, 2, "", False, None, None, "", None, asked, conversation.owner_id)
                )  # fmt: skip
                rows.append(
                    (uuid.uuid4().hex, conversation.pk, next_id, True, "assistant", "a", "<p>a</p>",
                     "error" if error else "complete", "Upstream error." if error else "", model_of[conversation.pk],
                     "" if error else "stop", rng.randrange(50, 2000), 0 if error else rng.randrange(20, 800), 2, "",
                     False, rng.randrange(150, 3000), rng.randrange(500, 20000), "", None, asked + timedelta(seconds=1),
                     conversation.owner_id)
                )  # fmt: skip
                next_id += 2
            with transaction.atomic():
                cursor.executemany(sql, rows)
    return staff, people[0]


def _time(client, path: str, runs: int, **params) -> tuple[list[float], int]:
    times, size = [], 0
    for _ in range(runs):
        started = time.perf_counter()
        response = client.get(path, params)
        body = b"".join(response.streaming_content) if response.streaming else response.content
        times.append((time.perf_counter() - started) * 1000)
        if response.status_code != 200:
            raise RuntimeError(f"GET {path} answered {response.status_code}")
        size = len(body)
    return times, size


def _summary(times: list[float]) -> str:
    ordered = sorted(times)
    median = statistics.median(ordered)
    return f"median {median:8.1f}  min {ordered[0]:8.1f}  max {ordered[-1]:8.1f}  (ms, n={len(ordered)})"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10, help="measured requests per figure (default 10)")
    parser.add_argument("--messages", type=int, default=1_000_000, help="messages in all (default 1000000)")
    parser.add_argument("--users", type=int, default=1_000, help="users (default 1000)")
    args = parser.parse_args(argv)

    with bench_site(static=True):
        started = time.perf_counter()
        staff, person = _setup(args.users, args.messages)
        setup_s = time.perf_counter() - started

        from django.test import Client
        from django.utils import timezone

        from usage.models import UsageDay

        client = Client()
        client.force_login(staff)
        results = []
        results.append(("first request: rolls up 29 days, then the page", *_time(client, "/usage/site/", 1)))
        rows = UsageDay.objects.count()
        results.append(("last 30 days (29 rolled up + today live)", *_time(client, "/usage/site/", args.runs)))
        week = str(timezone.localdate() - timedelta(days=6))
        results.append(("last 7 days", *_time(client, "/usage/site/", args.runs, start=week)))
        results.append(
            ("CSV of the last 30 days", *_time(client, "/usage/site/", max(args.runs // 3, 1), format="csv"))
        )
        client.force_login(person)
        results.append(("a user's own page (/usage/)", *_time(client, "/usage/", args.runs)))

    print(
        f"Site-wide usage page, SQLite, {args.messages:,} messages over {args.users:,} users and {DAYS} days "
        f"(setup {setup_s:.0f} s; {rows:,} rollup rows), server time through django.test.Client:"
    )
    width = max(len(label) for label, *_ in results) + 1
    for label, times, size in results:
        print(f"  {label + ':':<{width}}  {_summary(times)}  {size / 1024:7.1f} KiB")


if __name__ == "__main__":
    main()
