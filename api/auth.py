"""Who is calling the API: the personal key presented, checked once for every face of the API (HTTP, gRPC).

The API is on for a user when all three switches are: the server setting
CHAT_API_ENABLED (an override that can only force it off), the admin's site
switch (`accounts.models.SiteSettings.api_enabled`) and the admin's switch of
each of the user's groups (`api.models.GroupApiAccess`; no row means on).
"""

from django.conf import settings
from django.contrib.auth.models import User
from django.db.models import Exists, OuterRef
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts.selectors import site_api_switched_off
from api import services
from api.errors import ApiError, ApiErrorKind
from api.models import ApiKey, GroupApiAccess


def _group_api_switched_off(user_ref: OuterRef) -> Exists:
    """An SQL condition: true when a group of the user `user_ref` points to has the API switched off."""
    return Exists(GroupApiAccess.objects.filter(group__user=user_ref, enabled=False))


def api_enabled_for(*, user: User) -> bool:
    """Return whether `user` may use the API: CHAT_API_ENABLED, the admin's site switch and their groups' all on.

    One query (none when CHAT_API_ENABLED is off).
    """
    if not settings.CHAT_API_ENABLED:
        return False
    switched_off = (
        User.objects.filter(pk=user.pk)
        .annotate(site_off=site_api_switched_off(), group_off=_group_api_switched_off(OuterRef("pk")))
        .values_list("site_off", "group_off")
        .first()
    )
    return switched_off is not None and not any(switched_off)


def key_authenticate(*, presented: str | None) -> User:
    """Return the user whose personal key is `presented` (the key itself, without "Bearer "); record its use.

    One query (the key with its user and the site's and groups' API
    switches), one more at most once a minute to record the last use.

    Raises:
        ApiError: UNAUTHENTICATED (401) for no key or a key the site does not
            know (expired keys too: the console's short-lived keys just end);
            FORBIDDEN (403) for a revoked key, an inactive user, or the API
            switched off for the site (code "api_disabled_for_site": CHAT_API_ENABLED
            or the admin's site switch) or for one of the user's groups ("api_disabled").
    """
    if not presented:
        raise ApiError(
            ApiErrorKind.UNAUTHENTICATED,
            _("No API key. Send one as “Authorization: Bearer KEY”; create keys on your account page."),
            code="missing_api_key",
        )
    now = timezone.now()
    key = (
        ApiKey.objects.select_related("user")
        .annotate(site_api_off=site_api_switched_off(), group_api_off=_group_api_switched_off(OuterRef("user")))
        .filter(key_hash=services.key_hash(presented))
        .first()
    )
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
    if not settings.CHAT_API_ENABLED or key.site_api_off:
        raise ApiError(
            ApiErrorKind.FORBIDDEN,
            _("The API is switched off for this site. Your keys are kept and work again once an admin turns it on."),
            code="api_disabled_for_site",
        )
    if key.group_api_off:
        raise ApiError(ApiErrorKind.FORBIDDEN, _("The API is switched off for your account."), code="api_disabled")
    services.api_key_touch(key=key, now=now)
    return user
