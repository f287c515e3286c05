"""Reads of personas. Personas are shared by every signed-in user; only active ones on enabled models show."""

from django.db.models import QuerySet

import llm
from personas.models import Persona, Provider


def persona_list_active() -> QuerySet[Persona]:
    """Return the personas a user may start a chat with, by name, with their model loaded."""
    return Persona.objects.filter(is_active=True, model__enabled=True).select_related("model").order_by("name")


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
