from django import forms
from django.contrib.auth.models import User
from django.utils.translation import gettext_lazy as _

from personas.models import Persona
from personas.selectors import persona_list_active


class ConversationCreateForm(forms.Form):
    """Start a chat with one of the active personas `user` may use (`persona_list_active`), chosen by slug."""

    persona = forms.ModelChoiceField(
        queryset=Persona.objects.none(),
        to_field_name="slug",
        error_messages={"invalid_choice": _("That persona is not available. Pick another one.")},
    )

    def __init__(self, *args, user: User, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["persona"].queryset = persona_list_active(user=user)  # type: ignore[attr-defined]
