from django.contrib import admin
from django.urls import include, path, re_path
from django.views.i18n import JavaScriptCatalog

from accounts.password_reset import PasswordResetView
from accounts.theme import theme_set
from accounts.views import LoginView, invitation_follow, language_set
from api import views as api_views
from chatsite.views import account_page, custom_instructions

urlpatterns = [
    path("admin/", admin.site.urls),
    # gettext() and friends for static/js (Django docs, "Internationalization: in JavaScript code").
    path("jsi18n/", JavaScriptCatalog.as_view(), name="javascript-catalog"),
    # Before allauth's own: the same page, with a lockout answered 429.
    path("accounts/login/", LoginView.as_view(), name="account_login"),
    # Before allauth's own: without a mail server, the page says to ask an admin.
    path("accounts/password/reset/", PasswordResetView.as_view(), name="account_reset_password"),
    path("accounts/invite/<str:code>/", invitation_follow, name="account-invitation"),
    path("accounts/", include("allauth.urls")),
    path("account/", account_page, name="account"),
    path("", include("bots.urls")),
    path("account/language/", language_set, name="language-set"),
    path("account/instructions/", custom_instructions, name="custom-instructions"),
    path("", include("attachments.urls")),
    path("account/api/", include("api.page_urls")),
    # The OpenAI-compatible API (api/), authenticated by personal keys only.
    path("v1/", include("api.urls")),
    re_path(r"^v1/", api_views.not_found, name="v1-not-found"),  # After every /v1 route: a JSON 404.
    path("account/theme/", theme_set, name="theme-set"),
    path("", include("transfer.urls")),
    path("", include("sharing.urls")),
    path("", include("usage.urls")),
    path("", include("conversations.urls")),
]
