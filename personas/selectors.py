"""Reads of personas. Personas are shared by every signed-in user; only active ones on enabled models show."""

from django.db.models import QuerySet

from personas.models import Persona


def persona_list_active() -> QuerySet[Persona]:
    """Return the personas a user may start a chat with, by name, with their model loaded."""
    return (
        Persona.objects.filter(is_active=True, model__enabled=True)
        .select_related("model")
        .order_by("name")
    )
