from django import forms
from django.utils.translation import gettext_lazy as _


class ImportUploadForm(forms.Form):
    """An export to import: this site's JSON or ZIP, or ChatGPT's conversations.json or ZIP."""

    file = forms.FileField(
        label=_("Export file"),
        widget=forms.ClearableFileInput(attrs={"accept": ".json,.zip,application/json,application/zip"}),
        error_messages={"required": _("Choose a file to import.")},
    )
