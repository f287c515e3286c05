"""Reads of personas and models, scoped to the user who asks.

The site's personas (no owner) are offered to every signed-in user; a user's
own personas only to them, unless an admin published one. Only active
personas on enabled models show.
"""

from django.contrib.auth.models import AnonymousUser, User
from django.db.models import Q, QuerySet

import llm
from personas.models import ChatModel, Persona, Provider


def persona_list_active(*, user: User | AnonymousUser) -> QuerySet[Persona]:
    """Return the personas `user` may start a chat with, by name, with their model loaded.

    The site's personas, `user`'s own and those an admin published; active, on an enabled model.
    """
    visible = Q(owner__isnull=True) | Q(is_published=True)
    if user.is_authenticated:
        visible |= Q(owner=user)
    return (
        Persona.objects.filter(visible, is_active=True, model__enabled=True)
        .select_related("model", "owner")
        .order_by("name", "pk")
    )


def persona_list_own(*, user: User) -> QuerySet[Persona]:
    """Return the personas `user` created (active or not), by name, with their model loaded."""
    return Persona.objects.filter(owner=user).select_related("model").order_by("name", "pk")


def persona_get_own(*, user: User, slug: str) -> Persona:
    """Return `user`'s own persona `slug`, for editing.

    Raises:
        Persona.DoesNotExist: no such persona, a site persona (read-only to users) or another user's.
    """
    return Persona.objects.select_related("model").get(owner=user, slug=slug)


def user_may_create_personas(*, user: User) -> bool:
    """Return whether `user` may create personas: the admin gave them, or a group of theirs, the permission."""
    return user.is_active and user.has_perm("personas.create_own_persona")


def chat_model_list_for_everyone() -> QuerySet[ChatModel]:
    """Return the enabled models offered to everyone (a user's own personas pick among them), by display name."""
    return ChatModel.objects.filter(enabled=True, offered_to_everyone=True).order_by("display_name", "model_id")


def chat_model_list_for_persona(*, persona: Persona) -> list[ChatModel]:
    """Return the enabled models a chat with `persona` may use: its own first, then its others and everyone's.

    Sorted by display name after the persona's own; its own model is listed even when disabled
    (the chat then says so when it sends). Two queries.
    """
    others = (
        ChatModel.objects.filter(enabled=True)
        .filter(Q(offered_to_everyone=True) | Q(pk__in=persona.other_models.values("pk")))
        .exclude(pk=persona.model_id)
        .select_related("provider")
        .order_by("display_name", "model_id")
    )
    return [persona.model, *others]


def provider_upstream_config(*, provider: Provider) -> llm.UpstreamConfig:
    """Return how to call `provider`: its base URL, decrypted key and timeouts.

    Raises:
        personas.crypto.DecryptionError: the stored key cannot be decrypted.
    """
    return llm.UpstreamConfig(
        base_url=provider.base_url,
        api_key=provider.api_key,
        connect_timeout_s=provider.connect_timeout_s,
        read_timeout_s=provider.read_timeout_s,
        total_timeout_s=provider.total_timeout_s,
    )
