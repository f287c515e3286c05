"""Reads for accounts: a user's resolved usage limits (what they used is counted in conversations), site settings."""

from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth.models import User
from django.db.models import Exists, Q

from accounts.models import CustomInstructions, SiteSettings, UsageLimit

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


def user_limits(*, user: User) -> Limits:
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


def custom_instructions_for_user(*, user: User) -> CustomInstructions | None:
    """Return `user`'s custom instructions, or None when they have none."""
    return CustomInstructions.objects.filter(user=user).first()


def custom_instructions_text(*, user_id: int) -> str:
    """Return what the user's custom instructions add to the system message, or "" when they set none.

    English headings, for the model; the texts as the user wrote them.
    """
    row = CustomInstructions.objects.filter(user_id=user_id).first()
    if row is None:
        return ""
    parts = []
    if row.about_me:
        parts.append(f"What the user wants you to know about them:\n{row.about_me}")
    if row.reply_style:
        parts.append(f"How the user wants you to answer:\n{row.reply_style}")
    return "\n\n".join(parts)


# The one row of SiteSettings.
_SITE_SETTINGS_PK = 1


def site_settings() -> SiteSettings:
    """Return the site's settings row (pk 1), made with its defaults on the first read. One query."""
    row, _ = SiteSettings.objects.get_or_create(pk=_SITE_SETTINGS_PK)
    return row


def site_api_switched_off() -> Exists:
    """Return an SQL condition, true when the admin has switched the API off for the site (SiteSettings.api_enabled).

    No row yet counts as on, the field's default. Meant to annotate another
    query (`api.auth` puts it on the API key's), so that it costs no query of its own.
    """
    return Exists(SiteSettings.objects.filter(pk=_SITE_SETTINGS_PK, api_enabled=False))
