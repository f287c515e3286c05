"""Sum a day's messages into UsageDay and TtftBucket rows, once the day is over; count the other days live.

A day is rolled up `ROLL_AFTER` after its local midnight ends it (replies
count on the day they started, and one started just before midnight may
finish after it). Until then the usage pages count its messages directly
(`day_rows`, `day_buckets`), through the `message_created` index. Rolling
up is idempotent: a day's rows are replaced, and `RolledDay` marks it done.
`manage.py usage_rollup` rolls up every day that is over (run it daily, e.g.
from cron); a usage page also rolls up the days it shows that are over.
"""

from collections.abc import Iterable
from datetime import date, datetime, time, timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Case, Count, F, IntegerField, Q, Sum, When
from django.db.models.functions import Coalesce
from django.utils import timezone

from conversations.models import Message
from usage.models import RolledDay, TtftBucket, UsageDay

# A day is rolled up this long after it ends: longer than any reply may stream (CHAT_STALE_AFTER_S applies first).
ROLL_AFTER = timedelta(hours=1)
# Time-to-first-token buckets: TTFT_BUCKET_MS wide below TTFT_FINE_UNTIL_MS, TTFT_COARSE_MS wide above.
TTFT_BUCKET_MS = 10
TTFT_FINE_UNTIL_MS = 10_000
TTFT_COARSE_MS = 1_000
_FINE_BUCKETS = TTFT_FINE_UNTIL_MS // TTFT_BUCKET_MS

# The summed columns of UsageDay, in its field order.
SUM_FIELDS = ("messages", "replies", "errors", "prompt_tokens", "completion_tokens", "ttft_count", "ttft_total_ms")
# What a UsageDay row is keyed by besides its day.
KEY_FIELDS = ("user_id", "persona_id", "provider_id", "model_id")


def ttft_bucket(ttft_ms: int) -> int:
    """Return the bucket of a time to first token of `ttft_ms` milliseconds."""
    if ttft_ms < TTFT_FINE_UNTIL_MS:
        return ttft_ms // TTFT_BUCKET_MS
    return _FINE_BUCKETS + (ttft_ms - TTFT_FINE_UNTIL_MS) // TTFT_COARSE_MS


def ttft_bucket_middle_ms(bucket: int) -> float:
    """Return the middle of `bucket` in milliseconds: the value a median falling in it is reported as."""
    if bucket < _FINE_BUCKETS:
        return bucket * TTFT_BUCKET_MS + TTFT_BUCKET_MS / 2
    return TTFT_FINE_UNTIL_MS + (bucket - _FINE_BUCKETS) * TTFT_COARSE_MS + TTFT_COARSE_MS / 2


def day_bounds(day: date) -> tuple[datetime, datetime]:
    """Return the aware start and end (exclusive) of the local day `day` (settings.TIME_ZONE)."""
    zone = timezone.get_default_timezone()
    start = timezone.make_aware(datetime.combine(day, time.min), zone)
    end = timezone.make_aware(datetime.combine(day + timedelta(days=1), time.min), zone)
    return start, end


def day_of(moment: datetime) -> date:
    """Return the local day (settings.TIME_ZONE) of `moment`."""
    return timezone.localtime(moment, timezone.get_default_timezone()).date()


def last_rollable_day(now: datetime | None = None) -> date:
    """Return the latest local day that ended at least ROLL_AFTER before `now` (default: the current time)."""
    return day_of((now or timezone.now()) - ROLL_AFTER) - timedelta(days=1)


def _bucket_expression() -> Case:
    fine = F("ttft_ms") / TTFT_BUCKET_MS  # integer division on both SQLite and PostgreSQL (integer operands)
    coarse = _FINE_BUCKETS + (F("ttft_ms") - TTFT_FINE_UNTIL_MS) / TTFT_COARSE_MS
    return Case(When(ttft_ms__lt=TTFT_FINE_UNTIL_MS, then=fine), default=coarse, output_field=IntegerField())


