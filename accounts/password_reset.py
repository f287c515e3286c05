"""Password reset: allauth's page when the site can send mail; without a mail server, a page that says to ask an admin.

Without DJANGO_EMAIL_URL the reset mail would only reach the server's log,
so the page would claim "we have sent you an email" while nobody gets one.
settings.CHAT_EMAIL_ENABLED says which; an admin sets a forgotten password on
the user's admin page (Django's UserAdmin "change password" form).
"""

from allauth.account.views import PasswordResetView as AllauthPasswordResetView
from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

UNAVAILABLE_TEMPLATE = "account/password_reset_unavailable.html"


class PasswordResetView(AllauthPasswordResetView):
    """allauth's password reset, or, with no mail server, the "ask an admin" page for GET and POST alike."""

    def dispatch(self, request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if not settings.CHAT_EMAIL_ENABLED:
            return render(request, UNAVAILABLE_TEMPLATE)
        return super().dispatch(request, *args, **kwargs)
