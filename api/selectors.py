"""Reads of API keys and of what a user may call, each scoped to the asking user."""

from django.contrib.auth.models import User
from django.db.models import QuerySet

from api.models import ApiKey
from personas.models import ChatModel, Persona
from personas.selectors import persona_list_active


def api_key_list_for_user(*, user: User) -> QuerySet[ApiKey]:
    """Return `user`'s lasting keys, revoked ones too, newest first (the console's short-lived keys are left out)."""
    return ApiKey.objects.filter(user=user, expires_at__isnull=True)


def api_key_get_for_user(*, user: User, pk: int | str) -> ApiKey:
    """Return `user`'s key `pk`.

    Raises:
        ApiKey.DoesNotExist: no such key, or another user's (callers answer 404).
    """
    try:
        return ApiKey.objects.get(user=user, pk=int(pk))
    except (TypeError, ValueError):
        raise ApiKey.DoesNotExist from None


def direct_model_list() -> QuerySet[ChatModel]:
    """Return the enabled chat models the admin allows for direct use, by model id, with their provider."""
    return (
        ChatModel.objects.filter(enabled=True, api_direct__isnull=False)
        .select_related("provider")
        .order_by("model_id", "pk")
    )


def callable_models() -> tuple[list[Persona], list[ChatModel]]:
    """Return what an API caller may name as `model`: the active personas and the direct-use models. Two queries.

    A direct model whose id is also a persona's slug is left out: the persona wins.
    """
    personas = list(persona_list_active())
    slugs = {p.slug for p in personas}
    return personas, [m for m in direct_model_list() if m.model_id not in slugs]
