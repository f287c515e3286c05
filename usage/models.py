"""The usage rollup: per day, what each user asked of each persona and model, summed once the day is over.

The usage pages read these rows for past days instead of counting messages
(a million messages make a few tens of thousands of rows), and count only
the days not rolled up yet (today, and yesterday for its first hour) from
the messages themselves (`usage.rollup`).
"""

from django.conf import settings
from django.db import models


class UsageDay(models.Model):
    """One local day (settings.TIME_ZONE) of one user's usage with one persona and model.

    messages: the user's own messages (questions) sent that day.
    replies: replies started that day, greetings excluded; errors: those that ended in an error.
    prompt_tokens, completion_tokens: as the provider reported them (or the site estimated them).
    ttft_count, ttft_total_ms: replies with a time to first token, and the sum of those times.
    provider: the provider of the persona's model when the day was rolled up.
    """

    day = models.DateField()
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    persona = models.ForeignKey("personas.Persona", on_delete=models.SET_NULL, null=True, related_name="+")
    provider = models.ForeignKey("personas.Provider", on_delete=models.SET_NULL, null=True, related_name="+")
    model_id = models.CharField(max_length=200, blank=True)
    messages = models.PositiveIntegerField(default=0)
    replies = models.PositiveIntegerField(default=0)
    errors = models.PositiveIntegerField(default=0)
    prompt_tokens = models.PositiveBigIntegerField(default=0)
    completion_tokens = models.PositiveBigIntegerField(default=0)
    ttft_count = models.PositiveIntegerField(default=0)
    ttft_total_ms = models.PositiveBigIntegerField(default=0)

    class Meta:
        indexes = [
            models.Index(fields=["day"], name="usage_day_day"),
            models.Index(fields=["user", "day"], name="usage_day_user_day"),
        ]

    def __str__(self) -> str:
        return f"{self.day} {self.user_id} {self.model_id}"


class TtftBucket(models.Model):
    """How many replies of one model, started on one day, had a time to first token in one bucket.

    Buckets are `usage.rollup.TTFT_BUCKET_MS` wide (10 ms) up to 10 s, then
    1 s wide: the median over any range of days is read from summed buckets,
    to within half a bucket.
    """

    day = models.DateField()
    model_id = models.CharField(max_length=200, blank=True)
    bucket = models.PositiveIntegerField()
    count = models.PositiveIntegerField(default=0)

    class Meta:
        indexes = [models.Index(fields=["day"], name="usage_ttft_day")]

    def __str__(self) -> str:
        return f"{self.day} {self.model_id} #{self.bucket}: {self.count}"


class RolledDay(models.Model):
    """A local day whose messages are summed in UsageDay and TtftBucket (rolled up once, when it is over)."""

    day = models.DateField(primary_key=True)
    rolled_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return str(self.day)
