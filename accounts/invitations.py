"""Invitation links: made in the admin, held in the session while their holder signs up, used up on sign-up."""

import secrets
from datetime import datetime

from django.db.models import F, Q
from django.http import HttpRequest
from django.utils import timezone

from accounts.models import Invitation

# The session key holding the code of the invitation its visitor followed.
SESSION_KEY = "accounts_invitation"


def invitation_code_new() -> str:
    """Return a new invitation code: 32 random bytes, URL-safe base64 (256 bits; secrets.token_urlsafe)."""
    return secrets.token_urlsafe(32)


def _usable(now: datetime) -> Q:
    return (Q(expires_at__isnull=True) | Q(expires_at__gt=now)) & (Q(max_uses=0) | Q(uses__lt=F("max_uses")))


def invitation_get_usable(*, code: str, now: datetime | None = None) -> Invitation:
    """Return the invitation `code` if it is neither expired nor used up.

    Raises:
        Invitation.DoesNotExist: no such code, or it can no longer be used.
    """
    return Invitation.objects.filter(_usable(now or timezone.now())).get(code=code)


def invitation_from_session(request: HttpRequest) -> Invitation | None:
    """Return the usable invitation whose link this session followed, else None."""
    code = request.session.get(SESSION_KEY, "") if hasattr(request, "session") else ""
    if not code:
        return None
    try:
        return invitation_get_usable(code=code)
    except Invitation.DoesNotExist:
        return None


def invitation_use(*, request: HttpRequest) -> bool:
    """Count one use of the session's invitation for a new account; return whether one was counted.

    One conditional UPDATE, so two sign-ups racing for the last use of a
    single-use link cannot both count; call it in the transaction that saves
    the account, so that a refused account takes no use.
    """
    code = request.session.get(SESSION_KEY, "")
    if not code:
        return False
    used = Invitation.objects.filter(_usable(timezone.now()), code=code).update(uses=F("uses") + 1)
    request.session.pop(SESSION_KEY, None)
    return bool(used)
