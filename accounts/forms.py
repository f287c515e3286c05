"""The language switch's form: the account page's section and the sign-in pages' small switch post it."""

from django import forms
from django.conf import settings
from django.utils.translation import get_language_info
from django.utils.translation import gettext_lazy as _


def language_choices() -> list[tuple[str, str]]:
    """Return the switch's choices: "" (the browser's language), then each language named in its own language."""
    return [("", _("The browser’s language"))] + [
        (code, get_language_info(code)["name_local"]) for code, _name in settings.LANGUAGES
    ]


class LanguageForm(forms.Form):
    """A language from settings.LANGUAGES, or "" to follow the browser; `next` is where to go back to."""

    language = forms.ChoiceField(label=_("Language"), choices=language_choices, required=False)
    next = forms.CharField(required=False, widget=forms.HiddenInput)
