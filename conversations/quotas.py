"""The usage policy: may this user ask for another reply now, and what is left of their limits.

Three limits per user (see `accounts.selectors.user_limits` for how they are
resolved from the admin's per-user and per-group rows and the site defaults):
replies started per minute, replies streaming at once, and tokens per day.
Everything is counted from the database, so every worker process sees the
same numbers. A reply may take the day's total a little past the token quota
(its size is known only once it is done); the next one is then refused.
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import connection
from django.utils import timezone
from django.utils.formats import number_format
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from accounts.selectors import Limits, user_limits, users_limits
from conversations import selectors
from conversations.selectors import Usage

# "messages left this minute" is shown from this many left down.
SENDS_LEFT_SHOWN_FROM = 5


class QuotaExceeded(ValidationError):
    """A limit refuses the next reply; `message` says which and when it frees up.

    limit: "daily_tokens", "sends_per_minute" or "concurrent_replies" (also the `code`).
    retry_after_s: whole seconds until the limit frees up; None for
        concurrent replies, which free up when a reply ends.
    A ValidationError, so `" ".join(exc.messages)` shows it like any refused send.
    """

    def __init__(self, message: str, *, limit: str, retry_after_s: int | None) -> None:
        super().__init__(message, code=limit)
        self.limit = limit
        self.retry_after_s = retry_after_s


@dataclass(frozen=True)
class QuotaStatus:
    """A user's limits, their usage and what is left; every `*_left` is None where there is no limit.

    sends_left: replies the user may still start in the current 60 s.
    replies_left: replies that may still start while the current ones stream.
    tokens_left: tokens left today (0 once used up, never negative).
    tokens_reset_at: the next local midnight (settings.TIME_ZONE), when tokens_today restarts at 0.
    """

    limits: Limits
    usage: Usage
    sends_left: int | None
    replies_left: int | None
    tokens_left: int | None
    tokens_reset_at: datetime

    @property
    def show_sends_left(self) -> bool:
        """Whether the page shows the messages left this minute: only when few are."""
        return self.sends_left is not None and self.sends_left <= SENDS_LEFT_SHOWN_FROM


def quota_status(
    *, user: User, now: datetime | None = None, limits: Limits | None = None, usage: Usage | None = None
) -> QuotaStatus:
    """Return `user`'s limits, usage and what is left at `now` (default: the current time). Two queries.

    Streaming replies whose heartbeat is older than settings.CHAT_STALE_AFTER_S
    are not counted: their worker died. `limits` and `usage`: the user's, when
    the caller read them already (`quota_reads`, for a batch of sends); no query for those.
    """
    if usage is not None:
        now = usage.now
    now = now or timezone.now()
    limits = limits or user_limits(user=user)
    usage = usage or selectors.user_usage(user=user, now=now, stale_before=_stale_before(now))
    return QuotaStatus(
        limits=limits,
        usage=usage,
        sends_left=_left(limits.sends_per_minute, usage.sends_last_minute),
        replies_left=_left(limits.concurrent_replies, usage.replies_streaming),
        tokens_left=_left(limits.daily_tokens, usage.tokens_today),
        tokens_reset_at=usage.day_end,
    )


def quota_reads(
    *, user_ids: Sequence[int], now: datetime, lock: bool = False
) -> tuple[dict[int, Limits], dict[int, Usage]]:
    """Return the limits and the usage at `now` of each of `user_ids`, by user id, in two queries for all.

    For `quota_check` of many users at once (`services.replies_request`): what
    a user's own earlier send of the batch writes is not in their usage. With
    `lock`, as `quota_check`'s: the users' rows are locked first, in the order
    of their ids (two batches lock in one order, and never wait on each other
    in a circle), in one more query.
    """
    if lock and connection.features.has_select_for_update:
        list(get_user_model().objects.select_for_update().filter(pk__in=user_ids).order_by("pk").values_list("pk"))
    limits = users_limits(user_ids=user_ids)
    return limits, selectors.users_usage(user_ids=user_ids, now=now, stale_before=_stale_before(now))


def _stale_before(now: datetime) -> datetime:
    return now - timedelta(seconds=settings.CHAT_STALE_AFTER_S)


def quota_check(
    *,
    user: User,
    lock: bool = False,
    now: datetime | None = None,
    limits: Limits | None = None,
    usage: Usage | None = None,
) -> QuotaStatus:
    """Return `user`'s QuotaStatus if they may start another reply now; else raise. Nothing is written.

    Call it before saving anything of a send, an edit or a regeneration. With
    `lock`, call it inside the transaction.atomic() that then saves the
    messages: it first locks the user's row (SELECT ... FOR UPDATE; SQLite's
    IMMEDIATE transactions already serialize writers), so two sends of one user
    at once, from two tabs or two workers, are checked one after the other and
    cannot both take the last free slot. Two queries (three with `lock`), one
    more when refusing for the messages per minute; none for `limits` and
    `usage` when given (`quota_reads`).

    Raises:
        QuotaExceeded: the first exceeded limit, checked in this order: tokens
            today, replies started in the last minute, replies streaming.
    """
    if lock and connection.features.has_select_for_update:  # SQLite has none: its writer lock already serializes.
        list(get_user_model().objects.select_for_update().filter(pk=user.pk).values_list("pk"))
    status = quota_status(user=user, now=now, limits=limits, usage=usage)
    limits, usage = status.limits, status.usage
    # A `*_left` is 0 only under a limit (None without one): checking the limit too changes nothing.
    if limits.daily_tokens is not None and status.tokens_left == 0:
        wait_s = _whole_seconds(status.tokens_reset_at - usage.now)
        raise QuotaExceeded(
            ngettext(
                "You have used today’s %(quota)s token; the quota resets at midnight (in %(wait)s).",
                "You have used today’s %(quota)s tokens; the quota resets at midnight (in %(wait)s).",
                limits.daily_tokens,
            )
            % {"quota": _number(limits.daily_tokens), "wait": _duration(wait_s)},
            limit="daily_tokens",
            retry_after_s=wait_s,
        )
    if limits.sends_per_minute is not None and status.sends_left == 0:
        free_at = selectors.user_send_free_at(user=user, limit=limits.sends_per_minute, now=usage.now)
        wait_s = _whole_seconds(free_at - usage.now)
        count = usage.sends_last_minute
        raise QuotaExceeded(
            ngettext(
                "You have sent %(count)s message in the last minute; wait %(wait)s.",
                "You have sent %(count)s messages in the last minute; wait %(wait)s.",
                count,
            )
            % {"count": _number(count), "wait": _duration(wait_s)},
            limit="sends_per_minute",
            retry_after_s=wait_s,
        )
    if status.replies_left == 0:
        count = usage.replies_streaming
        raise QuotaExceeded(
            ngettext(
                "A reply is already being written; wait for it to finish or stop it.",
                "%(count)s replies are already being written; wait for one to finish or stop it.",
                count,
            )
            % {"count": _number(count)},
            limit="concurrent_replies",
            retry_after_s=None,
        )
    return status


def _left(limit: int | None, used: int) -> int | None:
    return None if limit is None else max(limit - used, 0)


def _whole_seconds(delta: timedelta) -> int:
    """Return `delta` in whole seconds, rounded up and at least 1: "wait 0 s" would be refused again."""
    return max(math.ceil(delta.total_seconds()), 1)


def _number(value: int) -> str:
    """Return `value` with the active language's thousands separators: 50,000."""
    return number_format(value, force_grouping=True)


def _duration(seconds: int) -> str:
    """Return a wait for people: "35 s", "4 min", "2 h", "5 h 12 min" (minutes rounded up)."""
    if seconds < 60:
        return _("%(s)d s") % {"s": seconds}
    minutes = math.ceil(seconds / 60)
    if minutes < 60:
        return _("%(min)d min") % {"min": minutes}
    if minutes % 60 == 0:
        return _("%(h)d h") % {"h": minutes // 60}
    return _("%(h)d h %(min)d min") % {"h": minutes // 60, "min": minutes % 60}
