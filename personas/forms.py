from django import forms
from django.utils.translation import gettext_lazy as _

from personas.models import Persona
from personas.selectors import chat_model_list_for_everyone


class OwnPersonaForm(forms.ModelForm):
    """A user's own persona: what they may set (the model among those offered to everyone)."""

    class Meta:
        model = Persona
        fields = ["name", "avatar", "description", "greeting", "system_prompt", "model", "temperature"]
        widgets = {
            "greeting": forms.Textarea(attrs={"rows": 3}),
            "system_prompt": forms.Textarea(attrs={"rows": 6}),
        }

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        model = self.fields["model"]
        model.queryset = chat_model_list_for_everyone()  # type: ignore[attr-defined]
        model.empty_label = None  # type: ignore[attr-defined]
        model.error_messages["invalid_choice"] = _("That model is not offered for your own personas.")
