"""Reads of usage: a `UsageReport` over a range of days, for one user or the whole site, by any dimension."""

from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, fields
from datetime import date, datetime
from typing import Any

from django.contrib.auth import get_user_model
from django.db.models import Sum
from django.utils import timezone

from usage import rollup
from usage.models import TtftBucket, UsageDay

# The dimensions a report groups by: UsageDay's own columns.
DIMENSIONS = ("day", "user_id", "persona_id", "provider_id", "model_id")


@dataclass
class Totals:
    """Summed usage (the UsageDay columns); derived figures as properties."""

    messages: int = 0
    replies: int = 0
    errors: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    ttft_count: int = 0
    ttft_total_ms: int = 0

    @property
    def tokens(self) -> int:
        """Prompt plus completion tokens."""
        return self.prompt_tokens + self.completion_tokens

    @property
    def error_rate(self) -> float | None:
        """The share of replies that ended in an error, 0 to 1; None without replies."""
        return self.errors / self.replies if self.replies else None

    @property
    def error_percent(self) -> float | None:
        """`error_rate` in percent."""
        rate = self.error_rate
        return None if rate is None else rate * 100

    def add(self, row: dict[str, Any]) -> None:
        for name in rollup.SUM_FIELDS:
            setattr(self, name, getattr(self, name) + (row.get(name) or 0))


_TOTAL_FIELDS = [f.name for f in fields(Totals)]  # rollup.SUM_FIELDS, in that order (tests hold them equal)


class UsageReport:
    """Usage from `first` to `last` (local days, both included), of one user (`user_id`) or of everyone.

    Built in a few queries: the days of the range that are over but not
    rolled up yet are rolled up first (`rollup.usage_rollup_pending`); the
    rolled-up days are then summed by the database from UsageDay (indexes on
    day and on user and day), and the days not over yet (today; yesterday
    during its first hour) are counted from their messages, once, and added.
    """

    def __init__(self, *, first: date, last: date, user_id: int | None = None, now: datetime | None = None) -> None:
        now = now or timezone.now()
        self.first, self.last, self.user_id = first, last, user_id
        rollup.usage_rollup_pending(first=first, last=last, now=now)
        self.rolled = rollup.rolled_days(first=first, last=last)
        today = timezone.localtime(now, timezone.get_default_timezone()).date()
        self.live_days = [day for day in rollup.days_between(first, min(last, today)) if day not in self.rolled]
        self.live_rows = [
            {**row, "day": day} for day in self.live_days for row in rollup.day_rows(day, user_id=user_id)
        ]

    def days(self) -> list[date]:
        """Every day of the range, oldest first."""
        return list(rollup.days_between(self.first, self.last))

    def by(self, *dimensions: str) -> dict[tuple, Totals]:
        """Return the totals for each combination of `dimensions` (names from DIMENSIONS) that has usage."""
        if not set(dimensions) <= set(DIMENSIONS):
            raise ValueError(f"unknown dimension in {dimensions}")
        result: dict[tuple, Totals] = defaultdict(Totals)
        rows = self._rolled().values(*dimensions).annotate(**{name: Sum(name) for name in _TOTAL_FIELDS}).order_by()
        for row in (*rows, *self.live_rows):
            result[tuple(row[name] for name in dimensions)].add(row)
        return dict(result)

    def rows(self) -> Iterator[dict[str, Any]]:
        """Yield every (day, user, persona, provider, model) row with its sums, by day, then as stored."""
        yield from (
            self._rolled()
            .order_by("day", "user_id", "id")
            .values(*DIMENSIONS, *_TOTAL_FIELDS)
            .iterator(chunk_size=2000)
        )
        yield from self.live_rows

    def ttft_median_ms(self) -> dict[str, float]:
        """Return the median time to first token of each model's replies over the range, in milliseconds.

        Read from summed histogram buckets (`rollup.TTFT_BUCKET_MS` wide below
        10 s): exact to within half a bucket. Site-wide only (no `user_id`).
        """
        counts: dict[str, dict[int, int]] = defaultdict(lambda: defaultdict(int))
        stored = (
            TtftBucket.objects.filter(day__gte=self.first, day__lte=self.last)
            .values("model_id", "bucket")
            .annotate(total=Sum("count"))
            .order_by()
        )
        for row in stored:
            counts[row["model_id"]][row["bucket"]] += row["total"]
        for day in self.live_days:
            for row in rollup.day_buckets(day):
                counts[row["model_id"]][row["bucket"]] += row["count"]
        return {model_id: _median_bucket_ms(buckets) for model_id, buckets in counts.items()}

    def _rolled(self):
        rows = UsageDay.objects.filter(day__gte=self.first, day__lte=self.last)
        return rows.filter(user_id=self.user_id) if self.user_id is not None else rows


def project(totals: dict[tuple, Totals], index: int) -> dict[tuple, Totals]:
    """Return `totals` (keyed by several dimensions) summed by the dimension at `index` alone: 1-tuple keys.

    One query by (persona, provider, model) answers all three breakdowns:
    there are few such combinations, and each breakdown would scan the range again.
    """
    result: dict[tuple, Totals] = defaultdict(Totals)
    for key, value in totals.items():
        result[(key[index],)].add(vars(value))
    return dict(result)


def sum_totals(totals: Iterable[Totals]) -> Totals:
    """Return the sum of `totals`."""
    result = Totals()
    for value in totals:
        result.add(vars(value))
    return result


def _median_bucket_ms(buckets: dict[int, int]) -> float:
    """Return the middle of the bucket holding the median of a histogram {bucket: count} (lower median)."""
    total = sum(buckets.values())
    seen = 0
    for bucket in sorted(buckets):
        seen += buckets[bucket]
        if seen * 2 >= total:
            return rollup.ttft_bucket_middle_ms(bucket)
    raise ValueError("empty histogram")


def user_groups(*, user_ids: Sequence[int]) -> dict[int, list[str]]:
    """Return the names of the groups of each of `user_ids` (users without a group are left out). One query."""
    through = get_user_model().groups.through
    groups: dict[int, list[str]] = defaultdict(list)
    for user_id, name in through.objects.filter(user_id__in=user_ids).values_list("user_id", "group__name"):
        groups[user_id].append(name)
    return dict(groups)
