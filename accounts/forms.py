"""The account page's forms: the language switch (also on the sign-in pages) and custom instructions."""

from django import forms
from django.conf import settings
from django.utils.translation import get_language_info
from django.utils.translation import gettext_lazy as _

from accounts.models import CustomInstructions


def language_choices() -> list[tuple[str, str]]:
    """Return the switch's choices: "" (the browser's language), then each language named in its own language."""
    return [("", _("The browser’s language"))] + [
        (code, get_language_info(code)["name_local"]) for code, _name in settings.LANGUAGES
    ]


class LanguageForm(forms.Form):
    """A language from settings.LANGUAGES, or "" to follow the browser; `next` is where to go back to."""

    language = forms.ChoiceField(label=_("Language"), choices=language_choices, required=False)
    next = forms.CharField(required=False, widget=forms.HiddenInput)


class CustomInstructionsForm(forms.Form):
    """The account page's custom instructions: two optional texts, each at most CustomInstructions.MAX_CHARS."""

    about_me = forms.CharField(
        label=_("What should the model know about you?"),
        required=False,
        max_length=CustomInstructions.MAX_CHARS,
        widget=forms.Textarea(attrs={"rows": 4}),
        strip=True,
    )
    reply_style = forms.CharField(
        label=_("How should it answer?"),
        required=False,
        max_length=CustomInstructions.MAX_CHARS,
        widget=forms.Textarea(attrs={"rows": 4}),
        strip=True,
    )
