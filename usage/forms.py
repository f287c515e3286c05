from datetime import date, timedelta

from django import forms
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

# The longest range the site-wide page shows at once, in days.
MAX_RANGE_DAYS = 366
DEFAULT_DAYS = 30


class DateRangeForm(forms.Form):
    """The site-wide usage page's range of local days, both included; empty: the last DEFAULT_DAYS days."""

    start = forms.DateField(label=_("From"), required=False, widget=forms.DateInput(attrs={"type": "date"}))
    end = forms.DateField(label=_("To"), required=False, widget=forms.DateInput(attrs={"type": "date"}))

    def __init__(self, *args, today: date, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.today = today

    def clean(self) -> dict:
        data = super().clean() or {}
        end = data.get("end") or self.today
        start = data.get("start") or end - timedelta(days=DEFAULT_DAYS - 1)
        if start > end:
            raise ValidationError(_("The first day comes after the last."), code="order")
        if (end - start).days + 1 > MAX_RANGE_DAYS:
            raise ValidationError(
                _("Choose at most %(days)d days at once.") % {"days": MAX_RANGE_DAYS}, code="too_long"
            )
        data["start"], data["end"] = start, end
        return data
