"""Who is calling the API: the personal key presented, checked once for every face of the API (HTTP, gRPC)."""

from django.conf import settings
from django.contrib.auth.models import User
from django.utils import timezone
from django.utils.translation import gettext as _

from api import services
from api.errors import ApiError, ApiErrorKind
from api.models import ApiKey, GroupApiAccess


def api_enabled_for(*, user: User) -> bool:
    """Return whether `user` may use the API: the site's switch (CHAT_API_ENABLED) on, none of their groups off.

    One query.
    """
    if not settings.CHAT_API_ENABLED:
        return False
    return not GroupApiAccess.objects.filter(group__user=user, enabled=False).exists()


def key_authenticate(*, presented: str | None) -> User:
    """Return the user whose personal key is `presented` (the key itself, without "Bearer "); record its use.

    Two queries (key with its user, the group switches), one more at most
    once a minute to record the last use.

    Raises:
        ApiError: UNAUTHENTICATED (401) for no key or a key the site does not
            know (expired keys too: the console's short-lived keys just end);
            FORBIDDEN (403) for a revoked key, an inactive user, or the API
            switched off for the site or one of the user's groups.
    """
    if not presented:
        raise ApiError(
            ApiErrorKind.UNAUTHENTICATED,
            _("No API key. Send one as “Authorization: Bearer KEY”; create keys on your account page."),
            code="missing_api_key",
        )
    now = timezone.now()
    key = ApiKey.objects.select_related("user").filter(key_hash=services.key_hash(presented)).first()
    if key is None or key.is_expired:
        raise ApiError(
            ApiErrorKind.UNAUTHENTICATED,
            _("This API key is not valid. Check it, or create a new one on your account page."),
            code="invalid_api_key",
        )
    if key.is_revoked:
        raise ApiError(ApiErrorKind.FORBIDDEN, _("This API key has been revoked."), code="revoked_api_key")
    user = key.user
    if not user.is_active:
        raise ApiError(ApiErrorKind.FORBIDDEN, _("This account is deactivated."), code="inactive_user")
    if not api_enabled_for(user=user):
        raise ApiError(ApiErrorKind.FORBIDDEN, _("The API is switched off for your account."), code="api_disabled")
    services.api_key_touch(key=key, now=now)
    return user
