"""Reads of bot channels and identities, scoped to who asks."""

from django.contrib.auth.models import User
from django.db.models import QuerySet

from bots.models import BotChannel, BotIdentity


def channel_get_enabled(*, public_id, kinds: tuple[str, ...]) -> BotChannel:
    """Return the enabled channel `public_id` of one of `kinds`, with its persona and model.

    Raises:
        BotChannel.DoesNotExist: unknown, disabled, or of another platform.
    """
    return BotChannel.objects.select_related("persona__model__provider").get(
        public_id=public_id, enabled=True, kind__in=kinds
    )


def identity_list_for_user(*, user: User) -> QuerySet[BotIdentity]:
    """Return the IM identities linked to `user`'s account, with their channels."""
    return (
        BotIdentity.objects.filter(user=user, linked_at__isnull=False).select_related("channel").order_by("linked_at")
    )
