"""Measure what one send costs the server before its reply starts: `services.replies_request`, in this process.

A fresh SQLite site (bench/environment.py) gets one persona and, for each
`--history` size, `--sends` new conversations of that many earlier messages
(alternating question and answer, written an hour ago), each of its own user,
as a class's would be. Each conversation then gets one send, and this prints
the median and the 90th percentile of the CPU time of `reply_request` (the
checks, the writes, the reply's request and the bubbles), after `--warm`
unmeasured sends, and the statements one send runs. No upstream is called:
the request is built, not sent. The consumer's sign-in check (one statement)
and the thread hop are not included: `bench/load.py` measures the whole.
With `--batch N`, the sends go N at a time, as the consumer takes the sends
that queue together (`HopBatcher`), and each batch's CPU and statements are
shared out over its sends. Prints figures; asserts nothing. Usage (from the
repository root):

    .venv/bin/python bench/send.py [--sends 200] [--warm 40] [--history 0,10,40] [--batch 1]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))

from bench.environment import bench_site, earlier_turns


def _conversations(persona, history: int, count: int, tag: str) -> list:
    """Return `count` (user, conversation) pairs, each conversation with `history` earlier messages."""
    from django.contrib.auth import get_user_model
    from django.utils import timezone

    from conversations import services
    from conversations.models import Message

    turns = earlier_turns(history)
    pairs = []
    for i in range(count):
        user = get_user_model().objects.create_user(f"send-{tag}-{i}", password=None)
        conversation = services.conversation_create(owner=user, persona=persona)
        if turns:
            services.messages_append(conversation=conversation, turns=turns)
        pairs.append((user, conversation))
    # Written earlier, as a chat's history is: the last minute's sends are the quota's to count.
    Message.objects.filter(conversation__in=[c for _, c in pairs]).update(
        created_at=timezone.now() - timedelta(hours=1)
    )
    return pairs


def measure(persona, *, history: int, sends: int, warm: int, batch: int) -> tuple[float, float, float]:
    """Return (median ms, p90 ms, statements) per send of `sends` sends in chats of `history` messages, after `warm`.

    With `batch` > 1 the sends go `batch` at a time through `services.replies_request`, as the consumer
    takes the sends queued together, and each batch's CPU and statements are shared out over its sends.
    """
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from conversations import services

    batches = -(-(warm + sends) // batch)
    # One more batch after the measured ones, of conversations of their own: nothing of it is refused.
    pairs = _conversations(persona, history, (batches + 1) * batch, f"h{history}")
    cpu = []
    for n in range(0, batches * batch, batch):
        start = time.thread_time()
        outcomes = services.replies_request(
            [
                {"user": user, "public_id": conversation.public_id, "action": "send", "text": f"Question {n}?"}
                for user, conversation in pairs[n : n + batch]
            ]
        )
        if n >= warm:
            cpu.append((time.thread_time() - start) * 1000 / batch)
        refused = [o for o in outcomes if isinstance(o, Exception)]
        assert not refused, refused
    with CaptureQueriesContext(connection) as queries:
        services.replies_request(
            [
                {"user": user, "public_id": conversation.public_id, "action": "send", "text": "One more?"}
                for user, conversation in pairs[-batch:]
            ]
        )
    return statistics.median(cpu), statistics.quantiles(cpu, n=10)[-1], len(queries.captured_queries) / batch


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sends", type=int, default=200, help="measured sends per history size (default 200)")
    parser.add_argument("--warm", type=int, default=40, help="unmeasured sends first (default 40)")
    parser.add_argument("--history", default="0,10,40", help="comma-separated earlier messages (default 0,10,40)")
    parser.add_argument("--batch", type=int, default=1, help="sends taken together, as the consumer does (default 1)")
    args = parser.parse_args(argv)
    with bench_site("chat-send-"):
        from personas import crypto
        from personas.models import ChatModel, Persona, Provider

        provider = Provider.objects.create(
            name="Unused", base_url="http://127.0.0.1:9/v1", api_key_encrypted=crypto.encrypt("key"), is_local=True
        )
        model = ChatModel.objects.create(provider=provider, model_id="gpt-4o-mini", enabled=True)
        persona = Persona.objects.create(name="Bench", slug="bench", model=model, greeting="Hello!")
        print(
            f"One send (services.replies_request), CPU in this process; {args.sends} sends after {args.warm},"
            f" {args.batch} at a time"
        )
        print("  earlier messages | median ms | p90 ms | statements (with BEGIN and COMMIT)")
        for history in (int(h) for h in args.history.split(",")):
            median, p90, statements = measure(
                persona, history=history, sends=args.sends, warm=args.warm, batch=args.batch
            )
            print(f"  {history:16d} | {median:9.2f} | {p90:6.2f} | {statements:g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
