from django.contrib import admin
from django.urls import include, path
from django.views.i18n import JavaScriptCatalog

from accounts.password_reset import PasswordResetView
from accounts.theme import theme_set
from accounts.views import LoginView
from chatsite.views import account_page

urlpatterns = [
    path("admin/", admin.site.urls),
    # gettext() and friends for static/js (Django docs, "Internationalization: in JavaScript code").
    path("jsi18n/", JavaScriptCatalog.as_view(), name="javascript-catalog"),
    # Before allauth's own: the same page, with a lockout answered 429.
    path("accounts/login/", LoginView.as_view(), name="account_login"),
    # Before allauth's own: without a mail server, the page says to ask an admin.
    path("accounts/password/reset/", PasswordResetView.as_view(), name="account_reset_password"),
    path("accounts/", include("allauth.urls")),
    path("account/", account_page, name="account"),
    path("account/theme/", theme_set, name="theme-set"),
    path("", include("transfer.urls")),
    path("", include("conversations.urls")),
]
