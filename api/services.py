"""Writes of API keys: create (the key is returned once), revoke."""

import hashlib
import secrets
from datetime import datetime

from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.utils import timezone
from django.utils.translation import gettext as _

from api.models import ApiKey

# A key reads "chat-" then 43 URL-safe characters (32 random bytes); its first PREFIX_CHARS are shown.
KEY_START = "chat-"
PREFIX_CHARS = len(KEY_START) + 6


def key_hash(key: str) -> str:
    """Return the stored form of `key`: its SHA-256, 64 hex digits."""
    return hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()


def api_key_create(*, user: User, name: object, expires_at: datetime | None = None) -> tuple[ApiKey, str]:
    """Create a key for `user` named `name`; return it with the key itself, which is never stored or shown again.

    `expires_at`: when a short-lived key (the API page's console) stops working; None for a lasting key.

    Raises:
        ValidationError: the name is not text, blank, or longer than 100 characters.
    """
    if not isinstance(name, str) or not name.strip():
        raise ValidationError(_("Name the key, so you can tell it apart later."), code="empty")
    name = " ".join(name.split())
    limit = ApiKey._meta.get_field("name").max_length or 100
    if len(name) > limit:
        raise ValidationError(
            _("The name is %(length)d characters long; the limit is %(limit)d.")
            % {"length": len(name), "limit": limit},
            code="too_long",
        )
    key = KEY_START + secrets.token_urlsafe(32)
    row = ApiKey.objects.create(
        user=user, name=name, prefix=key[:PREFIX_CHARS], key_hash=key_hash(key), expires_at=expires_at
    )
    return row, key


def api_key_revoke(*, key: ApiKey) -> ApiKey:
    """Revoke `key` (it is refused from now on, 403); revoking it again changes nothing."""
    if key.revoked_at is None:
        key.revoked_at = timezone.now()
        key.save(update_fields=["revoked_at"])
    return key


def api_key_touch(*, key: ApiKey, now: datetime) -> None:
    """Record that `key` was used at `now`; written at most once a minute per key (the page shows minutes)."""
    if key.last_used_at is None or (now - key.last_used_at).total_seconds() >= 60:
        ApiKey.objects.filter(pk=key.pk).update(last_used_at=now)
        key.last_used_at = now


def console_keys_delete_expired(*, user: User, now: datetime) -> int:
    """Delete `user`'s short-lived keys that have expired (the API page's console); return how many."""
    deleted, _by_model = ApiKey.objects.filter(user=user, expires_at__lte=now).delete()
    return deleted
