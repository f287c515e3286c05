from django import forms
from django.utils.translation import gettext_lazy as _

from accounts.models import CustomInstructions


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