def day_rows(day: date, *, user_id: int | None = None) -> list[dict[str, Any]]:
    """Return the UsageDay rows of `day` counted from its messages, as dicts of KEY_FIELDS and SUM_FIELDS.

    Two GROUP BY queries over the day's messages (the `message_created`
    index), one for questions and one for replies; `user_id` limits them to
    one user. Each counts for the user who asked it (`Message.asked_by`:
    the conversation's owner, or the member of an IM group chat who sent it;
    messages of a user since deleted are not counted). A question counts
    for its conversation's persona and the model
    the chat replies with (the one the person switched to, else the
    persona's); a reply for the model that wrote it; both for that chat
    model's provider. Greetings (replies to nothing) are not counted.
    """
    start, end = day_bounds(day)
    messages = Message.objects.filter(created_at__gte=start, created_at__lt=end)
    messages = messages.filter(asked_by_id=user_id) if user_id is not None else messages.exclude(asked_by=None)
    keys = {
        "user_id": F("asked_by_id"),
        "persona_id": F("conversation__persona_id"),
        "provider_id": Coalesce(
            F("conversation__chat_model__provider_id"), F("conversation__persona__model__provider_id")
        ),
    }
    questions = (
        messages.filter(role=Message.Role.USER)
        .values(
            **keys, model=Coalesce(F("conversation__chat_model__model_id"), F("conversation__persona__model__model_id"))
        )
        .annotate(messages=Count("id"))
        .order_by()
    )
    replies = (
        messages.filter(role=Message.Role.ASSISTANT, parent__isnull=False)
        .values(**keys, model=F("model_id"))
        .annotate(
            replies=Count("id"),
            errors=Count("id", filter=Q(status=Message.Status.ERROR)),
            prompt_tokens=Coalesce(Sum("prompt_tokens"), 0),
            completion_tokens=Coalesce(Sum("completion_tokens"), 0),
            ttft_count=Count("ttft_ms"),
            ttft_total_ms=Coalesce(Sum("ttft_ms"), 0),
        )
        .order_by()
    )
    rows: dict[tuple, dict[str, Any]] = {}
    for found in (*questions, *replies):
        key = (found["user_id"], found["persona_id"], found["provider_id"], found["model"] or "")
        row = rows.setdefault(key, {**dict(zip(KEY_FIELDS, key, strict=True)), **dict.fromkeys(SUM_FIELDS, 0)})
        for name in SUM_FIELDS:
            row[name] += found.get(name) or 0
    return list(rows.values())


def day_buckets(day: date) -> list[dict[str, Any]]:
    """Return the TtftBucket rows of `day` counted from its replies: dicts of model_id, bucket, count. One query."""
    start, end = day_bounds(day)
    return list(
        Message.objects.filter(
            created_at__gte=start, created_at__lt=end, role=Message.Role.ASSISTANT, ttft_ms__isnull=False
        )
        .values("model_id", bucket=_bucket_expression())
        .annotate(count=Count("id"))
        .order_by()
    )


def usage_rollup_day(*, day: date) -> bool:
    """Replace `day`'s UsageDay and TtftBucket rows by the sums of its messages; return whether this call did it.

    Atomic; another process rolling up the same day at once makes this one
    give way (False). Call it only for a day that is over (`last_rollable_day`).
    """
    rows = day_rows(day)
    buckets = day_buckets(day)
    try:
        with transaction.atomic():
            RolledDay.objects.create(day=day)
            UsageDay.objects.filter(day=day).delete()
            TtftBucket.objects.filter(day=day).delete()
            UsageDay.objects.bulk_create([UsageDay(day=day, **row) for row in rows], batch_size=1000)
            TtftBucket.objects.bulk_create([TtftBucket(day=day, **bucket) for bucket in buckets], batch_size=1000)
    except IntegrityError:  # Rolled up meanwhile by another request or the command.
        return False
    return True


def days_between(first: date, last: date) -> Iterable[date]:
    """Yield each day from `first` to `last`, both included."""
    for offset in range((last - first).days + 1):
        yield first + timedelta(days=offset)


def usage_rollup_pending(*, first: date, last: date, now: datetime | None = None) -> list[date]:
    """Roll up each day from `first` to `last` that is over and not rolled up yet; return the days done."""
    last = min(last, last_rollable_day(now))
    if last < first:
        return []
    done = set(RolledDay.objects.filter(day__gte=first, day__lte=last).values_list("day", flat=True))
    return [day for day in days_between(first, last) if day not in done and usage_rollup_day(day=day)]


def rolled_days(*, first: date, last: date) -> set[date]:
    """Return the days from `first` to `last` that are rolled up."""
    return set(RolledDay.objects.filter(day__gte=first, day__lte=last).values_list("day", flat=True))
