"""Reads for accounts: a user's resolved usage limits and what they have used of them."""

from dataclasses import dataclass
from datetime import datetime, time, timedelta

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Count, IntegerField, Q, Sum
from django.db.models.functions import Coalesce
from django.utils import timezone

from accounts.models import UsageLimit
from conversations.models import Message

# The window of the "messages per minute" limit: a sliding minute, not a calendar one.
SEND_WINDOW = timedelta(seconds=60)

# Each limit's field on UsageLimit and its site default in settings.
_LIMITS = {
    "sends_per_minute": "CHAT_DEFAULT_SENDS_PER_MINUTE",
    "concurrent_replies": "CHAT_DEFAULT_CONCURRENT_REPLIES",
    "daily_tokens": "CHAT_DEFAULT_DAILY_TOKENS",
}


@dataclass(frozen=True)
class Limits:
    """A user's resolved limits; None means no limit.

    sends_per_minute: replies the user may start (send, edit, regenerate) in any 60 s.
    concurrent_replies: replies of the user's that may be streaming at once.
    daily_tokens: prompt + completion tokens the user's replies may use per day (site time zone).
    """

    sends_per_minute: int | None
    concurrent_replies: int | None
    daily_tokens: int | None


@dataclass(frozen=True)
class Usage:
    """What a user has used at `now`, counted from the database.

    sends_last_minute: replies started in (now - 60 s, now].
    replies_streaming: replies still streaming (live ones only, when a cut-off was given).
    tokens_today: prompt + completion tokens of the replies started since `day_start`.
    day_start, day_end: today's local midnights (settings.TIME_ZONE), aware datetimes.
    """

    sends_last_minute: int
    replies_streaming: int
    tokens_today: int
    now: datetime
    day_start: datetime
    day_end: datetime


def user_limits(*, user: AbstractBaseUser) -> Limits:
    """Return `user`'s limits, each resolved on its own, in one query.

    For each limit: the user's own UsageLimit row if it sets it; else the most
    generous value among the rows of the user's groups that set it (a member of
    a "teachers" group with more gets more, whatever their other groups say);
    else the site default (settings CHAT_DEFAULT_SENDS_PER_MINUTE,
    CHAT_DEFAULT_CONCURRENT_REPLIES, CHAT_DEFAULT_DAILY_TOKENS). A stored 0,
    or a default of 0 or None, means no limit, and no limit is the most
    generous. Staff and superusers get no exemption: give them a row of their
    own (or a group's) with 0s for that.
    """
    rows = UsageLimit.objects.filter(Q(user=user) | Q(group__user=user)).values("user_id", *_LIMITS)
    own: dict = {}
    group_values: dict[str, list[int]] = {field: [] for field in _LIMITS}
    for row in rows:
        if row["user_id"] is not None:
            own = row
            continue
        for field in _LIMITS:
            if row[field] is not None:
                group_values[field].append(row[field])
    resolved = {}
    for field, default_setting in _LIMITS.items():
        if own.get(field) is not None:
            value = own[field]
        elif group_values[field]:
            values = group_values[field]
            value = 0 if 0 in values else max(values)
        else:
            value = getattr(settings, default_setting)
        resolved[field] = value or None
    return Limits(**resolved)


def user_usage(*, user: AbstractBaseUser, now: datetime | None = None, stale_before: datetime | None = None) -> Usage:
    """Return what `user` has used at `now` (default: the current time), in one aggregate query.

    Counts the user's assistant messages (one per reply asked of the upstream,
    so sends, edits and regenerations all count):
    - started in the last 60 s;
    - streaming; with `stale_before`, only those whose heartbeat (or, without
      one, whose start) is at or after it: an older one was left by a worker
      that died and is no longer being written (see conversations.services.replies_interrupt_stale);
    - started since local midnight: the sum of their prompt + completion
      tokens as the upstream reported them (a reply without usage counts 0).
    Other users' messages never count. Rows read: the user's replies of the
    day plus their streaming ones, through Conversation's owner index and
    Message's (conversation, created_at) index.
    """
    now = now or timezone.now()
    day_start, day_end = _local_day(now)
    minute_ago = now - SEND_WINDOW
    streaming = Q(status=Message.Status.STREAMING)
    live = streaming
    if stale_before is not None:
        live &= Q(heartbeat_at__gte=stale_before) | Q(heartbeat_at__isnull=True, created_at__gte=stale_before)
    tokens = Coalesce("prompt_tokens", 0) + Coalesce("completion_tokens", 0)
    totals = (
        # A reply answers a question; a greeting (no parent) was asked of no upstream.
        Message.objects.filter(conversation__owner=user, role=Message.Role.ASSISTANT, parent__isnull=False)
        .filter(Q(created_at__gte=min(minute_ago, day_start)) | streaming)
        .aggregate(
            sends=Count("pk", filter=Q(created_at__gt=minute_ago)),
            streaming=Count("pk", filter=live),
            tokens=Sum(tokens, filter=Q(created_at__gte=day_start), output_field=IntegerField()),
        )
    )
    return Usage(
        sends_last_minute=totals["sends"],
        replies_streaming=totals["streaming"],
        tokens_today=totals["tokens"] or 0,
        now=now,
        day_start=day_start,
        day_end=day_end,
    )


def user_send_free_at(*, user: AbstractBaseUser, limit: int, now: datetime) -> datetime:
    """Return when fewer than `limit` of `user`'s replies will have been started in the last 60 s.

    That is 60 s after the `limit`-th newest reply of the last minute; `now`
    when there are fewer than `limit` of them. One query.
    """
    started = (
        Message.objects.filter(
            conversation__owner=user,
            role=Message.Role.ASSISTANT,
            parent__isnull=False,
            created_at__gt=now - SEND_WINDOW,
        )
        .order_by("-created_at")
        .values_list("created_at", flat=True)[limit - 1 : limit]
    )
    return next(iter(started), now - SEND_WINDOW) + SEND_WINDOW


def _local_day(now: datetime) -> tuple[datetime, datetime]:
    """Return the midnights (settings.TIME_ZONE) that start and end the day of `now`."""
    zone = timezone.get_default_timezone()
    today = timezone.localtime(now, zone).date()
    start = datetime.combine(today, time.min, tzinfo=zone)
    end = datetime.combine(today + timedelta(days=1), time.min, tzinfo=zone)
    return start, end
