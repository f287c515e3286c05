from django import forms
from django.utils.translation import gettext_lazy as _

from personas.selectors import persona_list_active


class ConversationCreateForm(forms.Form):
    """Start a chat with one of the active personas, chosen by slug."""

    persona = forms.ModelChoiceField(
        queryset=persona_list_active(),
        to_field_name="slug",
        error_messages={"invalid_choice": _("That persona is not available. Pick another one.")},
    )
