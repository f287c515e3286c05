"""Reads for accounts: a user's resolved usage limits (what they used is counted in conversations), site settings."""

from collections.abc import Sequence
from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import User
from django.db import connection
from django.db.models import Exists

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
    own (or a group's) with 0s for that. Many at once: `users_limits`.
    """
    return users_limits(user_ids=[user.pk])[user.pk]


def users_limits(*, user_ids: Sequence[int]) -> dict[int, Limits]:
    """Return the limits of each of `user_ids` (`user_limits`), by user id, in one query."""
    rows: dict[int, list[dict]] = {user_id: [] for user_id in user_ids}
    if not rows:
        return {}
    with connection.cursor() as cursor:
        cursor.execute(" UNION ALL ".join([_LIMITS_SQL] * len(rows)), [p for i in rows for p in (i, i, i)])
        for for_user, *row in cursor.fetchall():
            rows[for_user].append(dict(zip(["user_id", *_LIMITS], row, strict=True)))
    return {user_id: _limits_resolved(user_rows) for user_id, user_rows in rows.items()}


def _limits_resolved(rows: list[dict]) -> Limits:
    """Return the limits that one user's UsageLimit rows (`_LIMITS_SQL`'s) resolve to (see `user_limits`)."""
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

    English headings, for the model; the texts as the user wrote them. Many at once: `custom_instructions_texts`.
    """
    return custom_instructions_texts(user_ids=[user_id])[user_id]


def custom_instructions_texts(*, user_ids: Sequence[int]) -> dict[int, str]:
    """Return `custom_instructions_text` of each of `user_ids`, by user id, in one query."""
    texts = dict.fromkeys(user_ids, "")
    if not texts:
        return {}
    with connection.cursor() as cursor:
        cursor.execute(" UNION ALL ".join([_CUSTOM_INSTRUCTIONS_SQL] * len(texts)), [p for i in texts for p in (i, i)])
        for user_id, about_me, reply_style in cursor.fetchall():
            parts = []
            if about_me:
                parts.append(f"What the user wants you to know about them:\n{about_me}")
            if reply_style:
                parts.append(f"How the user wants you to answer:\n{reply_style}")
            texts[user_id] = "\n\n".join(parts)
    return texts


# Every send reads these two (user_limits, custom_instructions_text): in SQL, each is one table's rows by
# key, 0.1 ms of CPU; built by the ORM (the join of `group__user`, `.first()`'s ordering), 0.4 to 0.5 ms each
# (bench/README.md, the fifth round).
def _column(model, field: str) -> str:
    return connection.ops.quote_name(model._meta.get_field(field).column)


def _table(model) -> str:
    return connection.ops.quote_name(model._meta.db_table)


_MEMBERSHIP = get_user_model().groups.through
# Each statement's first column is the user it is read for (a parameter), so that a batch's are one UNION ALL.
_LIMITS_SQL = (
    f"SELECT %s, {_column(UsageLimit, 'user')}, {', '.join(_column(UsageLimit, field) for field in _LIMITS)} "
    f"FROM {_table(UsageLimit)} WHERE {_column(UsageLimit, 'user')} = %s OR {_column(UsageLimit, 'group')} IN "
    f"(SELECT {_column(_MEMBERSHIP, 'group')} FROM {_table(_MEMBERSHIP)} WHERE {_column(_MEMBERSHIP, 'user')} = %s)"
)
_CUSTOM_INSTRUCTIONS_SQL = (
    f"SELECT %s, {_column(CustomInstructions, 'about_me')}, {_column(CustomInstructions, 'reply_style')} "
    f"FROM {_table(CustomInstructions)} WHERE {_column(CustomInstructions, 'user')} = %s"
)


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
